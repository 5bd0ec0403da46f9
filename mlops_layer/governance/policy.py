"""Promotion policy as code: ``governance/policy.yaml`` parsed into a :class:`Policy` value.

The file says, per target alias, which rules a version must pass, whether the target may be promoted
automatically, what a rollback needs, and which roles people (principals of ``allowed_signers``) hold. Its git
blob hash goes into every decision so an auditor knows exactly which rules applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from mlops_layer.errors import ConfigError, InputError, NotFoundError
from mlops_layer.governance.cards import validate_required_names
from mlops_layer.governance.principals import Principals, principal_problem, principals_from_sections
from mlops_layer.policyfile import (
    POLICY_HINT,
    POLICY_SECTIONS,
    PolicyDocument,
    load_policy_document,
    parse_policy_document,
)
from mlops_layer.yamlfile import Fields, Located

POLICY_VERSION = 1
# Sections of policy.yaml that other parts of the layer read and validate (drift gate, alerts), or that nothing
# reads (warned about by the document reader); they are covered by the same blob hash, but not parsed here.
OWN_SECTIONS = (
    "version",
    "roles",
    "targets",
    "models",
    "identity",
    "principals",
    "service_accounts",
    "monitoring_roles",
)
FOREIGN_SECTIONS = tuple(name for name in POLICY_SECTIONS if name not in OWN_SECTIONS)
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class MetricThreshold:
    """The candidate's metric must be >= ``min`` and/or <= ``max``."""

    metric: str
    min: float | None = None
    max: float | None = None
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class NoRegression:
    """Better than the holder by at least ``min_delta`` (absolute) and/or ``min_relative`` (fraction)."""

    metric: str
    direction: str = "higher"
    min_delta: float | None = None
    min_relative: float | None = None
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class LineageClean:
    require_committed: bool = True
    require_data_in_remote: bool = True
    require_lock_up_to_date: bool = True
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class CardFields:
    required: tuple[str, ...] = ()
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class PromotionOrder:
    """The candidate must have held ``must_have_held`` for ``min_days`` (and still hold it, if asked)."""

    must_have_held: str
    min_days: float = 0.0
    must_still_hold: bool = False
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class DriftPassed:
    """The latest drift check of the candidate passed and is at most ``max_age_days`` old.

    ``dataset`` (a DVC path): only checks of that file, with the md5 DVC records for it, count; without it, only
    checks of a batch ``mlops monitor`` recorded for the model count.
    """

    max_age_days: float | None = None
    min_rows: int | None = None
    dataset: str | None = None
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class Approvals:
    """``count`` distinct, signed approvals by holders of ``roles`` (empty: the card's approver_roles)."""

    count: int = 1
    roles: tuple[str, ...] = ()
    require_each_role: bool = False
    exclude_trainer: bool = True
    exclude_registrant: bool = True
    max_age_days: float | None = None
    reusable: bool = False  # True: one approval may enable several promotions of the same version
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class EvaluationMetric:
    """One metric the layer computes itself on the holdout: bounds, and how much worse than the holder it may be
    (``max_regression``, absolute, in the metric's own units; 0 = no worse; None = not compared)."""

    metric: str
    direction: str
    min: float | None = None
    max: float | None = None
    max_regression: float | None = None


@dataclass(frozen=True)
class Evaluation:
    """Independent evaluation: the layer scores the candidate and the current holder on the same holdout.

    ``data`` is the holdout's DVC-tracked path (None: the card's ``evaluation.data``); ``target`` its label column
    (None: the card's ``columns.target``). Never reads metrics a run logged about itself.
    """

    metrics: tuple[EvaluationMetric, ...]
    data: str | None = None
    target: str | None = None
    name: str = ""
    line: int = 0


Rule: TypeAlias = (
    MetricThreshold | NoRegression | LineageClean | CardFields | PromotionOrder | DriftPassed | Approvals | Evaluation
)
RULE_TYPES: dict[str, str] = {
    "metric_threshold": "metric, min and/or max",
    "no_regression": "metric, direction (higher|lower), min_delta and/or min_relative",
    "lineage_clean": "require_committed, require_data_in_remote, require_lock_up_to_date",
    "card_fields": "required: [field, ...]",
    "promotion_order": "must_have_held, min_days, must_still_hold",
    "drift_passed": "max_age_days, min_rows, dataset (DVC path)",
    "approvals": "count, roles, require_each_role, exclude_trainer, exclude_registrant, max_age_days, reusable",
    "evaluation": "metrics: {NAME: {min, max, max_regression, direction}}, data (DVC path), target",
}


