"""Whose word a version's file digests are (governance.digests): the server's facts against the registrant's claim,
judged without any tool; tests/test_server_stores.py performs the attacks on a real governing server."""

from __future__ import annotations

import json

from mlops_layer.audit.registrations import registration_records
from mlops_layer.governance.digests import claim_problem, files_refusal, migration_need, not_computed, parsed_claim

FACT = {"MLmodel": "sha256:aa", "model.pkl": "sha256:bb"}


class _Entry:
    def __init__(self, seq: int, details: dict[str, object], action: str = "model.registered") -> None:
        self.seq, self.action, self.actor = seq, action, "dana" if action == "model.registered" else "admin"
        self.subject = {"model": "m", "version": "1"}
        self.details = details


def test_a_claim_equal_to_the_fact_or_no_claim_is_no_problem() -> None:
    assert claim_problem(json.dumps(FACT), FACT) is None
    assert claim_problem(None, FACT) is None
    assert claim_problem(json.dumps({"x": "y"}), None) is None  # nothing to compare against: kept as a claim


def test_a_differing_or_unreadable_claim_names_the_files() -> None:
    lie = {**FACT, "model.pkl": "sha256:cc", "extra.bin": "sha256:dd"}
    problem = claim_problem(json.dumps(lie), FACT)
    assert problem is not None and "model.pkl" in problem and "extra.bin" in problem and "MLmodel" not in problem
    assert "not a JSON mapping" in (claim_problem("[1, 2]", FACT) or "")
    assert "not a JSON mapping" in (claim_problem("{not json", FACT) or "")
    assert parsed_claim("{not json") == {"raw": "{not json"}


def test_the_recorded_registration_refuses_what_the_server_could_not_bind() -> None:
    why = not_computed("s3://bucket/x holds no files")
    [record] = registration_records([_Entry(1, {"artifacts": {}, "artifacts_not_computed": why})]).values()
    assert record.digests_not_computed == why
    refusal = files_refusal(record)
    assert refusal is not None and why in refusal
    lied = {"artifacts": FACT, "artifacts_claim_problem": "the registrant claimed other file digests ... model.pkl"}
    [record] = registration_records([_Entry(2, lied)]).values()
    assert "model.pkl" in (files_refusal(record) or "")
    [record] = registration_records([_Entry(3, {"artifacts": FACT})]).values()  # local mode: nothing against it
    assert files_refusal(record) is None and files_refusal(None) is None


def _snapshot(seq: int, details: dict[str, object]) -> _Entry:
    return _Entry(seq, {"trust": "first use, at migration", **details}, action="model.snapshot")


SERVER_SNAPSHOT = {"artifacts": FACT, "artifacts_by": "server", "metrics": {"accuracy": 0.9}}
OTHER = {"MLmodel": "sha256:ee", "model.pkl": "sha256:ff"}


def test_a_server_snapshot_lifts_not_computed_and_a_client_one_does_not() -> None:
    why = not_computed("s3://bucket/x holds no files")
    registered = _Entry(1, {"artifacts": {}, "artifacts_not_computed": why, "metrics": {"accuracy": 0.9}})
    [record] = registration_records([registered, _snapshot(2, SERVER_SNAPSHOT)]).values()
    assert record.artifacts == FACT and record.artifacts_by == "server" and record.digests_not_computed is None
    assert files_refusal(record) is None and record.snapshot_seq == 2 and not record.by_migration
    assert migration_need(record) == (False, False, None)
    # digests a client computed (local `mlops migrate`) never count as the server's: still refused
    client = {"artifacts": FACT, "metrics": {"accuracy": 0.9}}
    [record] = registration_records([registered, _snapshot(2, client)]).values()
    assert record.digests_not_computed == why and why in (files_refusal(record) or "")
    need = migration_need(record)
    assert need[:2] == (False, False) and "not computed by the server" in (need[2] or "")
    # and a server snapshot after it does not override what the client's filled in
    [record] = registration_records([registered, _snapshot(2, client), _snapshot(3, SERVER_SNAPSHOT)]).values()
    assert record.digests_not_computed == why and files_refusal(record) is not None


def test_a_snapshot_never_overrides_what_a_registration_fixed() -> None:
    registered = _Entry(1, {"artifacts": FACT, "artifacts_by": "server", "metrics": {"accuracy": 0.6}})
    swapped = {
        "artifacts": OTHER,
        "artifacts_by": "server",
        "metrics": {"accuracy": 0.99},
        "registered_by_migration": True,
    }
    [record] = registration_records([registered, _snapshot(2, swapped)]).values()
    assert record.artifacts == FACT and record.metrics == {"accuracy": 0.6} and record.seq == 1
    assert not record.by_migration and record.snapshot_seq is None and record.conflicts == ()
    # a second snapshot does not override the first one either
    old = _Entry(1, {"source": "runs:/r/model"})  # registered before digests and metrics were recorded
    assert migration_need(registration_records([old])[("m", "1")]) == (True, True, None)
    [record] = registration_records([old, _snapshot(2, SERVER_SNAPSHOT), _snapshot(3, swapped)]).values()
    assert record.artifacts == FACT and record.metrics == {"accuracy": 0.9} and record.snapshot_seq == 2


def test_a_marked_snapshot_stands_for_a_missing_registration_until_one_is_recorded() -> None:
    assert migration_need(None) == (True, True, None)
    # an unmarked snapshot of a version nobody registered counts for nothing (as before)
    assert registration_records([_snapshot(1, SERVER_SNAPSHOT)]) == {}
    marked = {**SERVER_SNAPSHOT, "registered_by_migration": True}
    [record] = registration_records([_snapshot(1, marked)]).values()
    assert record.by_migration and record.seq == 1 and record.actor == "admin" and record.artifacts_by == "server"
    assert record.artifacts == FACT and record.metrics == {"accuracy": 0.9} and files_refusal(record) is None
    assert migration_need(record) == (False, False, None)
    # a later snapshot fills nothing in; a registration entry recorded after it supersedes the stand-in
    [record] = registration_records([_snapshot(1, marked), _snapshot(2, {**marked, "artifacts": OTHER})]).values()
    assert record.artifacts == FACT and record.seq == 1
    why = not_computed("unreadable")
    late = _Entry(3, {"artifacts": {}, "artifacts_not_computed": why, "metrics": {}})
    [record] = registration_records([_snapshot(1, marked), late]).values()
    assert not record.by_migration and record.seq == 3 and why in (files_refusal(record) or "")
