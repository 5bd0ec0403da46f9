"""Evidence bundles: one version's evidence in a zip an auditor verifies offline, trusting only their own anchor.

A bundle holds the chain segment from the first entry about the version up to a signed checkpoint that covers every
such entry (entries of other models in between are included: the chain cannot be checked without them, and the
manifest lists them), the checkpoint, the lineage, the decisions, the signed approvals, the drift and evaluation
evidence, the policy, card and ``allowed_signers`` as of each decision, and an in-toto statement. ``manifest.json``
names every member with its SHA-256 and is signed (``manifest.sig``, SSH signature, namespace
:data:`NAMESPACE`) by the exporting custodian's key.

Verification trusts nothing in the bundle by itself: the checkpoint and the manifest must be signed by a key the
auditor names (``--trust FINGERPRINT``) or lists (their own ``allowed_signers``). Through the manifest signature
every member is vouched for; the segment is checked hash by hash up to the signed head; decisions, approvals,
policy and card are checked against the anchored entries (git blob hashes), and each approval signature against the
signers file of its decision. This module imports no mlflow, pandas or git.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_layer.audit import actions
from mlops_layer.audit.checkpoints import NAMESPACE as CHECKPOINT_NAMESPACE
from mlops_layer.audit.checkpoints import Checkpoint, parse_checkpoint
from mlops_layer.audit.entry import AuditEntry, compute_entry_hash, format_timestamp
from mlops_layer.audit.export import in_toto_statement, jsonl_lines
from mlops_layer.errors import InputError

FORMAT = "mlops-evidence-bundle/v1"
NAMESPACE = "mlops-evidence-bundle"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SEGMENT = "chain/segment.jsonl"
CHECKPOINT = "chain/checkpoint.json"
LINEAGE = "lineage.json"
DECISIONS = "decisions.json"
APPROVALS = "approvals.json"
DRIFT = "evidence/drift.json"
EVALUATION = "evidence/evaluation.json"
IN_TOTO = "in-toto/statement.json"
README = "README.txt"
_APPROVAL_NAMESPACE = "mlops-approval"

# ---------------------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class GovernanceFile:
    """A governance file as of a decision: its bytes and where they were read from (a git commit or blob)."""

    kind: str  # "policy" | "card" | "allowed_signers"
    data: bytes
    source: str

    @property
    def blob_hash(self) -> str:
        return git_blob_hash(self.data)

    @property
    def member(self) -> str:
        digest = hashlib.sha256(self.data).hexdigest()[:16]
        return f"governance/{self.kind}-{digest}" + (".yaml" if self.kind in ("policy", "card") else "")


@dataclass(frozen=True)
class DecisionGovernance:
    """The policy, card and signers that stood behind one decision (None when they could not be found)."""

    seq: int
    policy: GovernanceFile | None
    card: GovernanceFile | None
    signers: GovernanceFile | None


def git_blob_hash(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def involved(entries: Iterable[AuditEntry], model: str, version: str) -> list[AuditEntry]:
    """Entries about ``model`` ``version``: registration, decisions, approvals, alias moves, drift, monitoring."""
    return [e for e in entries if e.model == model and e.version == version]


def covering_checkpoint(checkpoints: Sequence[Checkpoint], last_seq: int, size: int) -> Checkpoint | None:
    """The smallest checkpoint covering ``last_seq`` (fewest entries to carry), among those the trail can reach."""
    usable = [c for c in checkpoints if last_seq <= c.size <= size]
    return min(usable, key=lambda c: (c.size, c.time)) if usable else None


@dataclass(frozen=True)
class BundleContent:
    """Everything a bundle is made of, gathered by the api from the trail, the registry and git."""

    model: str
    version: str
    segment: tuple[AuditEntry, ...]
    checkpoint: Checkpoint
    lineage: Mapping[str, Any]
    evaluation: Mapping[str, Any]
    governance: tuple[DecisionGovernance, ...]
    approval_signers: tuple[tuple[int, GovernanceFile | None], ...]  # (approval seq, signers when it was filed)
    trail_size: int
    trail_head: str
    exported_by: str
    notes: tuple[str, ...] = ()


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _readme(content: BundleContent) -> bytes:
    return (
        f"Evidence bundle for {content.model} version {content.version} ({FORMAT}).\n\n"
        "Verify it offline, in an empty folder, with your own trust anchor:\n\n"
        "    mlops audit verify --bundle THIS.zip --trust SHA256:<fingerprint of the key you trust>\n"
        "    mlops audit verify --bundle THIS.zip --allowed-signers YOUR_allowed_signers\n\n"
        f"{MANIFEST} lists every member with its SHA-256 and is signed in {SIGNATURE} (SSH signature, namespace\n"
        f"{NAMESPACE}). {SEGMENT} holds the audit entries from the first one about this version up to the signed\n"
        f"checkpoint in {CHECKPOINT}; entries of other models inside that range are included because the hash chain\n"
        "cannot be checked without them (the manifest lists which).\n"
    ).encode()


def build_members(content: BundleContent) -> dict[str, bytes]:
    """The members of the bundle except the manifest and its signature."""
    entries = list(content.segment)
    mine = involved(entries, content.model, content.version)
    decisions = [e for e in mine if e.action in actions.ALIAS_DECISIONS]
    approvals = [e for e in mine if e.action in (actions.APPROVAL_GRANTED, actions.APPROVAL_REJECTED)]
    drift = [e for e in mine if e.action in (actions.DRIFT_CHECKED, actions.MONITOR_BATCH, actions.ALERT_FIRED)]
    members: dict[str, bytes] = {
        README: _readme(content),
        SEGMENT: "".join(jsonl_lines(entries)).encode("utf-8"),
        CHECKPOINT: _dumps(content.checkpoint.to_dict()),
        LINEAGE: _dumps(dict(content.lineage)),
        DECISIONS: _dumps([{"seq": e.seq, **e.to_dict()} for e in decisions]),
        APPROVALS: _dumps([{"seq": e.seq, "signer": e.actor, **e.details} for e in approvals]),
        DRIFT: _dumps([e.to_dict() for e in drift]),
        EVALUATION: _dumps(dict(content.evaluation)),
        IN_TOTO: _dumps(_statement(mine, content.checkpoint)),
    }
    for gov in content.governance:
        for f in (gov.policy, gov.card, gov.signers):
            if f is not None:
                members[f.member] = f.data
    for _, signers in content.approval_signers:
        if signers is not None:
            members[signers.member] = signers.data
    return members


def _statement(mine: Sequence[AuditEntry], cp: Checkpoint) -> dict[str, Any]:
    return in_toto_statement(list(mine), size=cp.size, head=cp.head, checkpoints=[cp], filters={})


def manifest(content: BundleContent, members: Mapping[str, bytes], created: datetime) -> dict[str, Any]:
    entries = list(content.segment)
    others = sorted({e.model for e in entries if e.model and e.model != content.model})
    return {
        "format": FORMAT,
        "model": content.model,
        "version": content.version,
        "created": format_timestamp(created),
        "exported_by": content.exported_by,
        "trail": {"size_at_export": content.trail_size, "head_at_export": content.trail_head},
        "segment": {
            "from_seq": entries[0].seq,
            "to_seq": entries[-1].seq,
            "entries": len(entries),
            "about_this_version": [e.seq for e in involved(entries, content.model, content.version)],
            "other_subjects": others,
            "other_entries": sum(1 for e in entries if e.model != content.model or e.version != content.version),
            "trail_entries": sum(1 for e in entries if not e.model),
            "note": "entries of other models, other versions and of the trail itself (policy changes, checkpoints) "
            "in this range are included because the chain cannot be verified without them",
        },
        "checkpoint": {"size": content.checkpoint.size, "head": content.checkpoint.head},
        "decisions": [
            {
                "seq": g.seq,
                "policy": _gov_ref(g.policy),
                "card": _gov_ref(g.card),
                "allowed_signers": _gov_ref(g.signers),
            }
            for g in content.governance
        ],
        "approvals": [{"seq": seq, "allowed_signers": _gov_ref(f)} for seq, f in content.approval_signers],
        "notes": list(content.notes),
        "members": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())},
    }


def _gov_ref(f: GovernanceFile | None) -> dict[str, str] | None:
    return None if f is None else {"member": f.member, "source": f.source, "git_blob": f.blob_hash}


def write_bundle(path: Path, content: BundleContent, sign: Any, created: datetime | None = None) -> dict[str, Any]:
    """Write the zip (atomically); ``sign(data, namespace) -> armored signature``. Returns the manifest."""
    members = build_members(content)
    man = manifest(content, members, created or datetime.now(timezone.utc))
    man_bytes = _dumps(man)
    signature = sign(man_bytes, NAMESPACE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        # stored, not deflated: every byte of a member in the file is a byte of its content, so any flipped byte
        # changes what is verified (a flip in a deflate stream can leave the inflated bytes unchanged)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            fixed = (1980, 1, 1, 0, 0, 0)
            for name, data in [(MANIFEST, man_bytes), (SIGNATURE, signature.encode("ascii")), *sorted(members.items())]:
                zf.writestr(zipfile.ZipInfo(name, fixed), data, compress_type=zipfile.ZIP_STORED)
        tmp_path = Path(tmp.name)
    tmp_path.replace(path)
    return man


# ---------------------------------------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class TrustAnchor:
    """What the auditor trusts: key fingerprints (``--trust``) or their own ``allowed_signers`` file."""

    fingerprints: tuple[str, ...] = ()
    allowed_signers: Path | None = None

    def describe(self) -> str:
        if self.allowed_signers is not None:
            return f"your allowed_signers {self.allowed_signers}"
        return "--trust " + ", ".join(self.fingerprints)


@dataclass(frozen=True)
class BundleFailure:
    member: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"member": self.member, "message": self.message}


@dataclass(frozen=True)
class ReliedKey:
    """A key verification relied on: what it signed, its fingerprint, and why it was trusted."""

    purpose: str
    fingerprint: str
    principal: str | None
    trusted_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "fingerprint": self.fingerprint,
            "principal": self.principal,
            "trusted_by": self.trusted_by,
        }


@dataclass
class BundleReport:
    """The outcome of ``mlops audit verify --bundle``."""

    path: str
    ok: bool = False
    model: str | None = None
    version: str | None = None
    segment: tuple[int, int] | None = None
    other_subjects: tuple[str, ...] = ()
    checkpoint_size: int | None = None
    failures: list[BundleFailure] = field(default_factory=list)
    keys: list[ReliedKey] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def fail(self, member: str, message: str) -> None:
        self.failures.append(BundleFailure(member, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "bundle": self.path,
            "model": self.model,
            "version": self.version,
            "segment": list(self.segment) if self.segment else None,
            "other_subjects": list(self.other_subjects),
            "checkpoint_size": self.checkpoint_size,
            "failures": [f.to_dict() for f in self.failures],
            "keys_relied_on": [k.to_dict() for k in self.keys],
            "checked": list(self.checked),
        }


def _read_zip(path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """The members of the zip, and those that cannot be read (a flipped byte fails the member's CRC)."""
    if not path.is_file():
        raise InputError(f"bundle {path} does not exist", hint="pass the .zip made by `mlops audit export --bundle`")
    members: dict[str, bytes] = {}
    unreadable: dict[str, str] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename in members or info.filename in unreadable:
                    unreadable[info.filename] = "appears twice in the zip"
                    continue
                try:
                    members[info.filename] = zf.read(info)
                except (
                    zipfile.BadZipFile,
                    zlib.error,
                    OSError,
                    ValueError,
                    EOFError,
                    RuntimeError,
                    NotImplementedError,
                ) as exc:
                    # a flipped byte breaks the CRC, the deflate stream, or the header of that member: name it
                    unreadable[info.filename] = f"cannot be read from the zip ({exc})"
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path} is not a readable zip file ({exc})", hint="is it an evidence bundle?") from None
    return members, unreadable


