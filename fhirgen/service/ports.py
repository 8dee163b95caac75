"""``JobStore``: the job store as the steps and the scheduler's recovery use it (``jobs``).

The application owns what it needs of the store, so the ``Protocol`` lives here; ``Store``
(``fhirgen.store``, SQL) satisfies it. There is deliberately no second, dict-based
implementation, which would drift from the SQL state machine: unit tests use
``Store.in_memory()``, the real store over a private in-memory SQLite database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy import Row

    from fhirgen.store import IntakeResult, Store, WrittenDraft

__all__ = ["JobStore"]


@runtime_checkable
class JobStore(Protocol):
    """Jobs and their state machine, their artifacts, draft claims, timings, the recovery
    queries, and the small values (watermarks). See ``fhirgen.store`` for each method."""

    # -- jobs and the state machine ---------------------------------------------------------

    def create_job(
        self,
        encounter_id: str,
        *,
        source: str,
        subscription_id: str | None = None,
        regeneration: int = 0,
    ) -> tuple[str, bool]:
        """A job for an Encounter: (job id, whether it is new and so the caller sends it)."""
        ...

    def job(self, job_id: str) -> Row[Any] | None:
        """The job's row, or None."""
        ...

    def advance(self, job_id: str, expected: Sequence[str], state: str, **values: Any) -> bool:
        """Move a job from one of ``expected`` to ``state`` atomically; False if it was not
        there."""
        ...

    def count_attempt(self, job_id: str) -> None:
        """One more attempt at the job's read step."""
        ...

    def add_timing(self, job_id: str, step: str, milliseconds: float) -> None:
        """Add the time one step took."""
        ...

    def active_job_encounters(self, encounter_ids: Iterable[str]) -> set[str]:
        """Which of these Encounters have a job under way."""
        ...

    # -- artifacts (what one step hands the next) -------------------------------------------

    def put_artifact(self, job_id: str, name: str, body: bytes) -> None:
        """Keep ``body`` under ``name`` for the job's next step."""
        ...

    def artifact(self, job_id: str, name: str) -> bytes | None:
        """An artifact kept by an earlier step, or None."""
        ...

    def drop_artifacts(self, job_id: str, names: Sequence[str]) -> None:
        """Forget artifacts no step needs any more."""
        ...

    # -- drafts -----------------------------------------------------------------------------

    def claim_draft(
        self,
        job_id: str,
        encounter_id: str,
        version: str,
        regeneration: int = 0,
        fingerprint: str | None = None,
    ) -> str | None:
        """Claim (encounter, version) for a job: None if granted, else the holding job id;
        ``fingerprint`` is the stay's facts' as the job read them."""
        ...

    def release_draft(self, job_id: str) -> None:
        """Give up a claim (the job failed): a later job may draft this version."""
        ...

    def record_written(self, job_id: str, document_reference: str | None) -> None:
        """Record the DocumentReference the job wrote."""
        ...

    def latest_written(self, encounter_id: str, *, other_than: str) -> str | None:
        """The newest DocumentReference we wrote for an Encounter (for ``relatesTo``)."""
        ...

    def latest_written_draft(self, encounter_id: str, *, other_than: str) -> WrittenDraft | None:
        """The newest draft we wrote for an Encounter, with its facts' fingerprint."""
        ...

    def drafted_versions(self, encounter_ids: Iterable[str]) -> dict[str, set[str]]:
        """Versions already claimed per Encounter (reconciliation skips those)."""
        ...

    # -- recovery ---------------------------------------------------------------------------

    def waiting_since(self, enqueued_before: datetime) -> list[tuple[str, datetime]]:
        """Jobs handed to the broker before ``enqueued_before`` that have not started yet."""
        ...

    def count_waiting_since(self, enqueued_before: datetime) -> int:
        """How many jobs ``waiting_since`` would return."""
        ...

    def reclaim_enqueue(
        self, jobs: Sequence[tuple[str, datetime | None]], now: datetime
    ) -> list[str]:
        """Claim waiting jobs for resending; the ids claimed."""
        ...

    def stalled(self, state: str, updated_before: datetime) -> list[tuple[str, datetime]]:
        """Jobs in an active ``state`` that have not moved since ``updated_before``."""
        ...

    def reclaim_stalled(
        self, state: str, jobs: Sequence[tuple[str, datetime]], now: datetime
    ) -> list[str]:
        """Claim stalled jobs for resending; the ids claimed."""
        ...

    def subscriptions(self) -> Sequence[Row[Any]]:
        """Every subscription's row."""
        ...

    def record_notification(
        self,
        subscription_id: str,
        kind: str,
        *,
        events: Iterable[tuple[int | None, str | None]] = (),
        events_since: int | None = None,
        now: datetime | None = None,
    ) -> IntakeResult:
        """Record a notification and create a job per Encounter it names (deduplicated)."""
        ...

    # -- small values -----------------------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        """A stored value (a watermark), or None."""
        ...

    def set_value(self, key: str, value: str) -> None:
        """Store a value."""
        ...


if TYPE_CHECKING:  # mypy proves the SQL store (and so Store.in_memory()) satisfies it

    def _sql(store: Store) -> JobStore:
        return store
