"""The registry seen from git: the annotated tags GTO (iterative/gto) reads, written and read with plain git.

GTO's format (``gto/tag.py``): a version registration is ``NAME@vMAJOR.MINOR.PATCH`` on the commit the version was
built from; a stage assignment is ``NAME#STAGE#N`` on that commit (``N`` counts the artifact's tags); an
unassignment is ``NAME#STAGE!#N``. MLflow version ``3`` maps to SemVer ``v3.0.0``; an alias maps to a stage.
GTO orders events by the tag's date (whole seconds), so each model's tags are dated strictly after its previous
ones. Tags stay local: pushing them is the user's (or CI's) choice, as with any tag.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mlops_layer.errors import BackendError

# GTO's artifact and stage names (gto/constants.py): no dots, no '@' or '#'
_GTO_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-/_]*[a-zA-Z0-9])?$")
_TAG = re.compile(r"^(?P<name>.+?)(?:@v(?P<major>\d+)\.0\.0|#(?P<stage>[^#!]+)(?P<cancel>!?)#(?P<counter>\d+))$")


def gto_name_ok(name: str) -> bool:
    """Whether GTO accepts ``name`` as an artifact or stage name."""
    return bool(_GTO_NAME.match(name))


def semver(version: str) -> str:
    """MLflow version ``3`` -> GTO's ``v3.0.0``."""
    return f"v{int(version)}.0.0"


def version_tag(model: str, version: str) -> str:
    return f"{model}@{semver(version)}"


@dataclass(frozen=True)
class TagEvent:
    """One of a model's GTO tags: a registration (``version``) or an (un)assignment of ``stage``."""

    tag: str
    commit: str
    date: int  # tagger date, seconds since the epoch
    version: str | None = None
    stage: str | None = None
    unassign: bool = False
    counter: int = 0


