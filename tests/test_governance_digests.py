"""Whose word a version's file digests are (governance.digests): the server's facts against the registrant's claim,
judged without any tool; tests/test_server_stores.py performs the attacks on a real governing server."""

from __future__ import annotations

import json

from mlops_layer.audit.registrations import registration_records
from mlops_layer.governance.digests import claim_problem, files_refusal, not_computed, parsed_claim

FACT = {"MLmodel": "sha256:aa", "model.pkl": "sha256:bb"}


class _Entry:
    def __init__(self, seq: int, details: dict[str, object]) -> None:
        self.seq, self.action, self.actor = seq, "model.registered", "dana"
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
