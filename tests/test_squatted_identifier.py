"""A squatted draft identifier: the write step refuses what it did not write (issue 14 point 1).

Anyone who can write to the EHR can create a resource carrying the identifier our draft will
use. A conditional create would then find it and our Provenance would point at it: patient A
gets no draft and another patient's document is labelled as A's. The live tests run the real
system (sekmet-fhir, the webhook under gunicorn, a Celery worker on Redis): the job fails with
the reason, the squatter's document is untouched, no Provenance of ours names it, nothing is
marked done. The unit tests pin what counts as ours.
"""

from __future__ import annotations

import hashlib
import re
import time
from types import SimpleNamespace

import orjson
import pytest
from pydantic import SecretStr

from fhirgen.clinical.facts import extract_facts
from fhirgen.clinical.stay import build_context
from fhirgen.drafting.documents.care_plan import KIND as PLAN_KIND
from fhirgen.drafting.documents.discharge_summary import KIND as SUMMARY_KIND
from fhirgen.drafting.documents.patient_instructions import KIND as INSTRUCTIONS_KIND
from fhirgen.drafting.generation import get_generator
from fhirgen.drafting.pipeline import draft_stay
from fhirgen.drafting.render import (
    AIAST,
    Author,
    Claim,
    claim_conflict,
    claims,
    draft_ids,
    provenance_key,
    render_bundle,
    stay_identifier,
)
from fhirgen.errors import ConfigError
from fhirgen.fhir.client import FhirClient
from fhirgen.fhir.record import PatientRecord
from fhirgen.service.jobs import IdentifierConflict, _check_claims, _check_written
from fhirgen.service.vault import identifier_key
from tests.live import (
    LiveSystem,
    admitted,
    discharged,
    drafts_in_ehr,
    sample_stay,
    wait_until,
)

SYSTEM = "urn:fhirgen:draft"


# -- what counts as ours (pure) -------------------------------------------------------------

CLAIM = Claim("DocumentReference", SYSTEM, "e1.v2.discharge-summary", "Patient/p1", "Encounter/e1")


def _held(**changes):
    resource = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "meta": {"security": [AIAST]},
        "identifier": [{"system": SYSTEM, "value": CLAIM.value}],
        "subject": {"reference": "Patient/p1"},
        "author": [{"reference": "Device/dev1"}],
        "context": {"encounter": [{"reference": "Encounter/e1"}]},
    }
    resource.update(changes)
    return resource


OUR_PROVENANCE = {"resourceType": "Provenance", "target": [{"reference": "DocumentReference/d1"}]}


def test_nothing_holding_the_identifier_is_no_conflict():
    assert claim_conflict(CLAIM, []) is None


def test_our_own_draft_is_a_replay_not_a_conflict():
    assert claim_conflict(CLAIM, [_held()], provenance=OUR_PROVENANCE) is None
    assert claim_conflict(CLAIM, [_held()], author="Device/dev1") is None


def test_another_subject_is_a_conflict_named_by_type_and_id():
    conflict = claim_conflict(
        CLAIM, [_held(subject={"reference": "Patient/p2"})], provenance=OUR_PROVENANCE
    )
    assert conflict is not None
    assert str(conflict) == (
        f"identifier {SYSTEM}|e1.v2.discharge-summary already used by DocumentReference/d1 "
        "for another subject; not written"
    )
    assert "p2" not in conflict.why and "p1" not in conflict.holder


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"context": {"encounter": [{"reference": "Encounter/e9"}]}}, "for another encounter"),
        ({"context": {}}, "for another encounter"),
        ({"meta": {}}, "which is not labelled AI-generated"),
    ],
)
def test_same_patient_but_not_our_draft_is_a_conflict(changes, why):
    conflict = claim_conflict(CLAIM, [_held(**changes)], provenance=OUR_PROVENANCE)
    assert conflict is not None and conflict.why == why


def test_a_lookalike_no_provenance_of_ours_names_is_a_conflict():
    # Right patient, right stay, AI-labelled: still not ours unless our Provenance names it
    # (before writing) or our Device wrote it (after).
    conflict = claim_conflict(CLAIM, [_held()], provenance=None, author="Device/other")
    assert conflict is not None and conflict.why == "which no Provenance of fhirgen's names"


