"""Model cards: the governance metadata of one model, read from ``governance/models/<name>.yaml`` and
validated.

A card says who owns the model, what it is for, how its predictions are used, what service it must give, how
it is retrained, who decides promotion, how sensitive it is, and whom to alert. Errors name the file, the
field and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlops_layer.errors import InputError
from mlops_layer.yamlfile import Fields, Located, git_blob_hash, parse_located, read_bytes

SENSITIVITY_LEVELS = ("public", "internal", "confidential", "restricted")
RETRAINING_METHODS = ("manual", "scheduled", "drift-triggered", "performance-triggered", "continuous")
CHANNEL_KINDS = ("email", "webhook")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Channel:
    """Where a stakeholder is alerted: an email address or a webhook URL."""

    kind: str
    target: str


@dataclass(frozen=True)
class Stakeholder:
    name: str
    role: str = ""
    channels: tuple[Channel, ...] = ()
    alerts: tuple[str, ...] = ()  # which alerts they want; empty = all


@dataclass(frozen=True)
class ServiceLevel:
    availability_percent: float
    max_latency_ms: float | None = None
    support_hours: str = ""


@dataclass(frozen=True)
class Retraining:
    method: str
    cadence: str
    trigger_notes: str = ""


TASKS = ("classification", "regression")


@dataclass(frozen=True)
class ColumnRoles:
    """What each column of the model's data is, declared once on the card (``columns:``).

    ``id`` and ``timestamp`` columns are never features; ``target`` holds the true outcome (labels in monitoring,
    the holdout's truth in evaluation); ``prediction`` is the model's output column in a reference profile;
    ``include``/``exclude`` narrow the features (empty ``include``: every other column).
    """

    id: tuple[str, ...] = ()
    timestamp: str | None = None
    target: str | None = None
    prediction: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    task: str | None = None  # classification | regression (None: told by the model)

    @property
    def non_features(self) -> tuple[str, ...]:
        named = (*self.id, self.timestamp, self.target, self.prediction, *self.exclude)
        return tuple(dict.fromkeys(c for c in named if c))

    def role_of(self, column: str) -> str:
        if column in self.id:
            return "id"
        if column == self.timestamp:
            return "timestamp"
        if column == self.target:
            return "target"
        if column == self.prediction:
            return "prediction"
        if column in self.exclude or (self.include and column not in self.include):
            return "ignored"
        return "feature"

    def features(self, columns: Any) -> list[str]:
        """The feature columns among ``columns``, in their order."""
        return [str(c) for c in columns if self.role_of(str(c)) == "feature"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": list(self.id),
            "timestamp": self.timestamp,
            "target": self.target,
            "prediction": self.prediction,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "task": self.task,
        }


@dataclass(frozen=True)
class ModelCard:
    """Governance metadata of one model. ``card_hash`` is the git blob hash of the file it was read from."""

    name: str
    business_owner: str
    intended_use: str
    intended_users: tuple[str, ...]
    prediction_consumption: str
    sla: ServiceLevel
    retraining: Retraining
    approver_roles: tuple[str, ...]
    sensitivity: str
    code_shareable: bool
    reuse_notes: str = ""
    stakeholders: tuple[Stakeholder, ...] = ()
    description: str = ""
    limitations: str = ""
    columns: ColumnRoles = field(default_factory=ColumnRoles)
    evaluation_data: str | None = None  # the holdout's DVC path for independent evaluation (``evaluation: {data}``)
    # signed statements of people on whose behalf a service account trains this model (``training_statements:``)
    training_statements: tuple[dict[str, Any], ...] = ()
    path: str = ""
    card_hash: str = ""
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    placeholders: dict[str, int] = field(default_factory=dict)  # field still to answer -> its line

    def present(self, field_name: str) -> bool:
        """Whether a (possibly dotted, e.g. ``sla.max_latency_ms``) field has a non-empty, answered value."""
        if field_name.split(".")[0] in self.placeholders:
            return False
        value: Any = self
        for part in field_name.split("."):
            if not hasattr(value, part) or part in ("path", "card_hash", "lines", "placeholders"):
                return False
            value = getattr(value, part)
        return value is not None and value != "" and value != ()


CARD_FIELDS = tuple(
    f.name
    for f in fields(ModelCard)
    if f.name not in ("path", "card_hash", "lines", "columns", "evaluation_data", "placeholders", "training_statements")
)
PLACEHOLDER = "TODO"  # an answer starting with this word is a question still open (`mlops card new` writes them)
_PLACEHOLDER = re.compile(rf"^\s*{PLACEHOLDER}\b", re.IGNORECASE)
SUBFIELDS = {
    "sla": ("availability_percent", "max_latency_ms", "support_hours"),
    "retraining": ("method", "cadence", "trigger_notes"),
}


def validate_model_name(name: str) -> None:
    """One rule for model names everywhere: registration, cards, policy (a name is also the card's file name)."""
    if not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise InputError(
            f"model name {name!r} is not valid",
            hint="use letters, digits, '.', '_' or '-' (it is also the card's file name)",
        )


def card_path(cards_dir: Path, name: str) -> Path:
    validate_model_name(name)
    return cards_dir / f"{name}.yaml"


def load_card(cards_dir: Path, name: str) -> ModelCard:
    """Read and validate the card of ``name``; raises NotFoundError when absent, ConfigError when invalid."""
    path = card_path(cards_dir, name)
    data = read_bytes(
        path,
        what=f"model card of '{name}'",
        hint=f"write {path.name} under {cards_dir} (see `mlops card show --help` for the format)",
    )
    return parse_card(data, str(path), name)


def parse_card(data: bytes, file: str, name: str) -> ModelCard:
    """Validate card bytes; ``name`` (from the file name) is the model, a ``name:`` field must agree."""
    doc = parse_located(data, file)
    if doc.value is None:
        doc.fail("the model card is empty", hint="fill in the required fields")
    top = Fields(doc)
    lines = {key: loc.line for key, loc in top.items.items()}

    declared = top.get("name")
    if declared is not None and declared.string() != name:
        declared.fail(f"says {declared.value!r} but the file is the card of {name!r}", hint="make them agree")

    placeholders: dict[str, int] = {}

    def answer(key: str, hint: str | None = None) -> Located | None:
        """The field's node, or None (recorded) when it still holds a placeholder."""
        node = top.need(key, hint=hint)
        if is_placeholder(node.value):
            placeholders[key] = node.line
            return None
        return node

    owner_node = answer("business_owner")
    owner = owner_node.string() if owner_node else ""
    use_node = answer("intended_use")
    intended_use = use_node.string() if use_node else ""
    users_node = answer("intended_users")
    users = users_node.strings() if users_node else ()
    if users_node is not None and not users:
        users_node.fail("name at least one intended user group")
    consumption_node = answer("prediction_consumption", hint="say how predictions are consumed")
    consumption = consumption_node.string() if consumption_node else ""
    sla_node = answer("sla")
    sla = _sla(sla_node) if sla_node else ServiceLevel(availability_percent=0.0)
    retraining_node = answer("retraining")
    retraining = _retraining(retraining_node) if retraining_node else Retraining(method="", cadence="")
    roles_node = answer("approver_roles", hint="list the roles (from policy.yaml roles) that decide promotion")
    approver_roles = roles_node.strings() if roles_node else ()
    if roles_node is not None and not approver_roles:
        roles_node.fail("name at least one role that decides promotion")
    sensitivity_node = answer("sensitivity")
    sensitivity = sensitivity_node.choice(SENSITIVITY_LEVELS) if sensitivity_node else ""
    shareable_node = answer("code_shareable")
    code_shareable = shareable_node.boolean() if shareable_node else False
    reuse = top.get("reuse_notes")
    if reuse is not None and is_placeholder(reuse.value):
        placeholders["reuse_notes"] = reuse.line
        reuse = None
    stakeholders_node = top.get("stakeholders")
    if stakeholders_node is not None and is_placeholder(stakeholders_node.value):
        placeholders["stakeholders"] = stakeholders_node.line
        stakeholders_node = None
    stakeholders = tuple(_stakeholder(item) for item in stakeholders_node.sequence()) if stakeholders_node else ()
    description = top.get("description")
    limitations = top.get("limitations")
    columns_node = top.get("columns")
    evaluation_node = top.get("evaluation")
    statements_node = top.get("training_statements")
    top.finish()
    if code_shareable and sensitivity == "restricted":
        top.items["code_shareable"].fail(
            "a 'restricted' model cannot have shareable code", hint="set code_shareable: false"
        )
    return ModelCard(
        name=name,
        business_owner=owner,
        intended_use=intended_use,
        intended_users=users,
        prediction_consumption=consumption,
        sla=sla,
        retraining=retraining,
        approver_roles=approver_roles,
        sensitivity=sensitivity,
        code_shareable=code_shareable,
        reuse_notes=reuse.string(allow_empty=True) if reuse else "",
        stakeholders=stakeholders,
        description=description.string(allow_empty=True) if description else "",
        limitations=limitations.string(allow_empty=True) if limitations else "",
        columns=_columns(columns_node) if columns_node else ColumnRoles(),
        evaluation_data=_evaluation(evaluation_node) if evaluation_node else None,
        training_statements=_training_statements(statements_node) if statements_node else (),
        path=file,
        card_hash=git_blob_hash(data),
        lines=lines,
        placeholders=placeholders,
    )


def _columns(node: Located) -> ColumnRoles:
    f = Fields(node, allowed=("id", "timestamp", "target", "prediction", "features", "task"))
    f.finish()
    ids_node = f.get("id")
    ids: tuple[str, ...] = ()
    if ids_node is not None:
        ids = ids_node.strings() if isinstance(ids_node.value, list) else (ids_node.string(),)
    single = {
        key: (item.string() if item else None) for key in ("timestamp", "target", "prediction") for item in [f.get(key)]
    }
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    features = f.get("features")
    if features is not None:
        if isinstance(features.value, list):
            include = features.strings()
        else:
            ff = Fields(features, allowed=("include", "exclude"))
            ff.finish()
            inc, exc = ff.get("include"), ff.get("exclude")
            include = inc.strings() if inc else ()
            exclude = exc.strings() if exc else ()
    task = f.get("task")
    roles = ColumnRoles(
        id=ids,
        timestamp=single["timestamp"],
        target=single["target"],
        prediction=single["prediction"],
        include=include,
        exclude=exclude,
        task=task.choice(TASKS) if task else None,
    )
    named = [*ids, *(v for v in single.values() if v)]
    for column in named:
        if named.count(column) > 1:
            node.fail(
                f"column {column!r} is given two roles",
                hint="a column is an id, a timestamp, the target or the prediction",
            )
        if column in include:
            node.fail(f"column {column!r} is both a feature and the {roles.role_of(column)}")
    return roles


def _evaluation(node: Located) -> str:
    f = Fields(node, allowed=("data",))
    f.finish()
    return f.need("data", hint="the DVC-tracked holdout file, e.g. data: data/holdout.csv").string()


def _training_statements(node: Located) -> tuple[dict[str, Any], ...]:
    """``training_statements:``: a list of ``{statement: {...}, signature: ...}`` as ``mlops sign-training`` prints
    them. Only the shape is checked here; signatures are verified where they are used (against the committed
    ``allowed_signers``)."""
    out: list[dict[str, Any]] = []
    for item in node.sequence():
        f = Fields(item, allowed=("statement", "signature"))
        f.finish()
        statement = f.need("statement", hint="paste the output of `mlops sign-training` unchanged")
        body: dict[str, Any] = {}
        for key, value in statement.mapping().items():
            if not isinstance(value.value, str):
                value.fail("expected a quoted string", hint="paste the output of `mlops sign-training` unchanged")
            body[key] = value.value
        out.append({"statement": body, "signature": f.need("signature").string()})
    return tuple(out)


def is_placeholder(value: Any) -> bool:
    """An unanswered question: a string answer starting with ``TODO``."""
    return isinstance(value, str) and _PLACEHOLDER.match(value) is not None


def open_questions(card: ModelCard) -> list[str]:
    """``file:line: field: still a placeholder`` for every unanswered question of ``card``."""
    return [
        f"{card.path}:{line}: field '{name}': still a placeholder; answer it (see the comment above it)"
        for name, line in sorted(card.placeholders.items(), key=lambda item: item[1])
    ]


def _sla(node: Located) -> ServiceLevel:
    f = Fields(node)
    availability_node = f.need("availability_percent", hint="e.g. availability_percent: 99.5")
    availability = availability_node.number(minimum=0.0)
    if availability > 100:
        availability_node.fail(f"must be at most 100, got {availability}")
    latency = f.get("max_latency_ms")
    hours = f.get("support_hours")
    f.finish()
    return ServiceLevel(
        availability_percent=availability,
        max_latency_ms=latency.number(minimum=0.0) if latency else None,
        support_hours=hours.string() if hours else "",
    )


def _retraining(node: Located) -> Retraining:
    f = Fields(node)
    method = f.need("method").choice(RETRAINING_METHODS)
    cadence = f.need("cadence", hint="e.g. cadence: monthly, or: on drift alert").string()
    notes = f.get("trigger_notes")
    f.finish()
    return Retraining(method=method, cadence=cadence, trigger_notes=notes.string(allow_empty=True) if notes else "")


def _stakeholder(node: Located) -> Stakeholder:
    f = Fields(node)
    name = f.need("name").string()
    role = f.get("role")
    channels: list[Channel] = []
    email = f.get("email")
    if email is not None:
        address = email.string()
        if not _EMAIL.match(address):
            email.fail(f"{address!r} is not an email address")
        channels.append(Channel("email", address))
    webhook = f.get("webhook")
    if webhook is not None:
        url = webhook.string()
        if not url.startswith(("https://", "http://")):
            webhook.fail(f"{url!r} is not an http(s) URL")
        channels.append(Channel("webhook", url))
    alerts = f.get("alerts")
    f.finish()
    if not channels:
        node.fail(f"stakeholder {name!r} has no channel", hint="give an 'email' and/or a 'webhook'")
    return Stakeholder(
        name=name,
        role=role.string() if role else "",
        channels=tuple(channels),
        alerts=alerts.strings() if alerts else (),
    )


def check_required(card: ModelCard, required: tuple[str, ...]) -> list[str]:
    """The required fields missing or empty on ``card`` (dotted names allowed)."""
    return [name for name in required if not card.present(name)]


def known_field(name: str) -> bool:
    head, _, tail = name.partition(".")
    if head not in CARD_FIELDS:
        return False
    if not tail:
        return True
    return tail in SUBFIELDS.get(head, ())


def validate_required_names(node: Located, names: tuple[str, ...]) -> None:
    for name in names:
        if not known_field(name):
            node.fail(
                f"{name!r} is not a model-card field",
                hint=f"card fields: {', '.join(CARD_FIELDS)}",
            )
