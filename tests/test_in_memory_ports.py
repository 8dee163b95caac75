"""The seams' in-memory implementations (issue 15 point 3): the real job steps run against
``Store.in_memory()`` and an ``InMemoryFhirStore`` holding a shipped sample stay, no server."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirgen.config import load_settings
from fhirgen.drafting.generation import get_generator
from fhirgen.drafting.render import claims
from fhirgen.errors import PermanentError, TransientError
from fhirgen.fhir.client import FhirClient, NotFoundError
from fhirgen.fhir.memory import InMemoryFhirStore, UnsupportedSearch
from fhirgen.fhir.protocol import FhirStore
from fhirgen.service.jobs import GENERATE, WRITE, Services, generate, read, write
from fhirgen.service.ports import JobStore
from fhirgen.store import Store

SAMPLE = Path(__file__).parents[1] / "fhirgen" / "samples" / "stays" / "pneumonia.json"
STAY = "19436125"  # the sample's inpatient Encounter (the other is an outpatient visit)


def _sample() -> list[dict[str, Any]]:
    return [entry["resource"] for entry in json.loads(SAMPLE.read_text())["entry"]]


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store.in_memory()
    yield store
    store.dispose()


@pytest.fixture
def services(store: Store, tmp_path: Path, clean_environment: None) -> Services:
    ehr = InMemoryFhirStore(_sample())
    settings = load_settings(data_dir=tmp_path, secret_key="not-a-real-secret")
    return Services(
        store=store,
        settings=settings,
        client=lambda: ehr,
        generator=lambda: get_generator("template"),
    )


def _ehr(services: Services) -> InMemoryFhirStore:
    ehr = services.client()
    assert isinstance(ehr, InMemoryFhirStore)
    return ehr


def _holders(ehr: InMemoryFhirStore, rtype: str, system: str, value: str) -> list[str]:
    return [
        r["id"]
        for r in ehr.resources(rtype)
        if any(
            i.get("system") == system and i.get("value") == value for i in r.get("identifier") or []
        )
    ]


def _assert_one_of_each(ehr: InMemoryFhirStore, bundle: Mapping[str, Any]) -> None:
    mine = claims(bundle)
    assert {c.resource_type for c in mine} == {"DocumentReference", "CarePlan"}
    for claim in mine:  # the summary, the care plan, the patient instructions
        assert len(_holders(ehr, claim.resource_type, claim.system, claim.value)) == 1, claim
        assert claim.encounter == f"Encounter/{STAY}"
    assert len(ehr.resources("Provenance")) == 1
    assert len(ehr.resources("Device")) == 1
    shipped = sum(r["resourceType"] == "DocumentReference" for r in _sample())
    assert len(ehr.resources("DocumentReference")) == shipped + 2  # and our two, no more


def test_the_implementations_satisfy_the_protocols(store):
    with FhirClient("http://ehr.invalid/fhir") as client:
        assert isinstance(client, FhirStore)
    assert isinstance(InMemoryFhirStore(), FhirStore)
    assert isinstance(store, JobStore)


def test_a_sample_stay_is_read_drafted_and_written_with_no_server(services):
    store, ehr = services.store, _ehr(services)
    job_id, new = store.create_job(STAY, source="reconcile")
    assert new

    assert read(services, job_id) == GENERATE
    assert generate(services, job_id) == WRITE
    assert write(services, job_id) is None

    job = store.job(job_id)
    assert job is not None
    assert job.state == "done", job.reason
    assert job.round_trips and job.round_trips <= 4
    bundle = orjson.loads(store.artifact(job_id, "bundle") or b"{}")
    _assert_one_of_each(ehr, bundle)
    # What the job recorded is what the EHR holds, and it points at the stay.
    document = ehr.read(*job.document_reference.split("/"))
    assert document["context"]["encounter"][0]["reference"] == f"Encounter/{STAY}"
    provenance = ehr.read(*job.provenance.split("/"))
    targets = {t["reference"] for t in provenance["target"]}
    assert job.document_reference in targets and job.care_plan in targets
    assert not any(t.startswith("urn:uuid:") for t in targets)  # references were rewritten

    # The same transaction sent again (a redelivered write) creates nothing new.
    answer = ehr.transaction(bundle)
    assert {e["response"]["status"] for e in answer["entry"]} == {"200 OK"}
    _assert_one_of_each(ehr, bundle)


class _LosesTheFirstAnswer(InMemoryFhirStore):
    """An EHR that commits the first transaction, then the connection drops before the answer."""

    lost = False

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        answer = super().transaction(bundle)
        if not self.lost:
            self.lost = True
            raise TransientError("connection reset after the EHR committed")
        return answer


def test_a_write_retried_after_a_lost_answer_creates_no_duplicate(services):
    ehr = _LosesTheFirstAnswer(_sample())
    services = Services(services.store, services.settings, lambda: ehr, services.generator)
    job_id, _ = services.store.create_job(STAY, source="reconcile")
    assert read(services, job_id) == GENERATE
    assert generate(services, job_id) == WRITE
    with pytest.raises(TransientError):
        write(services, job_id)
    assert services.store.job(job_id).state == "writing"  # the task retries the step

    assert write(services, job_id) is None
    assert services.store.job(job_id).state == "done"
    _assert_one_of_each(ehr, orjson.loads(services.store.artifact(job_id, "bundle") or b"{}"))


def test_a_search_parameter_it_does_not_support_raises():
    ehr = InMemoryFhirStore(_sample())
    with pytest.raises(UnsupportedSearch, match="name"):
        ehr.search("Patient", {"name": "Smith"})
    with pytest.raises(UnsupportedSearch, match="_revinclude"):
        ehr.batch(["Encounter?_revinclude=Condition:encounter"])
    assert issubclass(UnsupportedSearch, PermanentError)  # a step fails the job, no retries


def test_searches_and_reads_answer_like_a_server():
    ehr = InMemoryFhirStore(_sample())
    patient = ehr.read("Encounter", STAY)["subject"]["reference"]
    encounters = ehr.search("Encounter", [("patient", patient), ("status", "finished")])
    assert {e["id"] for e in encounters} >= {STAY}
    in_january = ehr.search("Encounter", [("_lastUpdated", "ge2000-01-01"), ("_count", "100")])
    assert len(in_january) == 2
    assert ehr.batch(["Encounter/nope", f"Encounter/{STAY}"])[0] == []
    with pytest.raises(NotFoundError):
        ehr.read("Encounter", "nope")
    stored = ehr.update({**ehr.read("Encounter", STAY), "status": "entered-in-error"})
    assert stored["meta"]["versionId"] == "2"
