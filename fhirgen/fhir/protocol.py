"""``FhirStore``: the FHIR server as fhirgen uses it, written down as a ``Protocol``.

Exactly the interactions the application and ``stay_reader`` send. ``FhirClient``
(``fhirgen.fhir.client``, over HTTP) is the real implementation; ``InMemoryFhirStore``
(``fhirgen.fhir.memory``) is the one unit tests use, with no server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fhirgen.fhir.client import Params

if TYPE_CHECKING:
    from fhirgen.fhir.client import FhirClient
    from fhirgen.fhir.memory import InMemoryFhirStore

__all__ = ["FhirStore", "Params"]


@runtime_checkable
class FhirStore(Protocol):
    """A FHIR R4 server: reads, searches, batches of GETs, transactions, creates and updates.

    Failures raise fhirgen's error tree: ``NotFoundError`` (404, 410), ``PermanentError`` (any
    other refusal), ``TransientError`` (timeouts, 429, 5xx: retry).
    """

    @property
    def round_trips(self) -> int:
        """Requests sent so far."""
        ...

    def close(self) -> None:
        """Release what the store holds (connections)."""
        ...

    def __enter__(self) -> FhirStore: ...

    def __exit__(self, *exc: object) -> None: ...

    def read(self, rtype: str, rid: str) -> dict[str, Any]:
        """``GET [base]/Type/id``."""
        ...

    def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        """Any GET below the base URL that answers JSON (``metadata``, ``Subscription/x/$status``,
        ``Basic?code=…``)."""
        ...

    def search(self, rtype: str, params: Params | None = None) -> list[dict[str, Any]]:
        """``GET [base]/Type?params``, every page; the matched and included resources."""
        ...

    def batch(self, urls: Sequence[str]) -> list[list[dict[str, Any]]]:
        """One ``batch`` Bundle of GETs (``Type/id`` reads or ``Type?…`` searches): one resource
        list per url, in order; an entry answered 404 or 410 gives an empty list."""
        ...

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """``POST [base]`` a transaction Bundle; returns the transaction-response Bundle."""
        ...

    def create(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """``POST [base]/Type``; returns the stored resource."""
        ...

    def update(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT [base]/Type/id``; returns the stored resource."""
        ...


if TYPE_CHECKING:  # mypy proves both implementations satisfy the protocol

    def _http(client: FhirClient) -> FhirStore:
        return client

    def _memory(store: InMemoryFhirStore) -> FhirStore:
        return store
