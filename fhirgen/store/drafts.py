"""Drafts: a job's claim on an (Encounter, version), and what was written back for it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fhirgen.store.common import utcnow
from fhirgen.store.engine import Database
from fhirgen.store.models import Draft


class WrittenDraft(NamedTuple):
    """A draft written back: the job that wrote it, its DocumentReference, its facts'
    fingerprint."""

    job_id: str
    document_reference: str
    facts_fingerprint: str | None


class DraftsMixin(Database):
    """The ``Store``'s draft claims."""

    def claim_draft(
        self,
        job_id: str,
        encounter_id: str,
        version: str,
        regeneration: int = 0,
        fingerprint: str | None = None,
    ) -> str | None:
        """Claim (encounter, version) for a job: None if granted, else the holding job id.
        ``fingerprint``: the facts' (``FactSet.fingerprint``) as the job read the stay."""
        with self.engine.begin() as connection:
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(Draft).values(
                            encounter_id=encounter_id,
                            encounter_version=version,
                            kind="discharge",
                            regeneration=regeneration,
                            job_id=job_id,
                            facts_fingerprint=fingerprint,
                            created_at=utcnow(),
                        )
                    )
            except IntegrityError:
                holder = connection.execute(
                    select(Draft.job_id).where(
                        Draft.encounter_id == encounter_id,
                        Draft.encounter_version == version,
                        Draft.kind == "discharge",
                        Draft.regeneration == regeneration,
                    )
                ).one()
                return None if holder.job_id == job_id else holder.job_id
        return None

    def release_draft(self, job_id: str) -> None:
        """Give up a claim (the job failed): a later job may draft this version."""
        with self.engine.begin() as connection:
            connection.execute(
                delete(Draft).where(Draft.job_id == job_id, Draft.document_reference.is_(None))
            )

    def record_written(self, job_id: str, document_reference: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(Draft)
                .where(Draft.job_id == job_id)
                .values(document_reference=document_reference)
            )

    def latest_written(self, encounter_id: str, *, other_than: str) -> str | None:
        """The newest DocumentReference we wrote for an Encounter (for ``relatesTo.replaces``)."""
        written = self.latest_written_draft(encounter_id, other_than=other_than)
        return written.document_reference if written else None

    def latest_written_draft(self, encounter_id: str, *, other_than: str) -> WrittenDraft | None:
        """The newest draft we wrote for an Encounter: its job, DocumentReference and facts'
        fingerprint (None for drafts written before fingerprints were kept)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(Draft.job_id, Draft.document_reference, Draft.facts_fingerprint)
                .where(
                    Draft.encounter_id == encounter_id,
                    Draft.document_reference.is_not(None),
                    Draft.job_id != other_than,
                )
                .order_by(Draft.created_at.desc())
                .limit(1)
            ).first()
        return (
            WrittenDraft(row.job_id, row.document_reference, row.facts_fingerprint) if row else None
        )

    def drafted_versions(self, encounter_ids: Iterable[str]) -> dict[str, set[str]]:
        """Versions already claimed per Encounter (reconciliation skips those)."""
        ids = list(encounter_ids)
        found: dict[str, set[str]] = {}
        if not ids:
            return found
        with self.engine.connect() as connection:
            for row in connection.execute(
                select(Draft.encounter_id, Draft.encounter_version).where(
                    Draft.encounter_id.in_(ids)
                )
            ):
                found.setdefault(row.encounter_id, set()).add(row.encounter_version)
        return found