RULE_FIELDS: dict[str, tuple[str, ...]] = {
    "metric_threshold": ("metric", "min", "max"),
    "no_regression": ("metric", "direction", "min_delta", "min_relative"),
    "lineage_clean": ("require_committed", "require_data_in_remote", "require_lock_up_to_date"),
    "card_fields": ("required",),
    "promotion_order": ("must_have_held", "min_days", "must_still_hold"),
    "drift_passed": ("max_age_days", "min_rows", "dataset"),
    "approvals": (
        "count",
        "roles",
        "require_each_role",
        "exclude_trainer",
        "exclude_registrant",
        "max_age_days",
        "reusable",
    ),
    "evaluation": ("metrics", "data", "target"),
}


def rule_type(rule: Rule) -> str:
    return {
        MetricThreshold: "metric_threshold",
        NoRegression: "no_regression",
        LineageClean: "lineage_clean",
        CardFields: "card_fields",
        PromotionOrder: "promotion_order",
        DriftPassed: "drift_passed",
        Approvals: "approvals",
        Evaluation: "evaluation",
    }[type(rule)]


@dataclass(frozen=True)
class RollbackPolicy:
    """What returning an alias to its previous holder needs: ``requires_approvals`` signed approvals."""

    requires_approvals: int = 0
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetPolicy:
    alias: str
    rules: tuple[Rule, ...] = ()
    auto_promote: bool = False
    rollback: RollbackPolicy = field(default_factory=RollbackPolicy)
    description: str = ""


@dataclass(frozen=True)
class Policy:
    """The parsed policy. ``roles`` maps a principal (as in allowed_signers) to the roles it holds."""

    targets: dict[str, TargetPolicy]
    roles: dict[str, tuple[str, ...]]
    model_targets: dict[str, dict[str, TargetPolicy]] = field(default_factory=dict)
    path: str = ""
    policy_hash: str = ""
    identity: str = "declared"  # "signed": trainer and registrant are compared by signed principals
    # MLflow username -> principal (applied by the governing server) and the service accounts CI trains under
    principals: Principals = field(default_factory=Principals)
    # roles whose holders may post drift and monitoring evidence to the governing server (empty: nobody)
    monitoring_roles: tuple[str, ...] = ()

    def target(self, model: str, alias: str) -> TargetPolicy | None:
        """The rules for promoting ``model`` to ``alias``: a per-model section wins over the shared one."""
        per_model = self.model_targets.get(model, {})
        return per_model.get(alias) or self.targets.get(alias)

    def drift_datasets(self) -> set[str]:
        """The DVC paths the ``drift_passed`` rules name (any target, any model)."""
        sections = [self.targets, *self.model_targets.values()]
        return {
            r.dataset
            for targets in sections
            for target in targets.values()
            for r in target.rules
            if isinstance(r, DriftPassed) and r.dataset
        }

    def promotion_chain(self, model: str, alias: str) -> list[str]:
        """``alias`` preceded by the aliases its ``promotion_order`` rules require to be held first (staging, then
        champion): the order in which a new version walks the targets."""
        chain = [alias]
        while True:
            target = self.target(model, chain[0])
            before = [r.must_have_held for r in (target.rules if target else ()) if isinstance(r, PromotionOrder)]
            if not before or before[0] in chain:
                return chain
            chain.insert(0, before[0])

    def roles_of(self, principal: str) -> tuple[str, ...]:
        return self.roles.get(principal, ())

    def holders_of(self, role: str) -> tuple[str, ...]:
        return tuple(sorted(p for p, roles in self.roles.items() if role in roles))


def load_policy(path: Path) -> Policy:
    return policy_from_document(load_policy_document(path))


def parse_policy(data: bytes, file: str) -> Policy:
    return policy_from_document(parse_policy_document(data, file))