def _signer_file(keys: Iterable[str], folder: Path) -> Path:
    """A temporary allowed_signers trusting ``keys`` (``type base64``) for any principal: the fingerprint is its name."""
    from mlops_layer import signing

    lines = []
    for key in keys:
        lines.append(f'"{signing.fingerprint(key)},*" {key}')
    path = folder / "trusted_signers"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class _Verifier:
    def __init__(self, anchor: TrustAnchor, report: BundleReport, tmp: Path) -> None:
        self.anchor = anchor
        self.report = report
        self.tmp = tmp

    def anchor_verify(self, data: bytes, signature: str, namespace: str, purpose: str, at: datetime | None) -> bool:
        """Check a signature made by a key the auditor's anchor trusts; record the key relied on."""
        from mlops_layer import signing
        from mlops_layer.errors import MlopsError

        try:
            key = signing.signature_public_key(signature)
            fp = signing.fingerprint(key)
            if self.anchor.allowed_signers is not None:
                principal = signing.verify(data, signature, self.anchor.allowed_signers, namespace, at=at)
                trusted_by = f"principal {principal} in {self.anchor.allowed_signers.name}"
            else:
                if fp not in self.anchor.fingerprints:
                    raise signing.UnknownSignerError(
                        f"signed with key {fp}, which is not one you trust (--trust {', '.join(self.anchor.fingerprints)})"
                    )
                signing.verify(data, signature, _signer_file([key], self.tmp), namespace, at=at)
                principal = None
                trusted_by = "--trust"
        except MlopsError as exc:
            raise _Fail(exc.message) from None
        self.report.keys.append(ReliedKey(purpose, fp, principal, trusted_by))
        return True


