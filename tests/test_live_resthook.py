"""The live path with a classic R4 rest-hook Subscription (HAPI-style PUT with the resource).

Real processes throughout: sekmet-fhir as the EHR, fhirgen's webhook under gunicorn, a Celery
worker on Redis. A discharge in the EHR must end as exactly one preliminary DocumentReference,
one CarePlan and one Provenance in the EHR.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from fhirgen.drafting.generation import get_generator
from fhirgen.drafting.pipeline import draft_stay
from fhirgen.fhir.record import PatientRecord
from tests.live import (
    LiveSystem,
    admitted,
    discharged,
    drafts_in_ehr,
    inpatient_encounter,
    sample_stay,
    summary_text,
    wait_until,
)

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def system(ehr, tmp_path_factory):
    live = LiveSystem(tmp_path_factory.mktemp("fhirgen"), ehr.base_url).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def subscription(system):
    return system.subscribe()


def _one_of_each(ehr, encounter_id):
    found = drafts_in_ehr(ehr, encounter_id)
    return found if found["DocumentReference"] and found["Provenance"] else None


def _settled_jobs(system, encounter_id):
    """The ids of the stay's jobs, once none is in progress."""
    wait_until(
        lambda: all(
            j.state in ("done", "skipped") for j in system.store.jobs(encounter_id=encounter_id)
        ),
        what="the stay's jobs to settle",
    )
    return {j.id for j in system.store.jobs(encounter_id=encounter_id)}


def _next_job(system, encounter_id, before):
    """The stay's first job not in ``before``, once it has finished."""
    return wait_until(
        lambda: next(
            (
                j
                for j in system.store.jobs(encounter_id=encounter_id)
                if j.id not in before and j.state in ("done", "skipped", "failed")
            ),
            None,
        ),
        timeout=90,
        what="the stay's next job",
    )


def test_discharge_drafts_exactly_one_of_each(ehr, system, subscription):
    stay = sample_stay("heart-failure")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    found = wait_until(lambda: _one_of_each(ehr, encounter["id"]), timeout=90, what="the draft")
    time.sleep(2)  # anything written twice would have landed by now
    found = drafts_in_ehr(ehr, encounter["id"])
    assert {k: len(v) for k, v in found.items()} == {
        "DocumentReference": 1,
        "PatientInstructions": 1,
        "CarePlan": 1,
        "Provenance": 1,
    }
    document = found["DocumentReference"][0]
    assert (document["status"], document["docStatus"]) == ("current", "preliminary")
    assert document["meta"]["security"][0]["code"] == "AIAST"
    assert found["CarePlan"][0]["status"] == "draft"
    # The live path writes what the offline pipeline writes for the same record.
    record = PatientRecord(next(r["id"] for r in stay if r["resourceType"] == "Patient"), stay)
    offline = draft_stay(
        record,
        inpatient_encounter(stay),
        get_generator("template"),
        identifier_system="urn:fhirgen:draft",
    )
    offline_document = offline.bundle["entry"][1]["resource"]
    assert summary_text(document) == summary_text(offline_document)
    # The patient instructions: their own preliminary, AI-labelled document, as offline.
    (instructions,) = found["PatientInstructions"]
    assert (instructions["status"], instructions["docStatus"]) == ("current", "preliminary")
    assert instructions["type"]["coding"][0]["code"] == "8653-8"
    assert instructions["meta"]["security"][0]["code"] == "AIAST"
    assert instructions["context"]["encounter"] == [{"reference": f"Encounter/{encounter['id']}"}]
    offline_instructions = offline.bundle["entry"][3]["resource"]
    summary_id = document["identifier"][0]["value"]  # <encounter>.v<EHR version>.discharge-summary
    assert instructions["identifier"] == [
        {
            "system": "urn:fhirgen:draft",
            "value": summary_id.replace(".discharge-summary", ".patient-instructions"),
        }
    ]
    assert summary_text(instructions) == summary_text(offline_instructions)
    (provenance,) = found["Provenance"]
    assert sorted(t["reference"] for t in provenance["target"]) == sorted(
        [
            f"DocumentReference/{document['id']}",
            f"CarePlan/{found['CarePlan'][0]['id']}",
            f"DocumentReference/{instructions['id']}",
        ]
    )
    job = system.store.jobs(encounter_id=encounter["id"])[0]
    assert job.state == "done" and job.round_trips <= 5
    assert set(job.timings) == {"read", "generate", "write"}