def test_two_holders_are_a_conflict():
    conflict = claim_conflict(CLAIM, [_held(), _held(id="d2")], provenance=OUR_PROVENANCE)
    assert conflict is not None and conflict.holder.startswith("2 resources")


# -- the live system ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def system(ehr, tmp_path_factory):
    live = LiveSystem(tmp_path_factory.mktemp("fhirgen"), ehr.base_url).start()
    live.subscribe()
    yield live
    live.stop()


def _next_identifier(ehr, system, encounter_id: str, kind: str = "discharge-summary") -> str:
    """The identifier our draft will carry once the Encounter is discharged (one more version):
    keyed with the deployment's key, which a squatter here has stolen (the test must)."""
    (current,) = ehr.search("Encounter", _id=encounter_id)
    version = str(int(current["meta"]["versionId"]) + 1)
    key = identifier_key(system.settings)
    return f"{stay_identifier(SYSTEM, encounter_id, version, 0, key)}.{kind}"


def _squat(ehr, value: str, *, subject: str, encounter: str | None, system: str = SYSTEM) -> dict:
    squatter = {
        "resourceType": "DocumentReference",
        "status": "current",
        "identifier": [{"system": system, "value": value}],
        "type": {"text": "Squatting note"},
        "subject": {"reference": subject},
        "content": [{"attachment": {"contentType": "text/plain", "data": "c3F1YXR0ZXI="}}],
    }
    if encounter:
        squatter["context"] = {"encounter": [{"reference": encounter}]}
    with ehr.client() as client:
        response = client.post("DocumentReference", json=squatter)
        response.raise_for_status()
        return response.json()


ONE_OF_EACH = {"DocumentReference": 1, "PatientInstructions": 1, "CarePlan": 1, "Provenance": 1}


def _counts(drafts: dict[str, list[dict]]) -> dict[str, int]:
    return {kind: len(found) for kind, found in drafts.items()}


def _failed_job(system, encounter_id):
    jobs = system.store.jobs(encounter_id=encounter_id)
    return next((j for j in jobs if j.state == "failed"), None)


def _provenances_naming(ehr, key: str) -> list[dict]:
    return [
        p
        for p in ehr.search("Provenance")
        if any(t.get("reference") == key for t in p.get("target") or [])
    ]


def _assert_refused(ehr, system, encounter_id, squatter, why):
    key = f"DocumentReference/{squatter['id']}"
    job = wait_until(lambda: _failed_job(system, encounter_id), timeout=90, what="the job to fail")
    time.sleep(2)  # anything written after all would have landed by now
    assert job.reason == (
        f"identifier {SYSTEM}|{squatter['identifier'][0]['value']} already used by {key} "
        f"{why}; not written"
    )
    states = [j.state for j in system.store.jobs(encounter_id=encounter_id)]
    assert "done" not in states and all(s in ("failed", "skipped") for s in states), states
    # The squatter's document is untouched, and nothing of ours names it.
    (now,) = ehr.search("DocumentReference", _id=squatter["id"])
    assert now["meta"]["versionId"] == squatter["meta"]["versionId"]
    assert {k: v for k, v in now.items() if k != "meta"} == {
        k: v for k, v in squatter.items() if k != "meta"
    }
    assert _provenances_naming(ehr, key) == []
    # Nothing was written for the stay: the check runs before the transaction.
    assert _counts(drafts_in_ehr(ehr, encounter_id)) == {
        "DocumentReference": 0,
        "PatientInstructions": 0,
        "CarePlan": 0,
        "Provenance": 0,
    }
    # The operator's alert: an ERROR line naming the resource, not the patient or the stay.
    (alert,) = [
        line
        for line in system.logs().splitlines()
        if "not written" in line and key in line and job.id in line
    ]
    assert "ERROR" in alert and why in alert
    assert encounter_id not in alert and squatter["subject"]["reference"] not in alert
    return job


@pytest.mark.live
def test_another_patients_document_under_our_identifier_fails_the_job(ehr, system):
    stay = sample_stay("heart-failure")
    ehr.put_all(admitted(stay))
    ehr.put_all([{"resourceType": "Patient", "id": "squat-other", "active": True}])
    encounter = discharged(stay)
    value = _next_identifier(ehr, system, encounter["id"])
    squatter = _squat(ehr, value, subject="Patient/squat-other", encounter=None)
    ehr.put_all([encounter])
    job = _assert_refused(ehr, system, encounter["id"], squatter, "for another subject")
    # The console's job page shows it failed, with the reason.
    assert job.state == "failed" and "for another subject" in (job.reason or "")


