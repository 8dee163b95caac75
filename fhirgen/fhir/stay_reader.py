"""Reading one inpatient stay from the EHR in a handful of round trips.

``read_stay`` sends (1) ``GET Encounter/<id>``; (2) one ``batch`` of searches for the patient's
resources, bounded by the stay's dates only where ``build_context`` could never include what
the bound leaves out; (3) when needed, one more ``batch`` reading the resources the stay refers
to that (2) did not return (Medication, Practitioner, Organization, Location…). Paging is
followed to the end. The ``PatientRecord`` it returns gives ``build_context`` the same stay as
the offline reader gives for the same record: same resources, same order, same references.

What a stay takes from the record (its resource types, how long after discharge it looks, which
references it resolves) is the clinical layer's to say: the caller passes it as a ``StayScope``
(``fhirgen.clinical.stay.STAY_SCOPE``), so this I/O module calls nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fhirgen.errors import FhirgenError, InputError, PermanentError
from fhirgen.fhir.client import NotFoundError
from fhirgen.fhir.protocol import FhirStore
from fhirgen.fhir.record import (
    PatientRecord,
    Resource,
    StayScope,
    patient_of,
    reference_key,
    resource_key,
    standing_in,
)
from fhirgen.fhir.values import parse_time, period_bounds

PAGE_SIZE = 1000
# Date bounds are widened so that precision and time zones never cut off an edge case;
# build_context does the exact filtering on what comes back.
_SLACK = timedelta(days=2)
_OPEN_STATUSES = "active,on-hold"
_FOLLOW_UP_STATUSES = "booked,pending,proposed,waitlist"
_LIVE_GOAL_STATUSES = "proposed,planned,accepted,active,on-hold"


@dataclass(frozen=True)
class StayRead:
    """One stay as read from the EHR: its Encounter, the patient's record, and what it cost."""

    encounter: dict[str, Any]
    record: PatientRecord
    round_trips: int


def read_stay(client: FhirStore, encounter_id: str, scope: StayScope) -> StayRead:
    """Read everything ``scope`` needs for one Encounter.

    Raises ``NotFoundError`` when the Encounter does not exist, ``InputError`` when it names no
    Patient, and the client's ``TransientError``/``PermanentError`` on failed requests.
    ``round_trips`` counts the requests ``client`` sent meanwhile; references the record did
    not prefetch are read on demand by its ``lookup`` (one request each).
    """
    before = client.round_trips
    encounter = client.read("Encounter", encounter_id)
    if encounter.get("resourceType") != "Encounter":
        raise PermanentError(f"Encounter/{encounter_id} answered a {encounter.get('resourceType')}")
    patient_key = reference_key(encounter.get("subject"))
    if not patient_key or not patient_key.startswith("Patient/"):
        raise InputError(
            f"Encounter/{encounter_id} names no Patient as its subject",
            where=f"Encounter/{encounter_id}",
        )
    patient_id = patient_key.removeprefix("Patient/")

    sorter = _Sorter(patient_id, scope.resource_types)
    sorter.take([encounter])
    for found in client.batch(stay_queries(encounter, patient_id, scope.follow_up_window)):
        sorter.take(found)

    asked = _lookups(sorter.record(), encounter, scope)
    wanted = [key for key in asked if key not in sorter.known]
    for key, found in zip(wanted, client.batch(wanted), strict=True):
        sorter.take(found)
        # Like the offline pool, the lookup serves whatever a reference names; a 404 is
        # remembered too, so it is not asked again.
        sorter.known[key] = found[0] if found else None

    # A Medication the EHR does not have (404) is served as a stand-in that says so: the drafts
    # name it as missing and flag it for the clinician rather than failing the stay.
    record = sorter.record(lookup=standing_in(_RemoteLookup(client, sorter.known)))
    for key in asked:
        # Resolved now, from what was read: record.resources() then holds everything the stay
        # refers to, for a caller that stores the record and rebuilds it elsewhere.
        record.get(key)
    return StayRead(encounter, record, client.round_trips - before)


