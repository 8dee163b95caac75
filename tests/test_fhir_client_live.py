"""Reading stays from a real FHIR server (sekmet-fhir, its own process), openly and with SMART.

The sample stays are loaded into the server with their ids; reading each stay back over FHIR must
give ``build_context`` the same stay, and so the same facts, as the offline reader gives for the
sample files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhirgen.clinical.facts import extract_facts
from fhirgen.clinical.stay import STAY_RESOURCE_TYPES, STAY_SCOPE, build_context
from fhirgen.errors import PermanentError
from fhirgen.fhir.auth import SmartBackendAuth
from fhirgen.fhir.client import FhirClient, NotFoundError
from fhirgen.fhir.loading import Loader, ResourcePool
from fhirgen.fhir.problems import Problem
from fhirgen.fhir.record import PatientRecord, resource_key
from fhirgen.fhir.stay_reader import read_stay
from tests.conftest import SAMPLES
from tests.ehr import SekmetServer

STAYS = {
    "heart-failure": "eu4L8PolKgWuJTua8jnJQwL3",
    "pneumonia": "19436125",
    "hip-fracture": "551725",
    "chest-pain-observation": "e0A7wIed4I7rHxOYugtFpwG3",
}


def sample_resources(name: str) -> list[dict[str, Any]]:
    bundle = json.loads((SAMPLES / "stays" / f"{name}.json").read_text())
    return [entry["resource"] for entry in bundle["entry"]]


def keys(record: PatientRecord) -> set[str]:
    return {resource_key(r) for rtype in STAY_RESOURCE_TYPES for r in record.of_type(rtype)}


def facts_of(record: PatientRecord, encounter: dict[str, Any]) -> list[tuple[str, str]]:
    return [(fact.id, fact.text) for fact in extract_facts(build_context(record, encounter))]


@pytest.fixture(scope="module")
def ehr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    """One open sekmet-fhir holding all four sample stays."""
    server = SekmetServer(tmp_path_factory.mktemp("sekmet")).start()
    try:
        for name in STAYS:
            server.put_all(sample_resources(name))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def offline() -> Iterator[ResourcePool]:
    """The same samples read from files, as ``fhirgen generate`` reads them."""
    problems: list[Problem] = []
    with ResourcePool() as pool:
        Loader(pool, problems.append, max_bundle_bytes=64 << 20, max_line_bytes=16 << 20).load(
            [SAMPLES / "stays"]
        )
        assert problems == []
        yield pool


def offline_stay(pool: ResourcePool, encounter_id: str) -> tuple[PatientRecord, dict[str, Any]]:
    encounter = pool.get(f"Encounter/{encounter_id}")
    assert encounter is not None
    patient = pool.encounter_patients([encounter_id])[encounter_id]
    assert patient is not None
    return pool.record(patient, STAY_RESOURCE_TYPES), encounter


@pytest.mark.parametrize("encounter_id", list(STAYS.values()), ids=list(STAYS))
def test_a_stay_read_live_gives_the_facts_the_files_give(ehr, offline, encounter_id):
    with FhirClient(ehr.base_url) as client:
        read = read_stay(client, encounter_id, STAY_SCOPE)
        live = facts_of(read.record, read.encounter)
        assert client.round_trips == read.round_trips  # nothing was left to fetch on demand
    record, encounter = offline_stay(offline, encounter_id)
    expected = facts_of(record, encounter)
    assert len(expected) > 30
    assert live == expected
    assert read.round_trips <= 5


@pytest.mark.parametrize("encounter_id", list(STAYS.values()), ids=list(STAYS))
def test_a_stay_read_live_holds_only_its_own_patients_resources(ehr, offline, encounter_id):
    # sekmet-fhir ignores the Goal and Composition search parameters (it answers every
    # patient's): what comes back for another patient must stay out of the record.
    with FhirClient(ehr.base_url) as client:
        read = read_stay(client, encounter_id, STAY_SCOPE)
    record, _ = offline_stay(offline, encounter_id)
    assert keys(read.record) <= keys(record)
    goals = [resource_key(g) for g in read.record.of_type("Goal")]
    assert goals == [resource_key(g) for g in record.of_type("Goal")]


def test_a_stay_record_stored_and_rebuilt_elsewhere_gives_the_same_facts(ehr):
    # A worker reads the stay, stores record.resources(), and another process drafts from it
    # with no access to the EHR: everything the stay refers to must already be in there.
    encounter_id = STAYS["heart-failure"]
    with FhirClient(ehr.base_url) as client:
        read = read_stay(client, encounter_id, STAY_SCOPE)
        stored = json.loads(json.dumps([dict(r) for r in read.record.resources()]))
        expected = facts_of(read.record, read.encounter)
    by_key = {resource_key(r): r for r in stored}
    rebuilt = PatientRecord(read.record.patient_id, stored, lookup=by_key.get)
    assert any(key.startswith("Medication/") for key in by_key)
    assert facts_of(rebuilt, read.encounter) == expected


def test_reading_a_stay_that_is_not_there_is_not_found(ehr):
    with FhirClient(ehr.base_url) as client, pytest.raises(NotFoundError):
        read_stay(client, "no-such-encounter", STAY_SCOPE)


# -- SMART Backend Services end to end -------------------------------------------------------


def write_key_pair(folder: Path, alg: str) -> tuple[Path, Path]:
    """A private key for fhirgen and its public key for the EHR's client registration."""
    if alg == "RS384":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP384R1())
    private = folder / f"fhirgen-{alg}.pem"
    public = folder / f"fhirgen-{alg}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


