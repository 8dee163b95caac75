"""One missing reference does not fail the stay (issue 14 point 11).

A discharge MedicationRequest names its drug by ``Medication/<id>`` and the EHR answers 404 for
it. The stay is drafted all the same: the text names "medication not found in the record
(Medication/<id>)" where the drug would be, a medication-check fact flags it for the clinician,
and everything else is drafted as before. Read through the stay reader from a real FHIR server
(sekmet-fhir), then through the live system's job.
"""

from __future__ import annotations

import base64

import pytest

from fhirgen.clinical.facts import FactKind
from fhirgen.clinical.stay import STAY_SCOPE
from fhirgen.drafting.generation import get_generator
from fhirgen.drafting.pipeline import draft_stay
from fhirgen.fhir.client import FhirClient
from fhirgen.fhir.record import PatientRecord, is_not_found, not_found, standing_in
from fhirgen.fhir.stay_reader import read_stay
from tests.live import LiveSystem, admitted, discharged, sample_stay, wait_until

SYSTEM = "urn:fhirgen:draft"
ORDER = "MedicationRequest/58528769"  # pneumonia's discharge order naming Medication/44068276
MISSING = "Medication/44068276"
NAMED = f"medication not found in the record ({MISSING})"
DRUG = "amoxicillin-clavulanate 875-125 mg tablet"  # the order's own display names it
CHECK = f"Check: {DRUG}, ordered by name only: {NAMED}; confirm the drug and strength."


def _stay_without_its_medication() -> list[dict]:
    stay = sample_stay("pneumonia")
    return [r for r in stay if f"{r['resourceType']}/{r['id']}" != MISSING]


def _text(document: dict) -> str:
    return base64.b64decode(document["content"][0]["attachment"]["data"]).decode()


def test_the_stand_in_says_what_is_missing():
    stand_in = not_found("Medication/x")
    assert stand_in["code"] == {"text": "medication not found in the record (Medication/x)"}
    assert is_not_found(stand_in) and not is_not_found({"resourceType": "Medication", "id": "x"})
    lookup = standing_in(lambda key: None)
    assert lookup("Medication/x") == stand_in
    assert lookup("Practitioner/x") is None, "only a Medication stands in: a name must not"


def test_a_medication_the_ehr_lacks_is_named_and_flagged_and_the_rest_drafted(ehr):
    stay = _stay_without_its_medication()
    ehr.put_all(stay)
    encounter_id = "19436125"
    with FhirClient(ehr.base_url) as client:
        read = read_stay(client, encounter_id, STAY_SCOPE)
    assert is_not_found(read.record.get(MISSING))
    # What the read step stores and the generate step rebuilds: the stand-in travels with it.
    resources = list(read.record.resources())
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    record = PatientRecord(read.record.patient_id, resources, lookup=by_key.get)
    result = draft_stay(record, read.encounter, get_generator("template"), identifier_system=SYSTEM)
    medications = [f for f in result.facts.of_kind(FactKind.MEDICATION) if ORDER in f.sources]
    # The order is stated under the drug it names itself, once, without the gap in its text …
    assert [(DRUG in f.text, NAMED in f.text) for f in medications] == [(True, False)]
    # … and one check, citing every order that names the missing Medication, says the gap.
    (check,) = [f for f in result.facts.of_kind(FactKind.MEDICATION_CHECK) if MISSING in f.text]
    assert ORDER in check.sources and MISSING not in check.sources
    summary = _text(result.bundle["entry"][1]["resource"])
    assert summary.count(NAMED) == 2  # the check line and its source in the list of sources
    assert CHECK in summary
    instructions = _text(result.bundle["entry"][3]["resource"])
    assert DRUG in instructions and NAMED not in instructions  # the patient reads the drug
    # The rest is drafted: the other discharge medications, and no stand-in cited as a source.
    assert "tiotropium" in summary.lower() and "albuterol" in summary.lower()
    provenance = result.bundle["entry"][-1]["resource"]
    cited = {e["what"]["reference"] for e in provenance["entity"]}
    assert ORDER in cited and MISSING not in cited


@pytest.mark.live
def test_the_job_drafts_a_stay_with_a_missing_medication(ehr, tmp_path_factory):
    system = LiveSystem(tmp_path_factory.mktemp("fhirgen"), ehr.base_url).start()
    try:
        system.subscribe()
        # The reader test may have loaded this record already: the same ids, the same record.
        stay = _stay_without_its_medication()
        ehr.put_all(admitted(stay))
        encounter = discharged(stay)
        ehr.put_all([encounter])

        def settled():
            jobs = system.store.jobs(encounter_id=encounter["id"])
            return [j for j in jobs if j.state in ("done", "failed")]

        (job,) = wait_until(settled, timeout=90, what="the job")
        assert job.state == "done", job.reason
        (document,) = [
            d
            for d in ehr.search("DocumentReference", encounter=f"Encounter/{encounter['id']}")
            if any(
                i.get("system") == SYSTEM and i.get("value", "").endswith(".discharge-summary")
                for i in d.get("identifier") or []
            )
        ]
        assert CHECK in _text(document)
    finally:
        system.stop()
