"""The stay's builder: ``build_context`` gathers, for one inpatient Encounter, everything a
discharge summary rests on (``StayContext``), and ``STAY_SCOPE`` tells a live reader what that
takes: these resource types, ``FOLLOW_UP_WINDOW`` after discharge, the references it resolves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from fhirgen.clinical.stay.medication_parts import MedicationParts
from fhirgen.clinical.stay.membership import ai_asserted, is_discharge_summary, time_key
from fhirgen.clinical.stay.model import Note, StayContext
from fhirgen.clinical.stay.text import composition_text, document_text
from fhirgen.errors import InputError
from fhirgen.fhir.record import PatientRecord, Resource, StayScope, resource_key
from fhirgen.fhir.values import concept_codes, concept_name, has_code, parse_time, period_bounds

# The patient-compartment types a stay is built from; readers may skip the rest (Claims,
# ExplanationOfBenefits, ImagingStudies… are often most of an export's bytes).
STAY_RESOURCE_TYPES = frozenset(
    {
        "Patient",
        "Encounter",
        "Condition",
        "Procedure",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "Observation",
        "DiagnosticReport",
        "AllergyIntolerance",
        "DocumentReference",
        "Composition",
        "ServiceRequest",
        "Appointment",
        "Goal",
        "CarePlan",
    }
)

_LAB_REPORT_CATEGORIES = {"LAB", "laboratory", "CH", "HM", "MB", "SP", "BLB"}
_PENDING_RESULT_STATUSES = {"registered", "preliminary", "partial"}
_USABLE_RESULT_STATUSES = {"final", "amended", "corrected", "appended", "preliminary"}
_VOID_STATUSES = {"entered-in-error", "cancelled", "revoked"}
FOLLOW_UP_WINDOW = timedelta(days=183)


def build_context(record: PatientRecord, encounter: Resource) -> StayContext:
    """Gather the stay's resources from the record.

    Raises ``InputError`` when the stay cannot be summarised safely: its Patient is missing, or a
    medication it was given refers to a Medication that is not in the input.
    """
    return _ContextBuilder(record, encounter).build()


class _ContextBuilder(MedicationParts):
    """StayMembership (what belongs to the stay) < MedicationParts < each other part, and build."""

    def build(self) -> StayContext:
        patient = self._patient()
        reasons, diagnoses, problems = self._conditions()
        before, during, discharge = self._medication_requests()
        observations = self._observations()
        reports = self._reports()
        notes, excluded = self._notes()
        pending = self._pending(observations, reports)
        follow_ups = self._follow_ups()
        for person in self.encounter.get("participant") or []:
            self._remember((person or {}).get("individual"))
        self._remember(self.encounter.get("serviceProvider"))
        return StayContext(
            patient=patient,
            encounter=self.encounter,
            admitted=self.admitted,
            discharged=self.discharged,
            reasons=reasons,
            diagnoses=diagnoses,
            problems=problems,
            procedures=self._procedures(),
            meds_before=before,
            meds_during=during,
            administrations=self._administrations(),
            meds_discharge=discharge,
            # Results not final at discharge are stated once, as pending.
            observations=tuple(
                o for o in observations if o.get("status") not in _PENDING_RESULT_STATUSES
            ),
            reports=reports,
            allergies=self._allergies(),
            notes=notes,
            pending=pending,
            follow_ups=follow_ups,
            goals=self._goals(),
            care_plans=self._care_plans(),
            referenced=dict(self.referenced),
            excluded_documents=excluded,
            warnings=tuple(self.warnings),
        )

    # -- each part of the stay -------------------------------------------------------------

    def _patient(self) -> Resource:
        subject = self.encounter.get("subject")
        key = self.record.key(subject)
        patient = self.record.get(key) if key and key.startswith("Patient/") else None
        if patient is None:
            named = (subject or {}).get("reference") if isinstance(subject, Mapping) else None
            raise InputError(
                f"{self.key} refers to {named or 'no patient'}, which is not in the input",
                where=self.where,
            )
        return patient

    def _conditions(self) -> tuple[tuple[Resource, ...], ...]:
        reason_keys = [self.record.key(r) for r in self.encounter.get("reasonReference") or []]
        diagnosis_keys = [
            self.record.key((d or {}).get("condition"))
            for d in self.encounter.get("diagnosis") or []
        ]
        named = {k for k in (*reason_keys, *diagnosis_keys) if k}
        reasons: list[Resource] = []
        for key in sorted(named):
            found = self.record.get(key)
            if found is None:
                self._warn(self.encounter, f"refers to {key}, which is not in the input")
            elif key in reason_keys and found.get("resourceType") == "Condition":
                reasons.append(found)
        diagnoses: list[Resource] = []
        problems: list[Resource] = []
        for condition in self.record.of_type("Condition"):
            if _void_condition(condition):
                continue
            if resource_key(condition) in named or self._linked(condition, "encounter"):
                diagnoses.append(condition)
            elif self._active_during_stay(condition):
                problems.append(condition)
        return tuple(reasons), tuple(diagnoses), tuple(problems)

    def _active_during_stay(self, condition: Resource) -> bool:
        status = concept_codes(condition.get("clinicalStatus"))
        if status and not status & {"active", "recurrence", "relapse"}:
            # Resolved now; it counts only if it abated after the stay began.
            abated, _ = period_bounds(condition, "abatementDateTime", "abatementPeriod")
            moment = parse_time(abated)
            if moment is None or self.start is None or moment < self.start:
                return False
        onset, _ = period_bounds(condition, "onsetDateTime", "onsetPeriod")
        onset = onset or condition.get("recordedDate")
        moment = parse_time(onset)
        return moment is None or self.end is None or moment <= self.end

    def _procedures(self) -> tuple[Resource, ...]:
        found = []
        for procedure in self.record.of_type("Procedure"):
            if procedure.get("status") in {"entered-in-error", "not-done"}:
                continue
            when, _ = period_bounds(procedure, "performedDateTime", "performedPeriod")
            if self._in_stay(procedure, when):
                found.append(procedure)
        return tuple(sorted(found, key=time_key("performedDateTime", "performedPeriod")))

    def _observations(self) -> tuple[Resource, ...]:
        lab_results = {
            self.record.key(ref)
            for report in self.record.of_type("DiagnosticReport")
            if concept_codes(report.get("category") or []) & _LAB_REPORT_CATEGORIES
            for ref in report.get("result") or []
        }
        found = []
        for obs in self.record.of_type("Observation"):
            status = obs.get("status")
            if status not in _USABLE_RESULT_STATUSES | _PENDING_RESULT_STATUSES:
                continue
            categories = concept_codes(obs.get("category") or [])
            if not categories & {"laboratory", "vital-signs"} and (
                resource_key(obs) not in lab_results
            ):
                continue
            when, _ = period_bounds(obs, "effectiveDateTime", "effectivePeriod", "effectiveInstant")
            if self._in_stay(obs, when or obs.get("issued")):
                found.append(obs)
        return tuple(sorted(found, key=time_key("effectiveDateTime", "effectivePeriod")))

    def _reports(self) -> tuple[Resource, ...]:
        found = []
        for report in self.record.of_type("DiagnosticReport"):
            if report.get("status") in _VOID_STATUSES:
                continue
            when, _ = period_bounds(report, "effectiveDateTime", "effectivePeriod")
            if not self._in_stay(report, when or report.get("issued")):
                continue
            for ref in report.get("result") or []:
                if self.record.resolve(ref) is None and self.record.key(ref):
                    self._warn(report, f"refers to {self.record.key(ref)}, not in the input")
            found.append(report)
        return tuple(sorted(found, key=time_key("effectiveDateTime", "effectivePeriod")))

    def _allergies(self) -> tuple[Resource, ...]:
        found = []
        for allergy in self.record.of_type("AllergyIntolerance"):
            verification = concept_codes(allergy.get("verificationStatus"))
            clinical = concept_codes(allergy.get("clinicalStatus"))
            if verification & {"entered-in-error", "refuted"} or clinical & {
                "inactive",
                "resolved",
            }:
                continue
            recorded = parse_time(allergy.get("recordedDate") or allergy.get("onsetDateTime"))
            if recorded is not None and self.end is not None and recorded > self.end:
                continue
            found.append(allergy)
        return tuple(sorted(found, key=lambda a: concept_name(a.get("code")).lower()))

    def _notes(self) -> tuple[tuple[Note, ...], tuple[str, ...]]:
        notes: list[Note] = []
        excluded: list[str] = []
        for document in self.record.of_type("DocumentReference"):
            if document.get("status") == "entered-in-error":
                continue
            context = document.get("context") or {}
            linked = any(self.record.key(e) == self.key for e in context.get("encounter") or [])
            others = bool(context.get("encounter")) and not linked
            when = document.get("date") or (context.get("period") or {}).get("start")
            if others or not (linked or self._within(when)):
                continue
            if is_discharge_summary(document.get("type"), document):
                excluded.append(resource_key(document))
                continue
            moment = parse_time(when)
            if moment is not None and self.end is not None and moment > self.end:
                continue  # written after discharge
            text = document_text(document)
            if text:
                title = concept_name(document.get("type"), "Clinical note")
                notes.append(Note(resource_key(document), title, when, text))
        for composition in self.record.of_type("Composition"):
            names_stay = self._linked(composition, "encounter")
            if not (names_stay or (names_stay is None and self._within(composition.get("date")))):
                continue
            if is_discharge_summary(composition.get("type"), composition):
                excluded.append(resource_key(composition))
                continue
            moment = parse_time(composition.get("date"))
            if moment is not None and self.end is not None and moment > self.end:
                continue
            text = composition_text(composition)
            if text:
                title = str(composition.get("title") or concept_name(composition.get("type")))
                notes.append(Note(resource_key(composition), title, composition.get("date"), text))
        notes.sort(key=lambda n: (n.date or "", n.source))
        return tuple(notes), tuple(sorted(excluded))

    def _pending(
        self, observations: Sequence[Resource], reports: Sequence[Resource]
    ) -> tuple[Resource, ...]:
        pending = [
            r for r in (*observations, *reports) if r.get("status") in _PENDING_RESULT_STATUSES
        ]
        answered = {
            self.record.key(ref)
            for result in (
                *self.record.of_type("DiagnosticReport"),
                *self.record.of_type("Observation"),
            )
            if result.get("status") in {"final", "amended", "corrected"}
            for ref in result.get("basedOn") or []
        }
        for request in self._stay_service_requests():
            if self._is_follow_up(request) or resource_key(request) in answered:
                continue
            pending.append(request)
        return tuple(pending)

    def _stay_service_requests(self) -> list[Resource]:
        found = []
        for request in self.record.of_type("ServiceRequest"):
            if request.get("status") not in {"active", "on-hold"} or request.get("doNotPerform"):
                continue
            if self._in_stay(request, request.get("authoredOn")):
                found.append(request)
        return found

    def _is_follow_up(self, request: Resource) -> bool:
        when, _ = period_bounds(request, "occurrenceDateTime", "occurrencePeriod")
        moment = parse_time(when)
        if moment is not None and self.end is not None and moment > self.end:
            return True
        categories = request.get("category") or []
        return any(
            has_code(c, None, "3457005", "306206005", "follow-up", "referral")
            or "referral" in concept_name(c).lower()
            or "follow" in concept_name(c).lower()
            for c in categories
        )

    def _follow_ups(self) -> tuple[Resource, ...]:
        found: list[Resource] = [r for r in self._stay_service_requests() if self._is_follow_up(r)]
        for appointment in self.record.of_type("Appointment"):
            if appointment.get("status") not in {"booked", "pending", "proposed", "waitlist"}:
                continue
            moment = parse_time(appointment.get("start"))
            if moment is None or self.end is None:
                continue
            if self.end < moment <= self.end + FOLLOW_UP_WINDOW:
                found.append(appointment)
                for participant in appointment.get("participant") or []:
                    self._remember((participant or {}).get("actor"))
        return tuple(sorted(found, key=lambda r: (_follow_up_time(r), resource_key(r))))

    def _goals(self) -> tuple[Resource, ...]:
        found = []
        for goal in self.record.of_type("Goal"):
            if goal.get("lifecycleStatus") not in {
                "proposed",
                "planned",
                "accepted",
                "active",
                "on-hold",
            }:
                continue
            started = parse_time(goal.get("startDate") or goal.get("statusDate"))
            if started is not None and self.end is not None and started > self.end:
                continue
            found.append(goal)
        return tuple(sorted(found, key=lambda g: concept_name(g.get("description")).lower()))

    def _care_plans(self) -> tuple[Resource, ...]:
        found = []
        for plan in self.record.of_type("CarePlan"):
            if plan.get("status") in {"entered-in-error", "revoked"} or ai_asserted(plan):
                continue
            when, _ = period_bounds(plan, "period")
            if self._in_stay(plan, when or plan.get("created")):
                found.append(plan)
        return tuple(found)


def _void_condition(condition: Resource) -> bool:
    return bool(
        concept_codes(condition.get("verificationStatus")) & {"entered-in-error", "refuted"}
    )


def _follow_up_time(resource: Resource) -> datetime:
    when = resource.get("start")
    if not when:
        when, _ = period_bounds(resource, "occurrenceDateTime", "occurrencePeriod")
    return parse_time(when) or parse_time("9999-12-31")  # type: ignore[return-value]


# What the live reader (fhirgen.fhir.stay_reader) reads for one stay: these types, this window
# after discharge, and the references build_context resolves.
STAY_SCOPE = StayScope(STAY_RESOURCE_TYPES, FOLLOW_UP_WINDOW, build_context)