@pytest.mark.live
def test_a_lookalike_for_the_same_stay_that_we_did_not_write_fails_the_job(ehr, system):
    stay = sample_stay("pneumonia")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    patient = encounter["subject"]["reference"]
    value = _next_identifier(ehr, system, encounter["id"], "patient-instructions")
    squatter = _squat(ehr, value, subject=patient, encounter=f"Encounter/{encounter['id']}")
    ehr.put_all([encounter])
    key = f"DocumentReference/{squatter['id']}"
    job = wait_until(
        lambda: _failed_job(system, encounter["id"]), timeout=90, what="the job to fail"
    )
    time.sleep(2)
    assert job.reason == (
        f"identifier {SYSTEM}|{value} already used by {key} which is not labelled "
        "AI-generated; not written"
    )
    assert _provenances_naming(ehr, key) == []
    found = drafts_in_ehr(ehr, encounter["id"])
    assert found["DocumentReference"] == [] and found["CarePlan"] == []
    assert found["Provenance"] == []
    (now,) = ehr.search("DocumentReference", _id=squatter["id"])
    assert now["meta"]["versionId"] == squatter["meta"]["versionId"]


@pytest.mark.live
def test_a_stay_nobody_squatted_is_still_drafted(ehr, system):
    stay = sample_stay("hip-fracture")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])

    def done():
        jobs = system.store.jobs(encounter_id=encounter["id"])
        return any(j.state == "done" for j in jobs)

    wait_until(done, timeout=90, what="the draft")
    found = drafts_in_ehr(ehr, encounter["id"])
    assert _counts(found) == ONE_OF_EACH
    # Written under a keyed identifier: nothing in it names the stay or lets one predict it.
    (value,) = [i["value"] for i in found["DocumentReference"][0]["identifier"]]
    assert re.fullmatch(r"[0-9a-f]{32}\.discharge-summary", value), value
    assert encounter["id"] not in value
    # A replay of the write finds our own draft: the check before writing takes it for ours
    # (our Provenance names it), and the transaction creates nothing new.
    (job,) = [j for j in system.store.jobs(encounter_id=encounter["id"]) if j.state == "done"]
    bundle = orjson.loads(system.store.artifact(job.id, "bundle"))
    with system.ehr_client() as client:
        assert _check_claims(client, bundle) == {c.token for c in claims(bundle)}
        client.transaction(bundle)
    assert _counts(drafts_in_ehr(ehr, encounter["id"])) == ONE_OF_EACH


# -- the check after writing: a squatter that arrived between the check and the write --------
# On the real EHR, the race played out step by step: the check before writing finds nothing,
# then someone creates a resource under our identifier, then our transaction finds it.


def _stay_bundle(ehr, system: str) -> dict:
    """The pneumonia stay in the EHR and its drafts' Bundle, under an identifier system of the
    test's own (no other test's drafts share its identifiers)."""
    stay = sample_stay("pneumonia")
    ehr.put_all(stay)
    encounter = next(r for r in stay if r["resourceType"] == "Encounter" and r["id"] == "19436125")
    patient = next(r["id"] for r in stay if r["resourceType"] == "Patient")
    result = draft_stay(
        PatientRecord(patient, stay), encounter, get_generator("template"), identifier_system=system
    )
    return orjson.loads(orjson.dumps(result.bundle))


def _our_provenance(ehr, bundle: dict) -> dict:
    rtype, _, rid = str(provenance_key(bundle)).partition("/")
    (provenance,) = ehr.search(rtype, _id=rid)
    return provenance


@pytest.mark.live
def test_a_squatter_created_while_we_wrote_is_unlinked_and_fails_the_job(ehr):
    system = f"urn:fhirgen:test-race-{time.time_ns()}"
    bundle = _stay_bundle(ehr, system)
    summary = claims(bundle)[0]
    ehr.put_all([{"resourceType": "Patient", "id": "race-other", "active": True}])
    with FhirClient(ehr.base_url) as client:
        ours = _check_claims(client, bundle)
        assert ours == set()
        squatter = _squat(
            ehr, summary.value, subject="Patient/race-other", encounter=None, system=system
        )
        response = client.transaction(bundle)
        with pytest.raises(IdentifierConflict) as raised:
            _check_written(client, bundle, response, ours)
    key = f"DocumentReference/{squatter['id']}"
    assert f"already used by {key} for another subject; not written" in str(raised.value)
    # Our Provenance, rewritten, names what we created and not the squatter's document.
    targets = [t["reference"] for t in _our_provenance(ehr, bundle)["target"]]
    assert key not in targets
    assert any(t.startswith("CarePlan/") for t in targets)
    assert sum(t.startswith("DocumentReference/") for t in targets) == 1  # the instructions