def policy_from_document(document: PolicyDocument) -> Policy:
    """The promotion rules and roles of a policy document parsed once (see :mod:`mlops_layer.policyfile`)."""
    if not document.exists:
        raise NotFoundError(f"promotion policy {document.path} does not exist", hint=POLICY_HINT)
    doc = document.root
    if doc.value is None:
        doc.fail("the policy is empty", hint="define at least 'targets:'")
    top = Fields(doc, allowed=(*OWN_SECTIONS, *FOREIGN_SECTIONS))
    identity_node = top.get("identity")
    identity = identity_node.choice(("declared", "signed")) if identity_node is not None else "declared"
    version = top.get("version")
    if version is not None and version.integer() != POLICY_VERSION:
        version.fail(f"unsupported policy version {version.value}", hint=f"this layer reads version {POLICY_VERSION}")
    roles = _roles(top.need("roles", hint="map each approver's principal to a list of roles"))
    monitoring_node = top.get("monitoring_roles")
    monitoring_roles = monitoring_node.strings() if monitoring_node is not None else ()
    targets = _targets(top.need("targets", hint="one section per alias, e.g. targets: {staging: {rules: [...]}}"))
    model_targets: dict[str, dict[str, TargetPolicy]] = {}
    models = top.get("models")
    if models is not None:
        for model, section in models.mapping().items():
            f = Fields(section, allowed=("targets",))
            model_targets[model] = _targets(f.need("targets"))
            f.finish()
    principals = principals_from_sections(top.get("principals"), top.get("service_accounts"), roles, document.path)
    top.finish()
    known_roles = {r for rs in roles.values() for r in rs}
    for target in [*targets.values(), *(t for ts in model_targets.values() for t in ts.values())]:
        for rule in target.rules:
            if isinstance(rule, Approvals):
                _check_roles_known(doc, rule.roles, known_roles, rule.line)
        _check_roles_known(doc, target.rollback.roles, known_roles, 0)
    if monitoring_node is not None:
        _check_roles_known(doc, monitoring_roles, known_roles, monitoring_node.line)
    return Policy(
        targets=targets,
        roles=roles,
        model_targets=model_targets,
        path=document.path,
        policy_hash=document.policy_hash,
        identity=identity,
        principals=principals,
        monitoring_roles=monitoring_roles,
    )


def _check_roles_known(doc: Located, wanted: tuple[str, ...], known: set[str], line: int) -> None:
    missing = [r for r in wanted if r not in known]
    if missing:
        where = Located(None, doc.file, line or doc.line, "roles")
        where.fail(
            f"role(s) {', '.join(missing)} are held by nobody in 'roles:'",
            hint="assign the role to at least one principal, or fix the spelling",
        )


def _roles(node: Located) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for principal, roles_node in node.mapping().items():
        problem = principal_problem(principal)
        if problem is not None:
            roles_node.fail(
                f"principal {principal!r} {problem}", hint="use the literal name written in allowed_signers"
            )
        roles = roles_node.strings()
        for role in roles:
            if not _ROLE.match(role):
                roles_node.fail(f"{role!r} is not a valid role name", hint="letters, digits, '_', '-', '.'")
        out[principal] = roles
    return out


def _targets(node: Located) -> dict[str, TargetPolicy]:
    out: dict[str, TargetPolicy] = {}
    for alias, section in node.mapping().items():
        if not _ALIAS.match(alias) or alias == "latest" or re.match(r"^[vV]\d+$", alias):
            section.fail(
                f"{alias!r} is not a valid MLflow alias",
                hint="letters, digits, '_' and '-'; not 'latest', not v<number>",
            )
        out[alias] = _target(alias, section)
    return out


def _target(alias: str, node: Located) -> TargetPolicy:
    if node.value is None:
        node.fail("empty target section", hint="give at least 'rules: []' to allow promotion without rules")
    f = Fields(node, allowed=("rules", "auto_promote", "rollback", "description"))
    rules_node = f.need("rules", hint="use 'rules: []' on purpose if promotion needs nothing")
    rules = tuple(_rule(item) for item in rules_node.sequence())
    auto = f.get("auto_promote")
    rollback = f.get("rollback")
    description = f.get("description")
    f.finish()
    names = [_rule_name(r) for r in rules]
    for i, name in enumerate(names):
        if names.index(name) != i:
            rules_node.sequence()[i].fail(
                f"two rules are both named {name!r}", hint="give one of them a distinct 'name:'"
            )
    return TargetPolicy(
        alias=alias,
        rules=rules,
        auto_promote=auto.boolean() if auto else False,
        rollback=_rollback(rollback) if rollback else RollbackPolicy(),
        description=description.string(allow_empty=True) if description else "",
    )


