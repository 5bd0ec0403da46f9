"""The one error tree of mlops_layer: every failure a user can meet, with its exit code.

Exit codes: 0 ok · 1 governance said no · 2 bad input or config · 3 a backend failed.
"""

from __future__ import annotations

from typing import ClassVar


class MlopsError(Exception):
    """Base of every error the layer raises on purpose.

    ``message`` says what went wrong, naming the file/field/value; ``hint`` says what to do.
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class GovernanceRefusal(MlopsError):
    """Governance said no: a policy refused, a verification failed, drift breached."""

    exit_code = 1


class PolicyViolation(GovernanceRefusal):
    """A promotion (or other governed action) was refused by the policy."""


class AuditIntegrityError(GovernanceRefusal):
    """The audit trail does not verify."""


class DriftBreach(GovernanceRefusal):
    """A drift check breached its thresholds."""


class ReconciliationFinding(GovernanceRefusal):
    """The registry disagrees with what the audit trail says it should be."""


class ApprovalError(GovernanceRefusal):
    """An approval is forged, replayed, unsigned or otherwise not acceptable."""


class InputError(MlopsError):
    """Bad input from the user: a file, a name, a value."""

    exit_code = 2


class ConfigError(MlopsError):
    """Bad or missing configuration: mlops.yaml, policy.yaml, a model card, params.yaml."""

    exit_code = 2


class NotFoundError(InputError):
    """A named thing (model, version, alias, entry) does not exist."""


class BackendError(MlopsError):
    """A backend (MLflow, DVC, git, the audit database, a notifier) failed or did not answer."""

    exit_code = 3


class ConcurrencyError(BackendError):
    """Somebody else holds a lock or moved state under us; retry later."""


class ConfigWarning(UserWarning):
    """A configuration that works but probably not as meant (e.g. a policy section nothing reads).

    The CLI shows these as one ``warning:`` line each on stderr; library users see a Python warning.
    """
