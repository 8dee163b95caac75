"""The stay: which resources of a patient's record belong to one inpatient encounter.

``find_stays`` picks the finished inpatient Encounters of a record; ``build_context`` gathers,
for one of them, everything a discharge summary rests on. A resource belongs to the stay when it
names the Encounter, or, naming no encounter at all, falls inside the stay's period. Discharge
summaries that already exist (physician, nursing, or drafts we wrote) are never used as input.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from fhirgen.errors import InputError
from fhirgen.fhir.problems import Problem
from fhirgen.fhir.record import PatientRecord, Resource, StayScope, resource_key
from fhirgen.fhir.values import (
    LOINC,
    codings,
    concept_codes,
    concept_name,
    has_code,
    parse_time,
    period_bounds,
)

# LOINC document types that are discharge summaries of some kind: never input to a new one.
DISCHARGE_SUMMARY_TYPES = frozenset(
    {
        "18842-5",  # Discharge summary
        "34745-0",  # Nurse discharge summary
        "34105-7",  # Hospital discharge summary
        "11490-0",  # Physician discharge summary
        "28655-9",  # Attending physician discharge summary
        "34106-5",  # Physician hospital discharge summary
        "59258-4",  # Emergency department discharge summary
        "74213-0",  # Deprecated discharge summary
        "78513-9",  # Inpatient medical record discharge summary
    }
)
AI_ASSERTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "AIAST")

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


@dataclass(frozen=True)
class Note:
    """Text of a clinical note written before discharge (HTML stripped)."""

    source: str
    title: str
    date: str | None
    text: str


@dataclass(frozen=True)
class StayContext:
    """Everything the record says about one inpatient stay; built once, never mutated."""

    patient: Resource
    encounter: Resource
    admitted: str | None
    discharged: str | None
    reasons: tuple[Resource, ...]  # Conditions named as the reason for admission
    diagnoses: tuple[Resource, ...]  # encounter diagnoses
    problems: tuple[Resource, ...]  # other conditions active during the stay
    procedures: tuple[Resource, ...]
    meds_before: tuple[Resource, ...]  # home medications at admission
    meds_during: tuple[Resource, ...]  # inpatient orders
    administrations: tuple[Resource, ...]
    meds_discharge: tuple[Resource, ...]  # prescriptions for after discharge
    observations: tuple[Resource, ...]  # labs and vital signs of the stay
    reports: tuple[Resource, ...]
    allergies: tuple[Resource, ...]
    notes: tuple[Note, ...]
    pending: tuple[Resource, ...]  # results not final at discharge, orders without result
    follow_ups: tuple[Resource, ...]  # appointments and referrals after discharge
    goals: tuple[Resource, ...]
    care_plans: tuple[Resource, ...]  # plans recorded during the stay
    referenced: Mapping[str, Resource]  # resolved Medication, Practitioner, … by Type/id
    excluded_documents: tuple[str, ...]  # existing discharge summaries we did not read
    warnings: tuple[Problem, ...]

    @property
    def encounter_id(self) -> str:
        return str(self.encounter["id"])

    @property
    def patient_id(self) -> str:
        return str(self.patient["id"])

    def resolved(self, reference: Any) -> Resource | None:
        """A referenced resource we resolved (practitioner, organization, medication…)."""
        if isinstance(reference, Mapping) and isinstance(reference.get("reference"), str):
            return self.referenced.get(reference["reference"])
        return None

    def name_of(self, reference: Any) -> str:
        """Display of a referenced resource we resolved (practitioner, organization…)."""
        if isinstance(reference, Mapping):
            key = reference.get("reference")
            found = self.referenced.get(key) if isinstance(key, str) else None
            if found is not None:
                return _resource_display(found)
            return str(reference.get("display") or "")
        return ""


def encounter_class_codes(encounter: Resource) -> set[str]:
    """Class codes of an Encounter (R4 ``class`` is a Coding; R5 a list of concepts)."""
    value = encounter.get("class")
    if isinstance(value, Mapping):
        return {str(value["code"])} if value.get("code") else set()
    if isinstance(value, list):
        return concept_codes(value)
    return set()


def is_inpatient_stay(encounter: Resource, classes: Iterable[str]) -> bool:
    """A finished Encounter whose class is one of ``classes``."""
    return encounter.get("status") == "finished" and bool(
        encounter_class_codes(encounter) & set(classes)
    )


def encounter_version(encounter: Resource) -> str:
    """The Encounter's version for deduplication: ``meta.versionId``, else its lastUpdated."""
    meta = encounter.get("meta") or {}
    return str(meta.get("versionId") or meta.get("lastUpdated") or "1")