@dataclass(frozen=True)
class RegistryTags:
    """What GTO will show for one model: version -> commit, and stage -> the version it points at now."""

    versions: dict[str, str]
    stages: dict[str, str]
    events: tuple[TagEvent, ...]
    holders: dict[str, list[str]] = field(default_factory=dict)  # stage -> every version GTO still has in it


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False, env=env, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendError(f"git could not run in {root}: {exc}") from exc
    if out.returncode != 0:
        raise BackendError(f"git {' '.join(args[:2])} failed in {root}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def read_tags(root: Path, model: str) -> RegistryTags:
    """Parse ``model``'s GTO tags (annotated tags only, as GTO reads them) into versions and current stages."""
    fmt = "%(refname:strip=2)%00%(objecttype)%00%(*objectname)%00%(taggerdate:unix)"
    out = _git(root, "for-each-ref", f"--format={fmt}", "refs/tags/")
    events: list[TagEvent] = []
    for line in out.splitlines():
        parts = line.split("\0")
        if len(parts) != 4 or parts[1] != "tag":
            continue
        match = _TAG.match(parts[0])
        if match is None or match["name"] != model:
            continue
        events.append(
            TagEvent(
                tag=parts[0],
                commit=parts[2],
                date=int(parts[3] or 0),
                version=str(int(match["major"])) if match["major"] else None,
                stage=match["stage"],
                unassign=bool(match["cancel"]),
                counter=int(match["counter"] or 0),
            )
        )
    events.sort(key=lambda e: (e.date, e.counter))
    versions = {e.version: e.commit for e in events if e.version is not None}
    holders: dict[str, list[str]] = {}  # stage -> versions assigned it, oldest assignment first (as GTO keeps them)
    for e in events:
        if e.stage is None:
            continue
        # GTO resolves an (un)assignment to the version registered at its commit before it (the latest such)
        at_commit = [v.version for v in events if v.version is not None and v.commit == e.commit and v.date <= e.date]
        if not at_commit:
            continue
        held = [v for v in holders.get(e.stage, []) if v != at_commit[-1]]
        holders[e.stage] = held if e.unassign else [*held, at_commit[-1]]
    stages = {stage: held[-1] for stage, held in holders.items() if held}
    return RegistryTags(versions=versions, stages=stages, events=tuple(events), holders=holders)


def _tag(root: Path, name: str, commit: str, message: str, after: int) -> int:
    """An annotated tag dated strictly after ``after`` (GTO orders by the tag's date, in seconds)."""
    now = int(datetime.now(timezone.utc).timestamp())
    date = max(now, after + 1)
    env = {**os.environ, "GIT_COMMITTER_DATE": f"{date} +0000"}
    _git(root, "tag", "-a", name, "-m", message, commit, env=env)
    return date


def _last_date(tags: RegistryTags) -> int:
    return max((e.date for e in tags.events), default=0)


def tag_version(root: Path, model: str, version: str, commit: str) -> str | None:
    """Write ``NAME@vN.0.0`` on ``commit``; None when it is already there. A tag elsewhere is refused."""
    tags = read_tags(root, model)
    name = version_tag(model, version)
    existing = tags.versions.get(str(int(version)))
    if existing == commit:
        return None
    if existing is not None:
        raise BackendError(
            f"git tag {name} points at {existing[:12]}, not at the version's lineage commit {commit[:12]}",
            hint="the tag was moved or made outside mlops; `mlops audit reconcile` reports it",
        )
    _tag(
        root,
        name,
        commit,
        f"Registering artifact {model} version {semver(version)} (MLflow version {version})",
        _last_date(tags),
    )
    return name


def tag_stage(root: Path, model: str, stage: str, version: str | None, commit: str | None) -> str | None:
    """Record that alias ``stage`` now points at ``version`` (at ``commit``), or at nothing (``version`` None).

    Writes ``NAME#STAGE#N`` (or the unassignment ``NAME#STAGE!#N``); None when GTO already shows exactly that.
    """
    tags = read_tags(root, model)
    current = tags.stages.get(stage)
    if current == version:
        return None
    counter = max((e.counter for e in tags.events), default=0) + 1
    if version is None or commit is None:
        # GTO keeps a stage on every version ever assigned it: unassign each, newest first
        written = None
        after = _last_date(tags)
        for held in reversed(tags.holders.get(stage, [])):
            written = f"{model}#{stage}!#{counter}"
            after = _tag(
                root, written, tags.versions[held], f"Unassigning stage '{stage}' from artifact {model}", after
            )
            counter += 1
        return written
    name = f"{model}#{stage}#{counter}"
    message = f"Assigning stage '{stage}' to artifact {model} version {semver(version)} (MLflow version {version})"
    _tag(root, name, commit, message, _last_date(tags))
    return name


@dataclass(frozen=True)
class TagDisagreement:
    """Where git's tags and MLflow disagree about one model (what ``mlops audit reconcile`` reports)."""

    model: str
    kind: str  # version_tag_moved | version_tag_missing | stage_differs
    message: str


def compare(
    model: str, tags: RegistryTags, lineage_commits: dict[str, str], aliases: dict[str, str]
) -> list[TagDisagreement]:
    """Compare the tags with MLflow: each version's tag on its lineage commit, each alias as the matching stage."""
    out: list[TagDisagreement] = []
    for version, commit in sorted(lineage_commits.items(), key=lambda kv: int(kv[0])):
        tagged = tags.versions.get(version)
        name = version_tag(model, version)
        if tagged is None:
            out.append(TagDisagreement(model, "version_tag_missing", f"no git tag {name} for MLflow version {version}"))
        elif tagged != commit:
            out.append(
                TagDisagreement(
                    model,
                    "version_tag_moved",
                    f"git tag {name} points at {tagged[:12]}, but version {version} was built from {commit[:12]}: "
                    "the tag was moved behind the layer's back",
                )
            )
    for stage in sorted(set(aliases) | set(tags.stages)):
        want, seen = aliases.get(stage), tags.stages.get(stage)
        if want != seen:
            shown = f"v{seen}" if seen else "nothing"
            held = f"v{want}" if want else "nothing"
            out.append(
                TagDisagreement(
                    model,
                    "stage_differs",
                    f"GTO stage {stage!r} shows {shown}, but MLflow's @{stage} holds {held}",
                )
            )
    return out