class _Fail(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _json(members: Mapping[str, bytes], name: str, report: BundleReport) -> Any:
    try:
        return json.loads(members[name])
    except KeyError:
        report.fail(name, "missing from the bundle")
    except (ValueError, UnicodeDecodeError) as exc:
        report.fail(name, f"is not valid JSON ({exc})")
    return None


def verify_bundle(path: Path, anchor: TrustAnchor) -> BundleReport:
    """Verify a bundle offline against the auditor's anchor; every failure names the member it concerns."""
    if not anchor.fingerprints and anchor.allowed_signers is None:
        raise InputError(
            "verifying a bundle needs your own trust anchor",
            hint="pass --trust SHA256:<fingerprint> or --allowed-signers FILE (the bundle's own signers prove nothing)",
        )
    if anchor.allowed_signers is not None and not anchor.allowed_signers.is_file():
        raise InputError(f"allowed signers file {anchor.allowed_signers} does not exist")
    report = BundleReport(path=str(path))
    members, unreadable = _read_zip(Path(path))
    for name, message in sorted(unreadable.items()):
        report.fail(name, message)
    with tempfile.TemporaryDirectory(prefix="mlops-bundle-") as tmp:
        _verify(members, anchor, report, Path(tmp))
    report.ok = not report.failures
    return report


def _verify(members: dict[str, bytes], anchor: TrustAnchor, report: BundleReport, tmp: Path) -> None:
    from mlops_layer import signing

    checker = _Verifier(anchor, report, tmp)
    man_bytes = members.get(MANIFEST)
    sig_bytes = members.get(SIGNATURE)
    if man_bytes is None or sig_bytes is None:
        report.fail(MANIFEST if man_bytes is None else SIGNATURE, "missing from the bundle")
        return
    # 1. the manifest, signed by a key the auditor trusts: it vouches for every other member's bytes
    try:
        signature = sig_bytes.decode("ascii")
        checker.anchor_verify(man_bytes, signature, NAMESPACE, "bundle manifest", None)
    except (UnicodeDecodeError, _Fail) as exc:
        msg = exc.message if isinstance(exc, _Fail) else "not ASCII"
        report.fail(
            f"{MANIFEST}/{SIGNATURE}",
            f"{MANIFEST} does not verify against the signature in {SIGNATURE}: {msg}",
        )
        return
    man = _json(members, MANIFEST, report)
    if not isinstance(man, dict) or man.get("format") != FORMAT or not isinstance(man.get("members"), dict):
        report.fail(MANIFEST, f"is not a {FORMAT} manifest")
        return
    report.checked.append(f"{MANIFEST} signed by a trusted key")
    report.model, report.version = str(man.get("model")), str(man.get("version"))
    listed: dict[str, str] = man["members"]
    for name in sorted(set(members) - set(listed) - {MANIFEST, SIGNATURE}):
        report.fail(name, "is in the zip but not in the signed manifest")
    for name, digest in sorted(listed.items()):
        data = members.get(name)
        if data is None:
            report.fail(name, "is listed in the manifest but missing from the zip")
        elif hashlib.sha256(data).hexdigest() != digest:
            report.fail(name, "its SHA-256 differs from the one in the signed manifest (altered)")
    report.checked.append(f"{len(listed)} members match their SHA-256 in the manifest")
    if report.failures:
        return
    # 2. the chain segment up to the signed checkpoint
    entries = _segment(members, report)
    cp = _checkpoint(members, report, checker)
    if entries is None or cp is None:
        return
    last = entries[-1]
    report.segment = (entries[0].seq, last.seq)
    report.checkpoint_size = cp.size
    if last.seq != cp.size or last.entry_hash != cp.head:
        report.fail(
            SEGMENT,
            f"ends at entry {last.seq} ({last.entry_hash[:16]}…), not at the signed checkpoint "
            f"(size {cp.size}, head {cp.head[:16]}…)",
        )
        return
    report.other_subjects = tuple(sorted({e.model for e in entries if e.model and e.model != report.model}))
    report.checked.append(f"entries {entries[0].seq}..{last.seq} chain to the head signed at checkpoint {cp.size}")
    by_seq = {e.seq: e for e in entries}
    mine = involved(entries, report.model, report.version)
    if not mine:
        report.fail(SEGMENT, f"holds no entry about {report.model} v{report.version}")
        return
    # 3. every other member against the anchored entries
    _check_derived(members, report, entries, mine, cp)
    _check_lineage(members, report, mine)
    _check_governance(members, report, man, by_seq)
    _check_approvals(members, report, man, mine, by_seq, signing, tmp)


def _segment(members: Mapping[str, bytes], report: BundleReport) -> list[AuditEntry] | None:
    entries: list[AuditEntry] = []
    prev: str | None = None
    try:
        lines = members[SEGMENT].decode("utf-8").splitlines()
    except (KeyError, UnicodeDecodeError) as exc:
        report.fail(SEGMENT, f"cannot be read ({exc})")
        return None
    for number, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
            entry = AuditEntry(int(rec["seq"]), rec["prev_hash"], rec["entry_hash"], rec["body"].encode("utf-8"))
            calc = compute_entry_hash(entry.seq, entry.prev_hash, entry.body_bytes)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            report.fail(SEGMENT, f"line {number} is not an audit record ({exc})")
            return None
        if calc != entry.entry_hash:
            report.fail(SEGMENT, f"entry {entry.seq}: its content does not hash to its entry_hash (altered)")
            return None
        if prev is not None and (entry.prev_hash != prev or entry.seq != entries[-1].seq + 1):
            report.fail(SEGMENT, f"entry {entry.seq} does not link to entry {entries[-1].seq}")
            return None
        prev = entry.entry_hash
        entries.append(entry)
    if not entries:
        report.fail(SEGMENT, "is empty")
        return None
    return entries


def _checkpoint(members: Mapping[str, bytes], report: BundleReport, checker: _Verifier) -> Checkpoint | None:
    data = _json(members, CHECKPOINT, report)
    if data is None:
        return None
    try:
        cp = parse_checkpoint(data, CHECKPOINT)
        checker.anchor_verify(cp.payload(), cp.signature, CHECKPOINT_NAMESPACE, f"checkpoint {cp.size}", cp.timestamp)
    except ValueError as exc:
        report.fail(CHECKPOINT, f"is not a checkpoint ({exc})")
        return None
    except _Fail as exc:
        report.fail(CHECKPOINT, f"its signature does not verify against your anchor: {exc.message}")
        return None
    return cp


def _check_derived(
    members: Mapping[str, bytes],
    report: BundleReport,
    entries: list[AuditEntry],
    mine: list[AuditEntry],
    cp: Checkpoint,
) -> None:
    """Members that are a view of anchored entries must be exactly that view."""
    decisions = [e for e in mine if e.action in actions.ALIAS_DECISIONS]
    drift = [e for e in mine if e.action in (actions.DRIFT_CHECKED, actions.MONITOR_BATCH, actions.ALERT_FIRED)]
    expected = {
        DECISIONS: _dumps([{"seq": e.seq, **e.to_dict()} for e in decisions]),
        DRIFT: _dumps([e.to_dict() for e in drift]),
        IN_TOTO: _dumps(_statement(mine, cp)),
    }
    for name, data in expected.items():
        if members.get(name) != data:
            report.fail(name, "does not match the anchored audit entries it was made from")
    report.checked.append(
        f"{len(decisions)} decisions, {len(drift)} drift/monitoring entries and the in-toto "
        "statement match the anchored entries"
    )


def _check_lineage(members: Mapping[str, bytes], report: BundleReport, mine: list[AuditEntry]) -> None:
    data = _json(members, LINEAGE, report)
    reg = next((e for e in mine if e.action == actions.MODEL_REGISTERED), None)
    if not isinstance(data, dict) or reg is None:
        if reg is None:
            report.checked.append("no registration entry in the segment: lineage.json is vouched by the manifest only")
        return
    commit = (data.get("git") or {}).get("commit") if isinstance(data.get("git"), dict) else None
    if reg.git_commit and commit != reg.git_commit:
        report.fail(LINEAGE, f"names commit {commit}, the anchored registration entry {reg.seq} says {reg.git_commit}")
    hashes = {d.get("path"): d.get("md5") for d in data.get("data") or [] if isinstance(d, dict)}
    for path, md5 in reg.dvc_hashes.items():
        if hashes.get(path) != md5:
            report.fail(LINEAGE, f"data {path}: {hashes.get(path)} differs from the anchored registration's {md5}")
    report.checked.append(f"lineage agrees with registration entry {reg.seq} (commit and data hashes)")


def _check_governance(
    members: Mapping[str, bytes], report: BundleReport, man: Mapping[str, Any], by_seq: Mapping[int, AuditEntry]
) -> None:
    matched = missing = 0
    for item in man.get("decisions") or []:
        seq = item.get("seq")
        entry = by_seq.get(seq) if isinstance(seq, int) else None
        if entry is None:
            report.fail(MANIFEST, f"names decision {seq}, which is not in the segment")
            continue
        for kind, recorded in (("policy", entry.details.get("policy_hash")), ("card", entry.details.get("card_hash"))):
            ref = item.get(kind)
            if not ref:
                continue
            data = members.get(ref.get("member", ""))
            if data is None:
                report.fail(MANIFEST, f"decision {seq}: {kind} member {ref.get('member')} is missing")
            elif recorded and git_blob_hash(data) != recorded:
                report.fail(
                    ref["member"], f"its git blob hash is not the {kind} hash {recorded} decision {seq} recorded"
                )
            else:
                matched += 1
        missing += sum(1 for kind in ("policy", "card") if entry.details.get(f"{kind}_hash") and not item.get(kind))
    report.checked.append(
        f"{matched} policy/card files hash to what their decision recorded"
        + (f"; {missing} could not be found at export (see the manifest's notes)" if missing else "")
    )


def _check_approvals(
    members: Mapping[str, bytes],
    report: BundleReport,
    man: Mapping[str, Any],
    mine: list[AuditEntry],
    by_seq: Mapping[int, AuditEntry],
    signing: Any,
    tmp: Path,
) -> None:
    """Each approval: exactly the anchored entry, its signature valid for its approver under the signers file as of
    the approval (the file the bundle carries, vouched for by the manifest signature)."""
    from mlops_layer.errors import MlopsError
    from mlops_layer.governance.approvals import ApprovalStatement

    listed = _json(members, APPROVALS, report)
    approvals = [e for e in mine if e.action in (actions.APPROVAL_GRANTED, actions.APPROVAL_REJECTED)]
    expected = [{"seq": e.seq, "signer": e.actor, **e.details} for e in approvals]
    if listed != expected:
        report.fail(APPROVALS, "does not match the anchored approval entries")
        return
    signers_of = {
        int(item["seq"]): item.get("allowed_signers")
        for item in man.get("approvals") or []
        if isinstance(item, dict) and isinstance(item.get("seq"), int)
    }
    for e in approvals:
        try:
            statement = ApprovalStatement.from_dict(e.details.get("statement") or {})
            signature = str(e.details.get("signature") or "")
            ref = signers_of.get(e.seq)
            if not ref or ref.get("member") not in members:
                raise _Fail("the bundle carries no allowed_signers file as of this approval")
            file = tmp / f"signers-{e.seq}"
            file.write_bytes(members[ref["member"]])
            principal = signing.verify(
                statement.canonical_bytes(), signature, file, _APPROVAL_NAMESPACE, statement.approver, at=statement.time
            )
            fp = signing.fingerprint(signing.signature_public_key(signature))
        except (MlopsError, _Fail) as exc:
            report.fail(APPROVALS, f"approval entry {e.seq} by {e.actor}: {getattr(exc, 'message', exc)}")
            continue
        report.keys.append(
            ReliedKey(
                f"approval entry {e.seq} ({statement.decision} v{statement.version} -> @{statement.target})",
                fp,
                principal,
                f"{ref['member']} ({ref.get('source')}), vouched for by the signed manifest",
            )
        )
    report.checked.append(f"{len(approvals)} approval signatures verify for their approvers")
