"""Which of an earlier draft's resources fhirgen may still supersede: only what is ours and
untouched (``fhirgen.service.jobs.superseding``)."""

from __future__ import annotations

import copy

import pytest

from fhirgen.service.jobs.superseding import reviewed_because

AIAST = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "AIAST"}
SENT = {
    "resourceType": "DocumentReference",
    "meta": {"security": [AIAST]},
    "identifier": [{"system": "urn:fhirgen:draft", "value": "e1.v2.discharge-summary"}],
    "status": "current",
    "docStatus": "preliminary",
    "content": [{"attachment": {"contentType": "text/plain", "data": "SG9zcGl0YWwgY291cnNl"}}],
}


def stored(**changes):
    """What the EHR holds: what we sent, with its id, version and what the EHR adds."""
    resource = copy.deepcopy(SENT)
    resource.update(id="d1", **changes)
    resource["meta"] = {**resource["meta"], "versionId": "1", "lastUpdated": "2026-12-03T10:00:00Z"}
    resource["content"][0]["attachment"]["size"] = 15  # the EHR may add a size or hash
    return resource


def test_an_untouched_draft_may_be_superseded():
    assert reviewed_because(stored(), SENT) == ""


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"docStatus": "final"}, "signed (docStatus final)"),
        ({"authenticator": {"reference": "Practitioner/p1"}}, "signed (authenticator)"),
        ({"status": "entered-in-error"}, "retracted"),
        ({"meta": {"versionId": "2"}}, "edited (AI label removed)"),
        (
            {"content": [{"attachment": {"contentType": "text/plain", "data": "RWRpdGVk"}}]},
            "edited",
        ),
    ],
)
def test_what_a_clinician_did_keeps_fhirgen_off_the_draft(changes, why):
    assert reviewed_because(stored(**changes), SENT) == why


def test_an_edit_cannot_be_ruled_out_without_what_was_sent():
    assert reviewed_because(stored(), None).startswith("edited")


def test_a_draft_fhirgen_superseded_already_is_left_as_it_is():
    assert reviewed_because(stored(status="superseded"), SENT) == "retired"
    plan = {"resourceType": "CarePlan", "status": "revoked"}
    assert reviewed_because(plan, None) == "retired"
    active = {"resourceType": "CarePlan", "status": "active", "meta": {"security": [AIAST]}}
    assert reviewed_because(active, active) == "status active"
