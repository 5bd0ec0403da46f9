"""How notifications go out: the ``notifications:`` section of ``mlops.yaml``, read through the one YAML reader.

```yaml
notifications:
  file: monitoring/notifications.jsonl   # relative to the state dir; false: no file
  stdout: false
  webhook:
    secret_env: MLOPS_WEBHOOK_SECRET     # the NAME of the variable holding the secret, never the secret
    secret_envs: {"https://hooks.risk.example.com/": RISK_HOOK_SECRET}
    allow_unsigned: false
    retries: 3                           # and backoff_seconds, backoff_max_seconds, timeout_seconds,
    max_total_seconds: 30                # max_total_seconds: see RetryPolicy
  email:
    host: smtp.example.com
    port: 587
    from: mlops@example.com
    starttls: true                       # or ssl: true (SMTPS), not both
    username: mlops
    password_env: MLOPS_SMTP_PASSWORD
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlops_layer.monitoring.notifiers.retry import RetryPolicy
from mlops_layer.yamlfile import Located, YamlFile, read_yaml

DEFAULT_SECRET_ENV = "MLOPS_WEBHOOK_SECRET"
DEFAULT_FILE = "monitoring/notifications.jsonl"  # relative to the state dir
SECTION = "notifications"


@dataclass(frozen=True)
class WebhookConfig:
    """Webhook delivery: the secret comes from the environment variable ``secret_env`` (per-URL-prefix overrides
    in ``secret_envs``). Without the secret a delivery fails (and is queued) unless ``allow_unsigned``."""

    secret_env: str = DEFAULT_SECRET_ENV
    secret_envs: Mapping[str, str] = field(default_factory=dict)
    allow_unsigned: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def secret_env_for(self, url: str) -> str:
        matches = [prefix for prefix in self.secret_envs if url.startswith(prefix)]
        return self.secret_envs[max(matches, key=len)] if matches else self.secret_env


@dataclass(frozen=True)
class SmtpConfig:
    """The SMTP server emails go through. ``password_env`` names the environment variable holding the password."""

    host: str
    sender: str
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(retries=1))


@dataclass(frozen=True)
class NotifierConfig:
    """How notifications go out. ``file`` is relative to the state dir (None: no file); ``stdout`` prints them."""

    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    email: SmtpConfig | None = None
    file: str | None = DEFAULT_FILE
    stdout: bool = False


_RETRY_KEYS = ("retries", "backoff_seconds", "backoff_max_seconds", "timeout_seconds", "max_total_seconds")


def _fields(node: Located, allowed: tuple[str, ...]) -> dict[str, Located]:
    """The set (non-null) keys of a mapping; an unknown key is refused, naming it and its line."""
    items = node.mapping()
    unknown = [key for key in items if key not in allowed]
    if unknown:
        items[unknown[0]].fail(
            f"unknown field {unknown[0]!r}", hint=f"known fields here: {', '.join(allowed) or 'URL prefixes'}"
        )
    return {key: item for key, item in items.items() if item.value is not None}


def _text(node: Located) -> str:
    if not isinstance(node.value, str) or not node.value.strip():
        node.fail(f"expected a non-empty string, got {node.value!r}")
    return node.value.strip()


def _number(node: Located, minimum: float = 0.0) -> float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        node.fail(f"expected a number >= {minimum:g}, got {value!r}")
    return float(value)


def _integer(node: Located, minimum: int = 0) -> int:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        node.fail(f"expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _env_name(node: Located) -> str:
    name = _text(node)
    if not name.replace("_", "").isalnum() or name[0].isdigit():
        node.fail(
            f"{name!r} is not an environment variable name",
            hint="name the variable holding the secret (e.g. MLOPS_WEBHOOK_SECRET), never the secret itself",
        )
    return name


def _retry(fields: Mapping[str, Located], default: RetryPolicy) -> RetryPolicy:
    values: dict[str, Any] = {}
    for key in _RETRY_KEYS:
        if key in fields:
            values[key] = _integer(fields[key]) if key == "retries" else _number(fields[key])
    return replace(default, **values)


def _webhook(node: Located) -> WebhookConfig:
    w = _fields(node, ("secret_env", "secret_envs", "allow_unsigned", *_RETRY_KEYS))
    envs: dict[str, str] = {}
    if "secret_envs" in w:
        for prefix, env in _fields(w["secret_envs"], tuple(w["secret_envs"].mapping())).items():
            if not prefix.startswith(("http://", "https://")):
                env.fail("keys of secret_envs are URL prefixes (http:// or https://)")
            envs[prefix] = _env_name(env)
    return WebhookConfig(
        secret_env=_env_name(w["secret_env"]) if "secret_env" in w else DEFAULT_SECRET_ENV,
        secret_envs=envs,
        allow_unsigned=w["allow_unsigned"].boolean() if "allow_unsigned" in w else False,
        retry=_retry(w, RetryPolicy()),
    )


def _email(node: Located) -> SmtpConfig:
    e = _fields(node, ("host", "port", "from", "starttls", "ssl", "username", "password_env", *_RETRY_KEYS))
    for key in ("host", "from"):
        if key not in e:
            node.fail(
                f"missing required field '{key}'", hint="e.g. email: {host: smtp.example.com, from: mlops@example.com}"
            )
    email = SmtpConfig(
        host=_text(e["host"]),
        sender=_text(e["from"]),
        port=_integer(e["port"], 1) if "port" in e else 25,
        starttls=e["starttls"].boolean() if "starttls" in e else False,
        ssl=e["ssl"].boolean() if "ssl" in e else False,
        username=_text(e["username"]) if "username" in e else None,
        password_env=_env_name(e["password_env"]) if "password_env" in e else None,
        retry=_retry(e, RetryPolicy(retries=1)),
    )
    if email.ssl and email.starttls:
        e["ssl"].fail("use either ssl (SMTPS, port 465) or starttls (port 587), not both")
    return email


def parse_notifier_config(data: Any, *, source: str, field: str = SECTION) -> NotifierConfig:
    """Parse the ``notifications:`` settings (format in the module docstring).

    ``data`` is the section as the one YAML reader gives it (errors name file:line) or plain data (users' code,
    errors name ``source`` and the field). ``None`` gives the embedded default: a JSONL file under the state dir,
    webhooks signed with the secret in ``$MLOPS_WEBHOOK_SECRET``, no email.
    """
    root = Located.wrap(data, source, field)
    if root.value is None:
        return NotifierConfig()
    top = _fields(root, ("webhook", "email", "file", "stdout"))
    file: str | None = DEFAULT_FILE
    if "file" in top:
        file = None if top["file"].value is False else _text(top["file"])
    elif "file" in root.mapping():  # written as `file:` (null): no file
        file = None
    return NotifierConfig(
        webhook=_webhook(top["webhook"]) if "webhook" in top else WebhookConfig(),
        email=_email(top["email"]) if "email" in top else None,
        file=file,
        stdout=top["stdout"].boolean() if "stdout" in top else False,
    )


def notifier_config_from(document: YamlFile) -> NotifierConfig:
    """The ``notifications:`` section of an ``mlops.yaml`` already read (none: the embedded default)."""
    return parse_notifier_config(document.section(SECTION), source=document.path)


def load_notifier_config(config_file: Path) -> NotifierConfig:
    """The ``notifications:`` section of ``mlops.yaml`` (no file or no section: the embedded default)."""
    return notifier_config_from(read_yaml(config_file, what="settings file", missing_ok=True))
