"""``Services``: the store, settings, FHIR client and generator factories the steps run with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhirgen.drafting.generation import Generator
from fhirgen.store import Store


@dataclass(frozen=True)
class Services:
    """What the steps need, built once per worker process."""

    store: Store
    settings: Any
    client: Callable[[], Any]  # -> FhirClient (a fresh one per step: round trips are counted)
    generator: Callable[[], Generator]
