"""The medication part of a stay: home medications at admission, inpatient orders and
administrations, prescriptions for after discharge; a Medication any of them names must be in the
input, or the stay cannot be summarised (``InputError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from fhirgen.clinical.stay.membership import StayMembership, time_key
from fhirgen.errors import InputError
from fhirgen.fhir.record import Resource, resource_key
from fhirgen.fhir.values import concept_codes, parse_time, period_bounds


class MedicationParts(StayMembership):
    """The medication requests, statements and administrations of one stay."""

    def _medication_name_source(self, resource: Resource) -> None:
        reference = resource.get("medicationReference")
        if reference is None:
            return
        found = self._remember(reference)
        if found is None:
            named = reference.get("reference") if isinstance(reference, Mapping) else reference
            raise InputError(
                f"{resource_key(resource)} refers to {named}, which is not in the input; "
                "its medication cannot be named",
                where=self.record.origin(resource_key(resource)) or resource_key(resource),
            )

    def _medication_requests(self) -> tuple[tuple[Resource, ...], ...]:
        before: list[Resource] = []
        during: list[Resource] = []
        discharge: list[Resource] = []
        for request in self.record.of_type("MedicationRequest"):
            if request.get("status") in {"entered-in-error", "cancelled", "draft"}:
                continue
            if request.get("doNotPerform"):
                continue
            categories = concept_codes(request.get("category") or [])
            authored = request.get("authoredOn")
            linked = self._linked(request, "encounter")
            in_stay = linked if linked is not None else self._within(authored, timedelta(hours=12))
            placed = False
            if "inpatient" in categories:
                if in_stay:
                    during.append(request)
                    placed = True
            elif "discharge" in categories:
                if in_stay:
                    discharge.append(request)
                    placed = True
            elif categories & {"community", "outpatient"} or not categories:
                if in_stay:
                    # Uncategorised orders of the stay that ended with it were given in hospital.
                    if categories or request.get("status") in {"active", "on-hold"}:
                        discharge.append(request)
                    else:
                        during.append(request)
                    placed = True
                elif self._home_medication(request, authored):
                    before.append(request)
                    placed = True
            if placed:
                self._medication_name_source(request)
        for statement in self.record.of_type("MedicationStatement"):
            if statement.get("status") in {"entered-in-error", "not-taken"}:
                continue
            start, end = period_bounds(statement, "effectiveDateTime", "effectivePeriod")
            start = start or statement.get("dateAsserted")
            began = parse_time(start)
            ended = (
                parse_time(end) if isinstance(statement.get("effectivePeriod"), Mapping) else None
            )
            if self.start is None or (began is not None and began > self.start):
                continue
            if ended is not None and ended < self.start:
                continue
            if statement.get("status") in {"completed", "stopped"} and ended is None:
                continue  # stopped at an unknown time: we cannot say it was taken at admission
            before.append(statement)
            self._medication_name_source(statement)
        return tuple(before), tuple(during), tuple(discharge)

    def _home_medication(self, request: Resource, authored: str | None) -> bool:
        moment = parse_time(authored)
        if moment is None or self.start is None or moment > self.start:
            return False
        if request.get("status") in {"active", "on-hold"}:
            return True
        validity = (request.get("dispenseRequest") or {}).get("validityPeriod") or {}
        ended = parse_time(validity.get("end"))
        return ended is not None and ended >= self.start

    def _administrations(self) -> tuple[Resource, ...]:
        found = []
        for given in self.record.of_type("MedicationAdministration"):
            if given.get("status") in {"entered-in-error", "not-done"}:
                continue
            when, _ = period_bounds(given, "effectiveDateTime", "effectivePeriod")
            if self._in_stay(given, when, "context", "encounter"):
                found.append(given)
                self._medication_name_source(given)
        return tuple(sorted(found, key=time_key("effectiveDateTime", "effectivePeriod")))