def stay_queries(
    encounter: Mapping[str, Any], patient_id: str, follow_up_window: timedelta
) -> list[str]:
    """The batch entries that read a stay's record (relative ``Type?…`` urls and one read).

    Each resource type is searched for the whole patient, or, where the stay takes only what
    the Encounter names or what falls inside it (or ``follow_up_window`` after it), by
    ``encounter`` plus the stay's dates (and a search for what has no date, where another
    field then counts).
    """
    admitted, discharged = period_bounds(encounter, "period")
    start = parse_time(admitted)
    end = parse_time(discharged) or start
    enc = f"Encounter/{encounter['id']}"
    pid = ("patient", patient_id)
    queries = [
        f"Patient/{patient_id}",
        # Problems active during the stay may be decades old; home medications too.
        _query("Condition", pid),
        _query("MedicationRequest", pid),
        _query("MedicationStatement", pid),
        _query("AllergyIntolerance", pid),
        _query("Goal", pid, ("lifecycle-status", _LIVE_GOAL_STATUSES)),
        _query("CarePlan", pid),
        _query("Composition", pid),
        # Results in the stay bring the reports that list them: a non-lab Observation counts
        # when a laboratory DiagnosticReport names it as a result.
        _query("Observation", ("encounter", enc), ("_revinclude", "DiagnosticReport:result")),
        _query("Procedure", ("encounter", enc)),
        _query("MedicationAdministration", ("context", enc)),
        _query("DiagnosticReport", ("encounter", enc)),
        _query("DocumentReference", ("encounter", enc)),
        # Orders bring the results based on them: an answered order is not pending.
        _query(
            "ServiceRequest",
            ("encounter", enc),
            ("status", _OPEN_STATUSES),
            ("_revinclude", "Observation:based-on"),
            ("_revinclude", "DiagnosticReport:based-on"),
        ),
    ]
    if start is not None:
        lo, hi = _day(start - _SLACK), _day((end or start) + _SLACK)
        window = (f"ge{lo}", f"le{hi}")
        queries += [
            _query(
                "Observation",
                pid,
                *_dates("date", window),
                ("_revinclude", "DiagnosticReport:result"),
            ),
            # No effective[x]: build_context places it by ``issued``, which R4 cannot search.
            _query(
                "Observation",
                pid,
                ("date:missing", "true"),
                ("_revinclude", "DiagnosticReport:result"),
            ),
            _query("Procedure", pid, *_dates("date", window)),
            _query("MedicationAdministration", pid, *_dates("effective-time", window)),
            _query("DiagnosticReport", pid, *_dates("date", window)),
            _query("DiagnosticReport", pid, *_dates("issued", window)),
            _query("DocumentReference", pid, *_dates("date", window)),
            _query("DocumentReference", pid, *_dates("period", window)),
            _query(
                "ServiceRequest",
                pid,
                ("status", _OPEN_STATUSES),
                *_dates("authored", window),
                ("_revinclude", "Observation:based-on"),
                ("_revinclude", "DiagnosticReport:based-on"),
            ),
        ]
    if end is not None:
        follow_up = (f"gt{_day(end - _SLACK)}", f"le{_day(end + follow_up_window + _SLACK)}")
        queries.append(
            _query("Appointment", pid, ("status", _FOLLOW_UP_STATUSES), *_dates("date", follow_up))
        )
    return queries


class _Sorter:
    """Sorts what the server returned as the offline reader would: the patient's resources of
    the stay's types into the record, resources outside any patient into ``known`` (served by
    the record's lookup), and other patients' resources nowhere (a server that ignores a search
    parameter it does not support answers with everyone's)."""

    def __init__(self, patient_id: str, resource_types: frozenset[str]) -> None:
        self.patient_id = patient_id
        self.resource_types = resource_types
        self.mine: dict[str, Resource] = {}
        self.known: dict[str, Resource | None] = {}

    def take(self, resources: Iterable[Resource]) -> None:
        for resource in resources:
            owner = patient_of(resource)
            key = resource_key(resource)
            if owner is None:
                self.known[key] = resource
            elif owner == self.patient_id and resource.get("resourceType") in self.resource_types:
                self.mine[key] = resource

    def record(self, lookup: Callable[[str], Resource | None] | None = None) -> PatientRecord:
        resources = sorted(self.mine.values(), key=lambda r: (r["resourceType"], r["id"]))
        return PatientRecord(self.patient_id, resources, lookup=lookup)


def _lookups(record: PatientRecord, encounter: Resource, scope: StayScope) -> list[str]:
    """The references the stay resolves outside what was read, found by building it once with
    a lookup that notes each key and answers a placeholder."""
    asked: dict[str, None] = {}

    def note(key: str) -> Resource:
        asked[key] = None
        rtype, _, rid = key.partition("/")
        return {"resourceType": rtype, "id": rid}

    resources = [r for rtype in sorted(scope.resource_types) for r in record.of_type(rtype)]
    probe = PatientRecord(record.patient_id, resources, lookup=note)
    # Malformed data makes the probe fail: the real build reports it; we prefetch less.
    with suppress(FhirgenError, LookupError, TypeError, ValueError, AttributeError):
        scope.build(probe, encounter)
    return list(asked)


class _RemoteLookup:
    """Serves references from what was read, reading anything else from the EHR once."""

    def __init__(self, client: FhirStore, known: Mapping[str, Resource | None]) -> None:
        self._client = client
        self._known = dict(known)

    def __call__(self, key: str) -> Resource | None:
        if key not in self._known:
            rtype, _, rid = key.partition("/")
            try:
                self._known[key] = self._client.read(rtype, rid)
            except NotFoundError:
                self._known[key] = None
        return self._known[key]


def _query(rtype: str, *params: tuple[str, str]) -> str:
    return f"{rtype}?{urlencode([*params, ('_count', str(PAGE_SIZE))], safe=':,/')}"


def _dates(name: str, bounds: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((name, bound) for bound in bounds)


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()
