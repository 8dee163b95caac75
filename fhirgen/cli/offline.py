"""Running the pipeline over FHIR files: what ``fhirgen generate`` and ``fhirgen eval`` share.

Inputs are read into a pool (streamed, spilled to disk), then processed one patient at a time,
so memory follows the largest patient, not the size of the export. Problems are reported as
they are found and never stop the other inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fhirgen.clinical.stay import STAY_RESOURCE_TYPES, find_stays, is_inpatient_stay
from fhirgen.config import Settings
from fhirgen.drafting.generation import Generator
from fhirgen.drafting.pipeline import StayDraft, StayRequest, draft_stays
from fhirgen.errors import PermanentError
from fhirgen.fhir.loading import Loader, ResourcePool
from fhirgen.fhir.problems import Problem

Report = Callable[[Problem], None]


@dataclass(frozen=True)
class StayOutcome:
    """One stay's result: a draft, or the problem that stopped it."""

    encounter_id: str
    draft: StayDraft | None
    problem: Problem | None


@dataclass
class RunSummary:
    """Counts for the closing line of a run."""

    records: int = 0
    records_without_stay: int = 0
    stays_drafted: int = 0
    stays_failed: int = 0
    errors: int = 0
    warnings: int = 0
    missing_encounters: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.errors or self.stays_failed)

    def line(self) -> str:
        """One line for a person at the end of a run."""
        parts = [
            f"{self.stays_drafted} stay{'s' if self.stays_drafted != 1 else ''} drafted",
            f"{self.stays_failed} failed",
            f"{self.records} patient record{'s' if self.records != 1 else ''} read "
            f"({self.records_without_stay} without a finished inpatient stay)",
            f"{self.errors} input error{'s' if self.errors != 1 else ''}",
            f"{self.warnings} warning{'s' if self.warnings != 1 else ''}",
        ]
        return ", ".join(parts)


class OfflineRun:
    """Reads inputs once and drafts their stays; use as a context manager."""

    def __init__(self, settings: Settings, report: Report) -> None:
        self.settings = settings
        self.summary = RunSummary()
        self._report = report
        self.pool = ResourcePool()

    def __enter__(self) -> OfflineRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.close()

    def report(self, problem: Problem) -> None:
        """Count and pass on a problem."""
        if problem.severity == "error":
            self.summary.errors += 1
        else:
            self.summary.warnings += 1
        self._report(problem)

    def load(self, paths: Sequence[Path]) -> None:
        """Read every input into the pool."""
        Loader(
            self.pool,
            self.report,
            max_bundle_bytes=self.settings.max_bundle_bytes,
            max_line_bytes=self.settings.max_line_bytes,
        ).load(paths)

    def count_stays(self, encounters: Sequence[str] = ()) -> int:
        """How many stays ``stays`` will yield (for a progress bar)."""
        classes = set(self.settings.inpatient_classes)
        wanted = set(encounters)
        return sum(
            1
            for _, encounter in self.pool.encounters()
            if (str(encounter.get("id")) in wanted)
            or (not wanted and is_inpatient_stay(encounter, classes))
        )

    def stays(
        self,
        generator: Generator,
        *,
        encounters: Sequence[str] = (),
        generated_at: str | None = None,
        validate: bool = True,
        batch: int = 1,
    ) -> Iterator[StayOutcome]:
        """Draft every finished inpatient stay, or only ``encounters`` (whatever their class).

        ``batch`` stays go to the generator together (model backends batch their calls).
        """
        classes = set(self.settings.inpatient_classes)
        wanted: dict[str, list[str]] = {}
        orphans: list[dict] = []
        if encounters:
            found = self.pool.encounter_patients(encounters)
            for encounter_id in dict.fromkeys(encounters):
                if encounter_id not in found:
                    self.summary.missing_encounters.append(encounter_id)
                    self.report(Problem("", f"Encounter/{encounter_id} is not in the input"))
                elif found[encounter_id] is None:
                    orphans.append(self.pool.get(f"Encounter/{encounter_id}") or {})
                else:
                    wanted.setdefault(str(found[encounter_id]), []).append(encounter_id)
            patients = sorted(wanted)
        else:
            patients = self.pool.patient_ids()
            orphans = [
                e for p, e in self.pool.encounters() if p is None and is_inpatient_stay(e, classes)
            ]
        pending: list[StayRequest] = []
        for patient_id in patients:
            record = self.pool.record(patient_id, STAY_RESOURCE_TYPES)
            if encounters:
                named = (record.get(f"Encounter/{e}") for e in wanted[patient_id])
                stays = [e for e in named if e is not None]
            else:
                stays = find_stays(record, classes)
            self.summary.records += 1
            if not stays:
                self.summary.records_without_stay += 1
            for encounter in stays:
                pending.append(StayRequest(record, encounter, generated_at))
                if len(pending) >= batch:
                    yield from self._draft(pending, generator, validate)
                    pending = []
        if pending:
            yield from self._draft(pending, generator, validate)
        for encounter in orphans:
            key = f"Encounter/{encounter.get('id')}"
            subject = (encounter.get("subject") or {}).get("reference") or "no patient"
            problem = Problem(key, f"refers to {subject}, which is not in the input")
            self.summary.stays_failed += 1
            self._report(problem)
            yield StayOutcome(str(encounter.get("id")), None, problem)

    def _draft(
        self, requests: list[StayRequest], generator: Generator, validate: bool
    ) -> Iterator[StayOutcome]:
        results = draft_stays(
            requests,
            generator,
            identifier_system=self.settings.identifier_system,
            validate=validate,
        )
        for request, result in zip(requests, results, strict=True):
            encounter_id = str(request.encounter.get("id"))
            if isinstance(result, PermanentError):
                where = getattr(result, "where", "") or f"Encounter/{encounter_id}"
                problem = Problem(where, str(result).removeprefix(f"{where}: "))
                self.summary.stays_failed += 1
                self._report(problem)
                yield StayOutcome(encounter_id, None, problem)
                continue
            for warning in result.context.warnings:
                self.report(warning)
            self.summary.stays_drafted += 1
            yield StayOutcome(encounter_id, result, None)


def write_bundle(directory: Path, encounter_id: str, bundle: object) -> Path:
    """Write ``DIR/<encounter-id>.json`` atomically (a crash never leaves half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{encounter_id}.json"
    partial = directory / f".{encounter_id}.json.partial"
    partial.write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")
    partial.replace(target)
    return target