@pytest.mark.live
def test_our_own_draft_written_meanwhile_by_a_twin_delivery_is_ours(ehr):
    system = f"urn:fhirgen:test-twin-{time.time_ns()}"
    bundle = _stay_bundle(ehr, system)
    with FhirClient(ehr.base_url) as client:
        ours = _check_claims(client, bundle)
        assert ours == set()
        client.transaction(bundle)  # the twin delivery writes first
        before = _our_provenance(ehr, bundle)
        response = client.transaction(bundle)
        _check_written(client, bundle, response, ours)  # found, and authored by our Device
    after = _our_provenance(ehr, bundle)
    assert after["target"] == before["target"] and len(after["target"]) == 3


# -- keyed identifiers: nobody without the deployment's key can predict them ----------------


def _pneumonia_context():
    stay = sample_stay("pneumonia")
    encounter = next(r for r in stay if r["resourceType"] == "Encounter" and r["id"] == "19436125")
    patient = next(r["id"] for r in stay if r["resourceType"] == "Patient")
    return build_context(PatientRecord(patient, stay), encounter)


def test_keyed_identifiers_name_no_encounter_and_keep_the_kind():
    context = _pneumonia_context()
    plain = draft_ids(context, SYSTEM)
    assert plain.document.startswith("19436125.v")  # the readable form, without a key
    keyed = draft_ids(context, SYSTEM, key=b"k" * 32)
    assert re.fullmatch(r"[0-9a-f]{32}\.discharge-summary", keyed.document)
    base = keyed.document.removesuffix(".discharge-summary")
    assert keyed.care_plan == f"{base}.care-plan"
    assert keyed.instructions == f"{base}.patient-instructions"
    assert "19436125" not in keyed.document and keyed.provenance_id != plain.provenance_id
    # Stable under one key (a replay finds its own draft); anything else changes them.
    assert draft_ids(context, SYSTEM, key=b"k" * 32) == keyed
    assert draft_ids(context, SYSTEM, key=b"j" * 32).document != keyed.document
    assert draft_ids(context, SYSTEM, 1, key=b"k" * 32).document != keyed.document


def test_a_keyed_bundle_claims_and_puts_under_the_keyed_ids():
    context = _pneumonia_context()
    facts = extract_facts(context)
    drafts = get_generator("template").draft_many(
        [(kind, facts) for kind in (SUMMARY_KIND, PLAN_KIND, INSTRUCTIONS_KIND)]
    )
    ids = draft_ids(context, SYSTEM, key=b"k" * 32)
    bundle = render_bundle(
        context,
        facts,
        *drafts,
        author=Author("template", "t", "1"),
        generated_at="2026-01-01T00:00:00Z",
        identifier_system=SYSTEM,
        identifier_key=b"k" * 32,
    )
    assert [c.value for c in claims(bundle)] == [ids.document, ids.care_plan, ids.instructions]
    assert provenance_key(bundle) == f"Provenance/{ids.provenance_id}"


def test_the_identifier_key_comes_from_the_secret_key_or_the_data_folder(tmp_path):
    from_secret = identifier_key(
        SimpleNamespace(secret_key=SecretStr("s3cret"), database_url=None, data_dir=tmp_path)
    )
    assert len(from_secret) == 32 and from_secret != hashlib.sha256(b"s3cret").digest()
    assert not (tmp_path / "identifier.key").exists()
    kept = SimpleNamespace(secret_key=None, database_url=None, data_dir=tmp_path)
    assert identifier_key(kept) == identifier_key(kept)
    assert (tmp_path / "identifier.key").stat().st_mode & 0o777 == 0o600
    shared = SimpleNamespace(secret_key=None, database_url="postgresql://db/x", data_dir=tmp_path)
    with pytest.raises(ConfigError):
        identifier_key(shared)