def _rollback(node: Located) -> RollbackPolicy:
    f = Fields(node, allowed=("requires_approvals", "roles"))
    count = f.get("requires_approvals")
    roles = f.get("roles")
    f.finish()
    return RollbackPolicy(
        requires_approvals=count.integer(minimum=0) if count else 0, roles=roles.strings() if roles else ()
    )


def _rule(node: Located) -> Rule:
    kind_node = Fields(node).need("type", hint=f"one of: {', '.join(RULE_TYPES)}")
    kind = kind_node.string()
    if kind not in RULE_TYPES:
        kind_node.fail(f"unknown rule type {kind!r}", hint=f"known rule types: {', '.join(RULE_TYPES)}")
    f = Fields(node, allowed=("type", "name", *RULE_FIELDS[kind]))
    try:
        f.finish()  # first: a misspelt field must be named as such, not reported as a missing one
    except ConfigError as exc:
        raise ConfigError(exc.message, hint=f"a {kind} rule takes: type, name, {RULE_TYPES[kind]}") from None
    name_node = f.get("name")
    name = name_node.string() if name_node else ""
    line = node.line
    rule: Rule
    if kind == "metric_threshold":
        metric = f.need("metric").string()
        lo, hi = f.get("min"), f.get("max")
        if lo is None and hi is None:
            node.fail("a metric_threshold needs 'min' and/or 'max'")
        low = lo.number() if lo else None
        high = hi.number() if hi else None
        if low is not None and high is not None and hi is not None and low > high:
            hi.fail(f"max {high} is below min {low}")
        rule = MetricThreshold(metric=metric, min=low, max=high, name=name, line=line)
    elif kind == "no_regression":
        metric = f.need("metric").string()
        direction = _direction(f.get("direction"), metric, node)
        delta, rel = f.get("min_delta"), f.get("min_relative")
        rule = NoRegression(
            metric=metric,
            direction=direction,
            min_delta=delta.number() if delta else None,
            min_relative=rel.number() if rel else None,
            name=name,
            line=line,
        )
    elif kind == "lineage_clean":
        flags = {}
        for key in ("require_committed", "require_data_in_remote", "require_lock_up_to_date"):
            item = f.get(key)
            flags[key] = item.boolean() if item else True
        rule = LineageClean(**flags, name=name, line=line)
    elif kind == "card_fields":
        req_node = f.need("required", hint="list the model-card fields that must be filled in")
        required = req_node.strings()
        validate_required_names(req_node, required)
        rule = CardFields(required=required, name=name, line=line)
    elif kind == "promotion_order":
        held = f.need("must_have_held").string()
        days = f.get("min_days")
        still = f.get("must_still_hold")
        rule = PromotionOrder(
            must_have_held=held,
            min_days=days.number(minimum=0.0) if days else 0.0,
            must_still_hold=still.boolean() if still else False,
            name=name,
            line=line,
        )
    elif kind == "evaluation":
        rule = _evaluation_rule(f, node, name)
    elif kind == "drift_passed":
        age = f.get("max_age_days")
        rows = f.get("min_rows")
        dataset = f.get("dataset")
        rule = DriftPassed(
            max_age_days=age.number(minimum=0.0) if age else None,
            min_rows=rows.integer(minimum=1) if rows else None,
            dataset=_dvc_path(dataset) if dataset else None,
            name=name,
            line=line,
        )
    else:
        count_node = f.get("count")
        roles = f.get("roles")
        each = f.get("require_each_role")
        bools = {}
        for key in ("exclude_trainer", "exclude_registrant"):
            item = f.get(key)
            bools[key] = item.boolean() if item else True
        reusable = f.get("reusable")
        bools["reusable"] = reusable.boolean() if reusable else False
        age = f.get("max_age_days")
        rule = Approvals(
            count=count_node.integer(minimum=1) if count_node else 1,
            roles=roles.strings() if roles else (),
            require_each_role=each.boolean() if each else False,
            max_age_days=age.number(minimum=0.0) if age else None,
            name=name,
            line=line,
            **bools,
        )
        if rule.require_each_role and rule.roles and rule.count < len(rule.roles) and count_node is not None:
            count_node.fail(
                f"require_each_role needs at least one approver per role: count {rule.count} < {len(rule.roles)} roles"
            )
    return rule


