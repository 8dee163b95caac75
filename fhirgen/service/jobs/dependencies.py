"""``Services``: the store, settings, FHIR client and generator factories the steps run with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fhirgen.config import Settings
from fhirgen.drafting.generation import Generator
from fhirgen.fhir.protocol import FhirStore
from fhirgen.service.ports import JobStore


@dataclass(frozen=True)
class Services:
    """What the steps need, built once per worker process.

    ``store`` is a ``Store`` (or, in unit tests, ``Store.in_memory()``); ``client`` makes a
    ``FhirClient`` (or an ``InMemoryFhirStore``), a fresh one per step: round trips are counted.
    """

    store: JobStore
    settings: Settings
    client: Callable[[], FhirStore]
    generator: Callable[[], Generator]
