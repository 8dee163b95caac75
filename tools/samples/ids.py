"""Ids derived from a hash of a readable key, in the style of the EHR a sample imitates."""

from __future__ import annotations

import base64
import hashlib
import uuid

BASE_URL = "https://ehr.example.org/fhir"


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode("utf-8")).digest()


def epic_id(seed: str) -> str:
    """Epic-looking id: 'e' + 22 letters and digits + '3'."""
    token = "".join(ch for ch in base64.b64encode(_digest(seed)).decode("ascii") if ch.isalnum())
    return f"e{token[:22]}3"


def oracle_id(seed: str) -> str:
    """Oracle Health (Cerner) Millennium-looking id: eight digits."""
    return str(10_000_000 + int.from_bytes(_digest(seed)[:8], "big") % 90_000_000)


def hapi_id(seed: str) -> str:
    """HAPI FHIR server-assigned-looking id: six digits."""
    return str(100_000 + int.from_bytes(_digest(seed)[:8], "big") % 900_000)


def bulk_id(seed: str) -> str:
    """A name-based UUID, as many Bulk Data servers assign."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{BASE_URL}/{seed}"))
