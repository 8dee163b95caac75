"""What tasks need in a worker process (store, EHR client, generator), built on first use.

Built lazily in the process that runs tasks (after the prefork pool forks), never at import:
a database pool or a CUDA context must not cross a fork.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from fhirgen.config import load_settings
from fhirgen.drafting.generation import get_generator
from fhirgen.errors import ConfigError
from fhirgen.fhir.auth import auth_from_settings
from fhirgen.fhir.client import FhirClient
from fhirgen.service.jobs import Services
from fhirgen.store import Store

if TYPE_CHECKING:
    import httpx

    from fhirgen.config import Settings


@dataclass(frozen=True)
class WorkerServices(Services):
    """``Services`` holding the SQL ``Store`` itself: besides the steps (which need only a
    ``JobStore``), the tasks write its audit log, touch jobs and relay its outbox."""

    store: Store


@cache
def services() -> WorkerServices:
    settings = load_settings()
    base_url = settings.ehr_base_url
    if not base_url:
        raise ConfigError("FHIRGEN_EHR_BASE_URL is not set: the workers need the EHR's FHIR base")
    store = Store.from_settings(settings)
    auth = _auth(settings)

    def client() -> FhirClient:
        return FhirClient(base_url, auth=auth, timeout=settings.ehr_timeout)

    # Loaded on first use in the worker process (never at import: CUDA does not survive fork).
    generator = cache(lambda: get_generator(settings.backend, settings))
    return WorkerServices(store=store, settings=settings, client=client, generator=generator)


def _auth(settings: Settings) -> httpx.Auth | None:
    """One auth object per process, so a SMART access token is shared by every request."""
    return auth_from_settings(settings)