def test_the_same_notification_five_times_drafts_once(ehr, system, subscription):
    stay = sample_stay("pneumonia")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    wait_until(lambda: _one_of_each(ehr, encounter["id"]), timeout=90, what="the draft")
    current = ehr.search("Encounter", _id=encounter["id"])[0]
    for _ in range(5):
        response = system.notify(
            subscription, current, method="PUT", path=f"/Encounter/{encounter['id']}"
        )
        assert response.status_code == 200
        assert response.json()["id"] == encounter["id"], "a PUT gets the resource back"
    wait_until(
        lambda: all(
            j.state in ("done", "skipped") for j in system.store.jobs(encounter_id=encounter["id"])
        ),
        what="the repeated jobs to settle",
    )
    time.sleep(1)
    found = drafts_in_ehr(ehr, encounter["id"])
    assert {k: len(v) for k, v in found.items()} == {
        "DocumentReference": 1,
        "PatientInstructions": 1,
        "CarePlan": 1,
        "Provenance": 1,
    }
    states = sorted(j.state for j in system.store.jobs(encounter_id=encounter["id"]))
    assert states.count("done") == 1
    assert all(s == "skipped" for s in states if s != "done")


def test_a_new_version_with_unchanged_facts_writes_nothing(ehr, system, subscription):
    """EHRs update finished encounters all the time (coding, billing): each new version is
    notified, and one that changes no fact of the stay adds no draft beside the first."""
    stay = sample_stay("pneumonia")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    wait_until(lambda: _one_of_each(ehr, encounter["id"]), timeout=90, what="the draft")
    before = _settled_jobs(system, encounter["id"])
    billed = {**encounter, "account": [{"reference": "Account/billing-7"}]}
    ehr.put_all([billed])  # a new version, still finished
    job = _next_job(system, encounter["id"], before)
    assert job.state == "skipped"
    assert "facts are unchanged since the draft written by job" in job.reason
    time.sleep(1)
    found = drafts_in_ehr(ehr, encounter["id"])
    assert {k: len(v) for k, v in found.items()} == {
        "DocumentReference": 1,
        "PatientInstructions": 1,
        "CarePlan": 1,
        "Provenance": 1,
    }


def test_an_older_version_arriving_late_changes_nothing(ehr, system, subscription):
    stay = sample_stay("hip-fracture")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    first = wait_until(
        lambda: _one_of_each(ehr, encounter["id"]), timeout=90, what="the first draft"
    )
    old_version = ehr.search("Encounter", _id=encounter["id"])[0]
    # The stay is corrected after discharge: a new version, still finished.
    corrected = json.loads(json.dumps(encounter))
    corrected["hospitalization"]["dischargeDisposition"]["text"] = (
        "Skilled nursing facility (corrected)"
    )
    ehr.put_all([corrected])
    newest = wait_until(
        lambda: (
            len(drafts_in_ehr(ehr, encounter["id"])["DocumentReference"]) == 2
            and drafts_in_ehr(ehr, encounter["id"])
        ),
        timeout=90,
        what="the draft of the corrected version",
    )
    documents = sorted(newest["DocumentReference"], key=lambda d: d["identifier"][0]["value"])
    replaced = first["DocumentReference"][0]["id"]
    latest = next(d for d in documents if d["id"] != replaced)
    assert latest["relatesTo"] == [
        {"code": "replaces", "target": {"reference": f"DocumentReference/{replaced}"}}
    ]
    assert "(corrected)" in summary_text(latest)
    # One current draft per stay: the first one, untouched, was superseded in the same write.
    statuses = {d["id"]: d["status"] for d in documents}
    assert statuses == {replaced: "superseded", latest["id"]: "current"}
    plans = {p["id"]: p["status"] for p in newest["CarePlan"]}
    assert plans[first["CarePlan"][0]["id"]] == "revoked"
    assert sorted(plans.values()) == ["draft", "revoked"]
    leaflets = sorted(d["status"] for d in newest["PatientInstructions"])
    assert leaflets == ["current", "superseded"]
    # Now the EHR delivers the old version's notification late.
    response = system.notify(
        subscription, old_version, method="PUT", path=f"/Encounter/{encounter['id']}"
    )
    assert response.status_code == 200
    # Skipped at intake (issue 14): the version was drafted, so the event names that job and no
    # job is made to read the stay again.
    time.sleep(1)
    jobs = system.store.jobs(encounter_id=encounter["id"])
    assert [j.state for j in jobs] == ["done", "done"]
    assert len(drafts_in_ehr(ehr, encounter["id"])["DocumentReference"]) == 2
    late = system.store.events(subscription.id)[0]
    assert "already drafted" in (late.note or "")
    assert late.job_id in {j.id for j in jobs}