def _direction(given: Located | None, metric: str, where: Located) -> str:
    """A rule's ``direction:``, or the metric's own when the layer knows the metric."""
    from mlops_layer.metrics import available, direction_of

    if given is not None:
        return given.choice(DIRECTIONS)
    known = direction_of(metric, root=Path.cwd())
    if known is None:
        where.fail(
            f"metric {metric!r} is not one the layer knows, so its direction must be given (direction: higher|lower)",
            hint=f"known metrics: {', '.join(available())}; or a custom 'module:function'",
        )
    return known


def _evaluation_rule(f: Fields, node: Located, name: str) -> Evaluation:
    from mlops_layer.metrics import resolve

    metrics_node = f.need("metrics", hint="e.g. metrics: {roc_auc: {min: 0.9, max_regression: 0.01}}")
    out: list[EvaluationMetric] = []
    for metric, body in metrics_node.mapping().items():
        try:
            spec = resolve(metric, root=Path.cwd())
        except ConfigError as exc:
            body.fail(exc.message, hint=exc.hint)
        settings = (
            Fields(body, allowed=("min", "max", "max_regression", "direction")) if body.value is not None else None
        )
        if settings is None:
            body.fail(f"metric {metric!r} needs min, max and/or max_regression")
        settings.finish()
        lo, hi, margin = settings.get("min"), settings.get("max"), settings.get("max_regression")
        if lo is None and hi is None and margin is None:
            body.fail(f"metric {metric!r} needs min, max and/or max_regression")
        given = settings.get("direction")
        if given is None and spec.direction is None:
            body.fail(
                f"custom metric {metric!r} does not say its direction",
                hint="add direction: higher|lower, or set greater_is_better on the function",
            )
        out.append(
            EvaluationMetric(
                metric=metric,
                direction=given.choice(DIRECTIONS) if given else str(spec.direction),
                min=lo.number() if lo else None,
                max=hi.number() if hi else None,
                max_regression=margin.number(minimum=0.0) if margin else None,
            )
        )
    if not out:
        metrics_node.fail("an evaluation rule needs at least one metric")
    data, target = f.get("data"), f.get("target")
    return Evaluation(
        metrics=tuple(out),
        data=data.string() if data else None,
        target=target.string() if target else None,
        name=name,
        line=node.line,
    )


def _rule_name(rule: Rule) -> str:
    if rule.name:
        return rule.name
    kind = rule_type(rule)
    if isinstance(rule, (MetricThreshold, NoRegression)):
        return f"{kind}:{rule.metric}"
    if isinstance(rule, PromotionOrder):
        return f"{kind}:{rule.must_have_held}"
    return kind


def rule_name(rule: Rule) -> str:
    """The name a rule is reported under: its ``name:`` or ``<type>[:<metric or alias>]``."""
    return _rule_name(rule)


def check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias) or alias == "latest" or re.match(r"^[vV]\d+$", alias):
        raise InputError(
            f"{alias!r} is not a valid alias",
            hint="letters, digits, '_' and '-'; not 'latest', not v<number>",
        )
    return alias


_VERSION = re.compile(r"^[0-9]{1,18}$")


def check_version(version: str) -> str:
    """A registry version number: digits only (no '/', '..' or control characters reach a backend)."""
    if not _VERSION.fullmatch(version):
        raise InputError(f"{version!r} is not a valid model version", hint="a version is a number, e.g. 3")
    return version


def _dvc_path(node: Located) -> str:
    """A DVC path named by a rule: relative to the project root, inside it (no absolute path, no '..')."""
    text = node.string().strip()
    parts = Path(text).parts
    if Path(text).is_absolute() or ".." in parts or not parts:
        node.fail(
            f"{text!r} is not a path inside the project",
            hint="name the file as DVC tracks it, relative to the project root (e.g. data/prod/batch.csv)",
        )
    return Path(text).as_posix()
