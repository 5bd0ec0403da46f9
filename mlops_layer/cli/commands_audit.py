"""Audit commands: ``mlops audit log|show|verify|export|checkpoint|reconcile`` and ``mlops history``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from mlops_layer.cli.app import app, new_app
from mlops_layer.cli.options import json_option
from mlops_layer.cli.render import console, ok_mark, print_json, table

audit_app = new_app("The tamper-evident audit trail: list, show, verify, export, checkpoint, reconcile.")
app.add_typer(audit_app, name="audit")


def _subject(entry: Any) -> str:
    s = entry.subject
    text = str(s.get("model", ""))
    if s.get("version"):
        text += f" v{s['version']}"
    if s.get("alias"):
        text += f" @{s['alias']}"
    return text


def _short(value: Any, width: int = 60) -> str:
    text = str(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(text: str | None) -> Any:
    if text is None:
        return None
    from mlops_layer import api

    return api.parse_time(text)


@audit_app.command("log")
def log_cmd(
    model: str = typer.Option(None, "--model", "-m", help="Only entries about this registered model."),
    action: str = typer.Option(None, "--action", "-a", help="Only this action, e.g. alias.set or promotion.decided."),
    since: str = typer.Option(None, "--since", help="Only entries at or after this time: ISO 8601, or an age (7d)."),
    limit: int = typer.Option(None, "--limit", "-n", help="Show only the newest N matching entries."),
    json_out: bool = json_option(),
) -> None:
    """List audit entries, oldest first.

    Example: mlops audit log --model churn --action alias.set --since 30d
    """
    from mlops_layer import api

    entries = api.audit_log(model=model, action=action, since=_when(since), limit=limit)
    if json_out:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        console.print("No matching audit entries.")
        return
    rows = [
        (
            e.seq,
            e.body.get("timestamp", "")[:19].replace("T", " "),
            e.actor,
            e.action,
            _subject(e),
            e.decision or "",
            _short(e.details) if e.details else "",
        )
        for e in entries
    ]
    console.print(table(None, ["seq", "time (UTC)", "actor", "action", "subject", "decision", "details"], rows))


@audit_app.command("show")
def show_cmd(
    seq: int = typer.Argument(..., help="Sequence number of the entry."),
    json_out: bool = json_option(),
) -> None:
    """Show one audit entry in full, with its hashes.

    Example: mlops audit show 42 --json
    """
    from mlops_layer import api

    entry = api.audit_entry(seq)
    if json_out:
        print_json(entry.to_dict())
        return
    data = entry.to_dict()
    rows = [(k, _short(v, 200) if not isinstance(v, str) else v) for k, v in data.items() if v not in (None, {}, [])]
    console.print(table(f"audit entry {entry.seq}", ["field", "value"], rows, show_header=False))


@audit_app.command("verify")
def verify_cmd(
    json_out: bool = json_option(),
    deep: bool = typer.Option(
        False, "--deep", help="Also parse every body: canonical form, NFC, schema, query columns (slower)."
    ),
    export_file: Path = typer.Option(
        None, "--export", help="Verify this `mlops audit export --format jsonl` file instead of the database."
    ),
    checkpoints: Path = typer.Option(
        None, "--checkpoints", help="Checkpoint file to check against (default: settings.checkpoint_file)."
    ),
    allowed_signers: Path = typer.Option(
        None,
        "--allowed-signers",
        help="Trusted keys for checkpoint signatures (default: the committed governance/allowed_signers); with "
        "--bundle, YOUR own file of trusted keys.",
    ),
    bundle: Path = typer.Option(
        None, "--bundle", help="Verify this evidence bundle offline (needs --trust or --allowed-signers)."
    ),
    trust: list[str] = typer.Option(
        None, "--trust", help="With --bundle: a key fingerprint (SHA256:...) you trust; repeat for several."
    ),
    expect: Path = typer.Option(
        None,
        "--expect",
        help="A checkpoint you kept earlier (`mlops audit checkpoint --json` output): it must still be a prefix.",
    ),
    no_git: bool = typer.Option(
        False,
        "--no-git",
        help="The repository is not at hand: read signers and checkpoint file from disk, skip the git-history check.",
    ),
) -> None:
    """Recompute the whole chain and check every signed checkpoint; exit 1 listing every problem found.

    With --bundle, verify an evidence bundle offline against your own trust anchor only.

    Example: mlops audit verify --json
    Example: mlops audit verify --expect kept-checkpoint.json
    Example: mlops audit verify --bundle churn-v3.zip --trust SHA256:AbC...
    """
    if bundle is not None:
        if export_file is not None or checkpoints is not None or deep:
            from mlops_layer.errors import InputError

            raise InputError("--bundle is verified on its own", hint="drop --export, --checkpoints and --deep")
        _verify_bundle(bundle, tuple(trust or ()), allowed_signers, json_out)
        return
    if trust:
        from mlops_layer.errors import InputError

        raise InputError("--trust only applies to --bundle", hint="mlops audit verify --bundle FILE.zip --trust FP")
    from mlops_layer import api

    report = api.verify_audit(
        export_file=export_file,
        checkpoint_file=checkpoints,
        allowed_signers=allowed_signers,
        deep=deep,
        expect=expect,
        no_git=no_git,
    )
    if json_out:
        print_json(report.to_dict())
    else:
        if report.ok:
            console.print(
                f"{ok_mark(True)} audit trail intact: {report.size} entries, head {report.head[:16]}…, "
                f"{len(report.checkpoints)} checkpoint(s), anchored up to {report.anchored} "
                f"({report.elapsed_s:.2f} s)"
            )
        else:
            console.print(
                f"{ok_mark(False)} audit trail FAILED verification: {len(report.problems)} problem(s) "
                f"in {report.size} entries"
            )
            rows = [(p.seq if p.seq is not None else "", p.kind, p.message) for p in report.problems]
            console.print(table(None, ["entry", "problem", "what broke"], rows))
        valid = [cp for cp in report.checkpoints if cp.ok]
        for cp in valid[-3:]:  # automatic checkpoints make many: the newest ones say how far the trail is anchored
            console.print(
                f"  {ok_mark(True)} checkpoint size {cp.checkpoint.size} signed by {cp.signer} "
                f"at {cp.checkpoint.time} ({cp.checkpoint.source or 'db'})"
            )
        if len(valid) > 3:
            console.print(f"  … and {len(valid) - 3} older valid checkpoint(s)")
        for warning in report.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
    if not report.ok:
        raise typer.Exit(1)


def _verify_bundle(bundle: Path, trust: tuple[str, ...], allowed_signers: Path | None, json_out: bool) -> None:
    from mlops_layer import api

    report = api.verify_bundle(bundle, trust=trust, allowed_signers=allowed_signers)
    if json_out:
        print_json(report.to_dict())
    else:
        what = f"{report.model} v{report.version}" if report.model else str(bundle)
        if report.ok:
            seg = report.segment or (0, 0)
            console.print(
                f"{ok_mark(True)} evidence bundle for {what} verifies: entries {seg[0]}..{seg[1]} chain to the "
                f"checkpoint signed at size {report.checkpoint_size}"
            )
            if report.other_subjects:
                console.print(f"  the segment also holds entries of: {', '.join(report.other_subjects)}")
            for line in report.checked:
                console.print(f"  {ok_mark(True)} {line}")
        else:
            console.print(f"{ok_mark(False)} evidence bundle {bundle} FAILED verification")
            rows = [(f.member, f.message) for f in report.failures]
            console.print(table(None, ["member", "what failed"], rows))
        if report.keys:
            console.print("keys relied on:")
            for k in report.keys:  # one line each, never wrapped: auditors copy these fingerprints
                who = f" ({k.principal})" if k.principal else ""
                console.print(f"  {k.purpose}: {k.fingerprint}{who}, trusted by {k.trusted_by}", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def export_cmd(
    name: str = typer.Argument(None, help="With --bundle: the registered model."),
    version: str = typer.Argument(None, help="With --bundle: the model version."),
    bundle: Path = typer.Option(
        None, "--bundle", help="Write the evidence bundle (.zip) of NAME VERSION, verifiable offline."
    ),
    key: Path = typer.Option(
        None, "--key", "-k", help="With --bundle: key signing the manifest (default git config user.signingkey)."
    ),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl (exact records) or in-toto (Statement v1)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of standard output."),
    model: str = typer.Option(
        None, "--model", "-m", help="Only entries about this model (jsonl then no longer chains)."
    ),
    action: str = typer.Option(None, "--action", "-a", help="Only this action."),
    since: str = typer.Option(None, "--since", help="Only entries at or after this time: ISO 8601, or an age (7d)."),
    until: str = typer.Option(
        None, "--until", help="Only entries before this time (archive a period with --since): ISO 8601 or an age."
    ),
    json_out: bool = json_option("With --out or --bundle: print a JSON summary."),
) -> None:
    """Export the trail as JSON Lines or as an in-toto Statement v1 (subjects: model artifacts and data digests),
    archive a period (--since/--until), or write one version's evidence bundle (--bundle).

    Example: mlops audit export --format in-toto --out audit.intoto.json
    Example: mlops audit export --since 2025-01-01 --until 2025-07-01 --out archive-2025H1.jsonl
    Example: mlops audit export churn 3 --bundle churn-v3.zip --key ~/.ssh/audit_ed25519
    """
    from mlops_layer.errors import InputError

    if bundle is not None:
        if not name or not version:
            raise InputError("--bundle needs NAME and VERSION", hint="mlops audit export churn 3 --bundle churn-v3.zip")
        from mlops_layer import api

        made = api.export_bundle(name, version, bundle, key=key)
        if json_out:
            print_json(made.to_dict())
            return
        console.print(
            f"{ok_mark(True)} wrote evidence bundle {made.path}: {made.about_version} entries about {name} "
            f"v{version}, chain segment {made.from_seq}..{made.to_seq} up to the checkpoint at size "
            f"{made.checkpoint_size}; manifest signed by {made.signer_key}"
        )
        if made.other_subjects:
            console.print(f"  the segment includes entries of other subjects: {', '.join(made.other_subjects)}")
        for note in made.notes:
            console.print(f"  [yellow]note:[/] {note}")
        console.print(f"  verify offline: mlops audit verify --bundle {made.path} --trust {made.signer_key}")
        return
    if name or version:
        raise InputError("NAME VERSION only go with --bundle", hint="use --model NAME to filter a JSONL export")
    from mlops_layer import api

    result = api.export_audit(fmt, out=out, model=model, action=action, since=_when(since), until=_when(until))
    if result.text is not None:
        sys.stdout.write(result.text)
        sys.stdout.flush()
        return
    if json_out:
        print_json({"format": result.format, "count": result.count, "path": result.path, "head": result.head})
        return
    console.print(f"{ok_mark(True)} wrote {result.count} entries as {result.format} to {result.path}")


@audit_app.command("checkpoint")
def checkpoint_cmd(
    key: Path = typer.Option(
        None, "--key", "-k", help="Private key to sign with (SSH or Ed25519); default git config user.signingkey."
    ),
    append_file: bool = typer.Option(
        False, "--append-file", help="Also append it to the checkpoint file kept in git (then commit that file)."
    ),
    json_out: bool = json_option(),
) -> None:
    """Sign the trail's size and head hash; store the checkpoint (and append it to the checkpoint file).

    Example: mlops audit checkpoint --key ~/.ssh/id_ed25519 --append-file
    """
    from mlops_layer import api

    result = api.checkpoint_audit(key=key, append_file=append_file)
    if json_out:
        print_json(result.to_dict())
        return
    cp = result.checkpoint
    who = cp.signer or f"key {cp.key} (not in allowed_signers: verify will refuse it)"
    console.print(f"{ok_mark(True)} checkpoint: {cp.size} entries, head {cp.head[:16]}…, signed by {who}")
    if result.appended_to:
        console.print(f"  appended to {result.appended_to}: commit it so the checkpoint is kept in git history")


@audit_app.command("reconcile")
def reconcile_cmd(
    json_out: bool = json_option(),
    record_incident: bool = typer.Option(
        False, "--record-incident", help="Append each finding to the trail as a reconcile.incident entry."
    ),
    key: Path = typer.Option(
        None,
        "--key",
        help="Sign the incidents with this key (an approver's): only a signed incident lets promotion resume.",
    ),
) -> None:
    """Compare the registry's aliases and versions with the trail; exit 1 listing every difference.

    Example: mlops audit reconcile --record-incident --key ~/.ssh/id_ed25519
    """
    from mlops_layer import api

    report = api.reconcile_audit(record_incident=record_incident, key_path=key)
    if json_out:
        print_json(report.to_dict())
    elif report.ok:
        console.print(f"{ok_mark(True)} registry matches the trail ({len(report.models_checked)} model(s) checked)")
    else:
        rows = [(f.kind, f.model, f.alias or "", f.expected or "", f.actual or "", f.message) for f in report.findings]
        console.print(
            table("registry vs audit trail", ["finding", "model", "alias", "trail", "registry", "detail"], rows)
        )
        if report.incident_seqs:
            console.print(f"recorded as audit entries {', '.join(map(str, report.incident_seqs))}")
    if not report.ok:
        raise typer.Exit(1)


@app.command("history")
def history_cmd(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str = typer.Option(None, "--alias", "-a", help="Only this alias (required with --at)."),
    at: str = typer.Option(None, "--at", help="Which version held --alias at this time (ISO 8601, or an age: 3d)."),
    json_out: bool = json_option(),
) -> None:
    """Which version held each alias of a model, and when, answered from the audit trail.

    Example: mlops history churn --alias champion --at 2025-06-30T12:00:00Z
    """
    from mlops_layer import api

    report = api.history(name, alias=alias, at=_when(at))
    if json_out:
        print_json(report.to_dict())
        return
    if report.at is not None:
        held = f"v{report.holder}" if report.holder else "no version"
        console.print(f"{name}@{alias} at {report.at.isoformat(timespec='seconds')}: {held}")
    if not report.spans:
        console.print(f"No alias history for {name}{'@' + alias if alias else ''} in the audit trail.")
        return
    rows = [
        (
            s.alias,
            f"v{s.version}",
            s.start.isoformat(timespec="seconds"),
            s.end.isoformat(timespec="seconds") if s.end else "now",
            s.actor,
            s.via or "",
            f"{s.start_seq}" + (f"–{s.end_seq}" if s.end_seq else ""),
        )
        for s in report.spans
    ]
    console.print(
        table(f"alias history of {name}", ["alias", "version", "from", "until", "by", "via", "entries"], rows)
    )