def test_a_draft_the_clinician_signed_is_never_superseded(ehr, system, subscription):
    """Signed in the EHR, then the stay changes: fhirgen writes nothing over or beside the
    signed note and the job says why."""
    stay = sample_stay("heart-failure")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    found = wait_until(lambda: _one_of_each(ehr, encounter["id"]), timeout=90, what="the draft")
    _settled_jobs(system, encounter["id"])
    current = [d for d in found["DocumentReference"] if d["status"] == "current"]
    assert len(current) == 1
    signed = {
        **current[0],
        "docStatus": "final",
        "authenticator": {"reference": "Practitioner/signer-1"},
    }
    ehr.put_all([signed])
    before = {j.id for j in system.store.jobs(encounter_id=encounter["id"])}
    changed = json.loads(json.dumps(encounter))
    changed["hospitalization"]["dischargeDisposition"]["text"] = "Home with home health (changed)"
    ehr.put_all([changed])
    job = _next_job(system, encounter["id"], before)
    assert job.state == "skipped"
    assert job.reason.startswith("changed after review")
    assert f"DocumentReference/{signed['id']} (signed" in job.reason
    time.sleep(1)
    after = drafts_in_ehr(ehr, encounter["id"])
    assert len(after["DocumentReference"]) == len(found["DocumentReference"])
    note = next(d for d in after["DocumentReference"] if d["id"] == signed["id"])
    assert (note["status"], note["docStatus"]) == ("current", "final")


def test_a_stay_that_is_not_inpatient_is_skipped(ehr, system, subscription):
    stay = sample_stay("chest-pain-observation")
    ehr.put_all(stay)
    clinic = next(
        r for r in stay if r["resourceType"] == "Encounter" and r["class"]["code"] == "EMER"
    )
    response = system.notify(subscription, clinic, method="PUT", path=f"/Encounter/{clinic['id']}")
    assert response.status_code == 200
    job = wait_until(
        lambda: next(
            (j for j in system.store.jobs(encounter_id=clinic["id"]) if j.state == "skipped"), None
        ),
        what="the skipped job",
    )
    assert "not an inpatient class" in job.reason
    assert drafts_in_ehr(ehr, clinic["id"])["DocumentReference"] == []


@pytest.mark.parametrize(
    ("method", "body", "headers", "status", "code"),
    [
        ("POST", b"{not json", {}, 400, "invalid"),
        ("POST", b'{"hello": "world"}', {}, 400, "structure"),
        (
            "POST",
            b'{"resourceType": "Encounter", "id": "x"}',
            {"Content-Type": "text/plain"},
            415,
            "not-supported",
        ),
        (
            "POST",
            b'{"resourceType": "Encounter", "id": "x"}',
            {"Authorization": "Bearer wrong"},
            401,
            "login",
        ),
        ("POST", b"x" * (8 * 1024 * 1024 + 10), {}, 413, "too-costly"),
    ],
    ids=["malformed-json", "not-fhir", "media-type", "bad-token", "too-large"],
)
def test_bad_requests_get_an_operation_outcome_and_create_nothing(
    system, subscription, method, body, headers, status, code
):
    jobs_before = len(system.store.jobs(limit=1000))
    response = system.notify(subscription, body, method=method, headers=headers)
    assert response.status_code == status
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code
    assert len(system.store.jobs(limit=1000)) == jobs_before
    assert httpx.get(f"{system.public_url}/healthz").status_code == 200


def test_unknown_subscription_is_404(system):
    response = httpx.post(
        f"{system.public_url}/fhir/notify/no-such-subscription", content=b"", timeout=10
    )
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"


def test_metrics_count_notifications_and_jobs(system):
    text = httpx.get(f"{system.public_url}/metrics", timeout=10).text
    assert 'fhirgen_notifications_total{kind="rest-hook",status="200"}' in text
    assert 'fhirgen_jobs{state="done"}' in text
