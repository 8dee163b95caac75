"""SMART Backend Services to the EHR end to end, and no PHI in any log line.

The EHR (sekmet-fhir) accepts only SMART access tokens here; fhirgen signs its client assertion
with a key the test makes. Logs run at DEBUG; the patients' names, identifiers, birth dates,
addresses and note text must appear in none of the webhook's or workers' lines.
"""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fhirgen.fhir.client import put_transaction
from tests.ehr import SekmetServer
from tests.live import LiveSystem, admitted, discharged, drafts_in_ehr, sample_stay, wait_until

pytestmark = pytest.mark.live
STAYS = ("heart-failure", "pneumonia")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = folder / "fhirgen.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = folder / "fhirgen.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(scope="module")
def ehr(keys, tmp_path_factory):
    client = {"client_id": "fhirgen", "public_key_path": str(keys[1]), "scopes": "system/*.cruds"}
    server = SekmetServer(tmp_path_factory.mktemp("ehr"), smart_clients=[client]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(ehr, keys, tmp_path_factory):
    live = LiveSystem(
        tmp_path_factory.mktemp("fhirgen"),
        ehr.base_url,
        extra_env={
            "FHIRGEN_EHR_AUTH": "smart-backend",
            "FHIRGEN_EHR_CLIENT_ID": "fhirgen",
            "FHIRGEN_EHR_PRIVATE_KEY_PATH": str(keys[0]),
            "FHIRGEN_EHR_JWT_ALG": "RS384",
            "FHIRGEN_EHR_SCOPES": "system/*.cruds",
            "FHIRGEN_LOG_LEVEL": "DEBUG",
        },
    ).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def admin(ehr, keys):
    """The test loads the EHR with the same SMART client (the EHR refuses anonymous writes)."""
    from fhirgen.fhir.auth import SmartBackendAuth

    auth = SmartBackendAuth(ehr.base_url, "fhirgen", keys[0], scopes="system/*.cruds")
    yield auth
    auth.close()


def _put(ehr, admin, resources):
    response = httpx.post(ehr.base_url, json=put_transaction(resources), auth=admin, timeout=60)
    response.raise_for_status()


def test_anonymous_requests_are_refused_by_this_ehr(ehr):
    assert httpx.get(f"{ehr.base_url}/Patient", timeout=10).status_code in (401, 403)


def test_drafts_are_written_with_smart_backend_services(ehr, admin, system):
    system.subscribe()
    for name in STAYS:
        stay = sample_stay(name)
        _put(ehr, admin, admitted(stay))
        _put(ehr, admin, [discharged(stay)])
    reader = _AuthedEhr(ehr, admin)
    for name in STAYS:
        encounter_id = discharged(sample_stay(name))["id"]
        wait_until(
            lambda eid=encounter_id: drafts_in_ehr(reader, eid)["Provenance"],
            timeout=120,
            what=name,
        )
        found = drafts_in_ehr(reader, encounter_id)
        assert len(found["DocumentReference"]) == 1


def test_no_phi_in_any_log_line(system):
    logs = system.logs()
    assert "DEBUG" in logs, "the system ran at DEBUG"
    assert "done" in logs
    assert "rest-hook, 1 event(s), 1 job(s)" in logs, "the webhook's own DEBUG lines are in"
    for name in STAYS:
        for phrase in _phi(sample_stay(name)):
            assert phrase.lower() not in logs.lower(), (
                f"{phrase!r} of the {name} stay is in the logs"
            )


class _AuthedEhr:
    """``drafts_in_ehr`` reads through this: searches with the SMART client."""

    def __init__(self, ehr, auth) -> None:
        self.ehr, self.auth = ehr, auth

    def search(self, path, **params):
        response = httpx.get(
            f"{self.ehr.base_url}/{path}",
            params={**params, "_count": "1000"},
            auth=self.auth,
            timeout=30,
        )
        response.raise_for_status()
        return [e["resource"] for e in response.json().get("entry", [])]


def _phi(resources):
    """What identifies the patient or says something clinical in free text."""
    found: set[str] = set()
    for resource in resources:
        if resource["resourceType"] == "Patient":
            for name in resource.get("name") or []:
                found.update(g for g in name.get("given") or [] if len(g) > 2)
                if name.get("family"):
                    found.add(name["family"])
            found.update(i["value"] for i in resource.get("identifier") or [] if i.get("value"))
            if resource.get("birthDate"):
                found.add(resource["birthDate"])
            for address in resource.get("address") or []:
                found.update(line for line in address.get("line") or [] if len(line) > 5)
            for telecom in resource.get("telecom") or []:
                if telecom.get("value"):
                    found.add(telecom["value"])
        if resource["resourceType"] == "DocumentReference":
            for content in resource.get("content") or []:
                data = content.get("attachment", {}).get("data")
                if data:
                    text = re.sub(r"<[^>]+>", " ", base64.b64decode(data).decode(errors="replace"))
                    words = [w for w in text.split() if len(w) > 3]
                    if len(words) >= 6:
                        found.add(" ".join(words[:6]))
    return sorted(found)