class SmartEhr:
    def __init__(self, server: SekmetServer, keys: dict[str, Path]) -> None:
        self.server = server
        self.keys = keys
        self._auths: list[SmartBackendAuth] = []

    def auth(
        self, client_id: str, alg: str = "RS384", scopes: str = "system/*.cruds"
    ) -> SmartBackendAuth:
        made = SmartBackendAuth(
            self.server.base_url, client_id, self.keys[alg], alg=alg, scopes=scopes
        )
        self._auths.append(made)
        return made

    def client(self, *args: Any, **kwargs: Any) -> FhirClient:
        return FhirClient(self.server.base_url, auth=self.auth(*args, **kwargs))

    def close(self) -> None:
        for made in self._auths:
            made.close()


@pytest.fixture(scope="module")
def smart_ehr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmartEhr]:
    """A sekmet-fhir that accepts SMART Backend Services tokens only."""
    folder = tmp_path_factory.mktemp("sekmet-smart")
    (rsa_key, rsa_public), (ec_key, ec_public) = (
        write_key_pair(folder, "RS384"),
        write_key_pair(folder, "ES384"),
    )
    server = SekmetServer(
        folder,
        smart_clients=[
            {
                "client_id": "fhirgen",
                "public_key_path": str(rsa_public),
                "scopes": "system/*.cruds",
            },
            {
                "client_id": "fhirgen-ec",
                "public_key_path": str(ec_public),
                "scopes": "system/*.cruds",
            },
            {
                "client_id": "reader",
                "public_key_path": str(rsa_public),
                "scopes": "system/Patient.rs",
            },
        ],
    ).start()
    ehr = SmartEhr(server, {"RS384": rsa_key, "ES384": ec_key})
    try:
        with ehr.client("fhirgen") as client:
            client.transaction(
                {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [
                        {
                            "resource": r,
                            "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                        }
                        for r in sample_resources("heart-failure")
                    ],
                }
            )
        yield ehr
    finally:
        ehr.close()
        server.stop()


def test_smart_rs384_client_reads_a_whole_stay(smart_ehr, offline):
    encounter_id = STAYS["heart-failure"]
    with smart_ehr.client("fhirgen") as client:
        read = read_stay(client, encounter_id, STAY_SCOPE)
    record, encounter = offline_stay(offline, encounter_id)
    assert facts_of(read.record, read.encounter) == facts_of(record, encounter)


def test_smart_es384_client_reads_a_resource(smart_ehr):
    with smart_ehr.client("fhirgen-ec", "ES384") as client:
        encounter = client.read("Encounter", STAYS["heart-failure"])
    assert encounter["status"] == "finished"


def test_an_unauthenticated_client_is_refused(smart_ehr):
    with FhirClient(smart_ehr.server.base_url) as client, pytest.raises(PermanentError) as caught:
        client.read("Encounter", STAYS["heart-failure"])
    assert "401" in str(caught.value)


def test_a_token_without_the_scope_is_refused(smart_ehr):
    with smart_ehr.client("reader", scopes="system/Patient.rs") as client:
        assert client.read("Patient", "ehXoyXe2UktKFnYQn8xbTh83")["resourceType"] == "Patient"
        with pytest.raises(PermanentError) as caught:
            client.read("Encounter", STAYS["heart-failure"])
    assert "403" in str(caught.value)


def test_an_unregistered_client_or_scope_is_refused_at_the_token_endpoint(smart_ehr):
    with smart_ehr.client("stranger") as client, pytest.raises(PermanentError) as caught:
        client.read("Encounter", STAYS["heart-failure"])
    assert "invalid_client" in str(caught.value)
    reader = smart_ehr.client("reader", scopes="system/Encounter.rs")
    with reader, pytest.raises(PermanentError) as caught:
        reader.read("Encounter", STAYS["heart-failure"])
    assert "invalid_scope" in str(caught.value)