def find_stays(record: PatientRecord, classes: Iterable[str]) -> list[Resource]:
    """The finished inpatient Encounters of a record, oldest first."""
    wanted = set(classes)
    stays = [e for e in record.of_type("Encounter") if is_inpatient_stay(e, wanted)]
    return sorted(stays, key=lambda e: (_start(e) or "", str(e.get("id"))))


def build_context(record: PatientRecord, encounter: Resource) -> StayContext:
    """Gather the stay's resources from the record.

    Raises ``InputError`` when the stay cannot be summarised safely: its Patient is missing, or a
    medication it was given refers to a Medication that is not in the input.
    """
    return _ContextBuilder(record, encounter).build()


class _ContextBuilder:
    def __init__(self, record: PatientRecord, encounter: Resource) -> None:
        self.record = record
        self.encounter = encounter
        self.key = resource_key(encounter)
        self.where = record.origin(self.key) or self.key
        self.admitted, self.discharged = period_bounds(encounter, "period")
        self.start = parse_time(self.admitted)
        self.end = parse_time(self.discharged) or self.start
        self.warnings: list[Problem] = []
        self.referenced: dict[str, Resource] = {}

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

    # -- membership ------------------------------------------------------------------------

    def _linked(self, resource: Resource, *fields: str) -> bool | None:
        """True if a field names this Encounter, False if it names another, None if none."""
        for name in fields:
            value = resource.get(name)
            if value:
                return self.record.key(value) == self.key
        return None

    def _within(self, when: str | None, slack: timedelta = timedelta(0)) -> bool:
        moment = parse_time(when)
        if moment is None or self.start is None:
            return False
        return self.start - slack <= moment <= (self.end or self.start) + slack

    def _in_stay(self, resource: Resource, when: str | None, *fields: str) -> bool:
        linked = self._linked(resource, *(fields or ("encounter",)))
        return linked if linked is not None else self._within(when)

    def _warn(self, resource: Resource, message: str) -> None:
        key = resource_key(resource)
        self.warnings.append(Problem(self.record.origin(key) or key, message, "warning"))

    def _remember(self, reference: Any) -> Resource | None:
        key = self.record.key(reference)
        found = self.record.get(key) if key else None
        if found is not None and key:
            # Keyed by Type/id and by the reference as written, so facts can look up either.
            self.referenced[key] = found
            if isinstance(reference, Mapping) and isinstance(reference.get("reference"), str):
                self.referenced[reference["reference"]] = found
        return found

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
        return tuple(sorted(found, key=_time_key("performedDateTime", "performedPeriod")))

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
        return tuple(sorted(found, key=_time_key("effectiveDateTime", "effectivePeriod")))

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
        return tuple(sorted(found, key=_time_key("effectiveDateTime", "effectivePeriod")))

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
        return tuple(sorted(found, key=_time_key("effectiveDateTime", "effectivePeriod")))

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
            if _is_discharge_summary(document.get("type"), document):
                excluded.append(resource_key(document))
                continue
            moment = parse_time(when)
            if moment is not None and self.end is not None and moment > self.end:
                continue  # written after discharge
            text = _document_text(document)
            if text:
                title = concept_name(document.get("type"), "Clinical note")
                notes.append(Note(resource_key(document), title, when, text))
        for composition in self.record.of_type("Composition"):
            names_stay = self._linked(composition, "encounter")
            if not (names_stay or (names_stay is None and self._within(composition.get("date")))):
                continue
            if _is_discharge_summary(composition.get("type"), composition):
                excluded.append(resource_key(composition))
                continue
            moment = parse_time(composition.get("date"))
            if moment is not None and self.end is not None and moment > self.end:
                continue
            text = _composition_text(composition)
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
            if plan.get("status") in {"entered-in-error", "revoked"} or _ai_asserted(plan):
                continue
            when, _ = period_bounds(plan, "period")
            if self._in_stay(plan, when or plan.get("created")):
                found.append(plan)
        return tuple(found)


def _void_condition(condition: Resource) -> bool:
    return bool(
        concept_codes(condition.get("verificationStatus")) & {"entered-in-error", "refuted"}
    )


def _ai_asserted(resource: Resource) -> bool:
    system, code = AI_ASSERTED
    return any(
        tag.get("system") == system and tag.get("code") == code
        for tag in (resource.get("meta") or {}).get("security") or []
        if isinstance(tag, Mapping)
    )


def _is_discharge_summary(concept: Any, resource: Resource) -> bool:
    """Existing discharge summaries, and anything fhirgen wrote, are not input."""
    if _ai_asserted(resource):
        return True
    concepts = concept if isinstance(concept, list) else [concept]
    for item in concepts:
        if not isinstance(item, Mapping):
            continue
        if any(
            c.get("system") == LOINC and c.get("code") in DISCHARGE_SUMMARY_TYPES
            for c in codings(item)
        ):
            return True
        if "discharge summary" in concept_name(item).lower():
            return True
    return False


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"} and self._skip:
            self._skip -= 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment: tags dropped, entities decoded, blocks on new lines."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return tidy_text("".join(parser.parts))


def tidy_text(text: str) -> str:
    """Collapse runs of spaces and blank lines."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _document_text(document: Resource) -> str:
    texts: list[str] = []
    for content in document.get("content") or []:
        attachment = (content or {}).get("attachment") or {}
        data = attachment.get("data")
        if not isinstance(data, str):
            continue
        try:
            raw = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            continue
        content_type = str(attachment.get("contentType") or "text/plain").lower()
        charset = re.search(r"charset=([\w-]+)", content_type)
        try:
            text = raw.decode(charset.group(1) if charset else "utf-8", errors="replace")
        except LookupError:
            text = raw.decode("utf-8", errors="replace")
        if "html" in content_type or "xml" in content_type:
            texts.append(html_to_text(text))
        elif content_type.startswith("text/"):
            texts.append(tidy_text(text))
        if texts:
            break  # alternative renderings of the same note: the first readable one is enough
    return texts[0] if texts else ""


def _composition_text(composition: Resource) -> str:
    parts: list[str] = []

    def walk(sections: Any) -> None:
        for section in sections or []:
            if not isinstance(section, Mapping):
                continue
            if section.get("title"):
                parts.append(str(section["title"]))
            div = (section.get("text") or {}).get("div")
            if isinstance(div, str):
                parts.append(html_to_text(div))
            walk(section.get("section"))

    walk(composition.get("section"))
    return tidy_text("\n".join(parts))


def _resource_display(resource: Resource) -> str:
    names = resource.get("name")
    if isinstance(names, str):
        return names
    if isinstance(names, list) and names and isinstance(names[0], Mapping):
        name = names[0]
        if name.get("text"):
            return str(name["text"])
        given = " ".join(str(g) for g in name.get("given") or [])
        prefix = " ".join(str(p) for p in name.get("prefix") or [])
        return " ".join(p for p in (prefix, given, str(name.get("family") or "")) if p).strip()
    if resource.get("code"):
        return concept_name(resource["code"])
    return html.unescape(str(resource.get("id", "")))


def _start(resource: Resource) -> str | None:
    return period_bounds(resource, "period")[0]


def _time_key(*fields: str) -> Any:
    def key(resource: Resource) -> tuple[datetime, str]:
        when, _ = period_bounds(resource, *fields)
        moment = parse_time(when) or parse_time("0001-01-01")
        return (moment, resource_key(resource))  # type: ignore[return-value]

    return key


def _follow_up_time(resource: Resource) -> datetime:
    when = resource.get("start")
    if not when:
        when, _ = period_bounds(resource, "occurrenceDateTime", "occurrencePeriod")
    return parse_time(when) or parse_time("9999-12-31")  # type: ignore[return-value]


# What the live reader (fhirgen.fhir.stay_reader) reads for one stay: these types, this window
# after discharge, and the references build_context resolves.
STAY_SCOPE = StayScope(STAY_RESOURCE_TYPES, FOLLOW_UP_WINDOW, build_context)
