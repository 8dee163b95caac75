"""Observations and reports: laboratory results, vital signs, lab and imaging reports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.samples.codes import INTERPRETATIONS, LAB, LAB_REPORT, VITAL
from tools.samples.datatypes import Resource, attachment, coding, concept, loinc, quantity, ref
from tools.samples.sample import Sample
from tools.samples.systems import INTERPRETATION
from tools.samples.times import later


def _interpretation(
    value: float | None, low: float | None, high: float | None, flag: str | None
) -> str | None:
    if flag is not None:
        return flag or None
    if value is None:
        return None
    if high is not None and value > high:
        return "H"
    if low is not None and value < low:
        return "L"
    return None


def lab(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    code: tuple[str, str, str],
    when: str,
    stay: Resource | None,
    value: float | None = None,
    unit: tuple[str, str] | None = None,
    low: float | None = None,
    high: float | None = None,
    flag: str | None = None,
    value_string: str | None = None,
    value_concept: dict[str, Any] | None = None,
    status: str = "final",
    performer: Resource | None = None,
    resulted_after: int = 55,
    range_text: str | None = None,
    based_on: Resource | None = None,
) -> Resource:
    """A laboratory Observation; ``code`` = (LOINC code, LOINC display, short name).

    ``unit`` = (unit as shown, UCUM code). The interpretation is derived from the reference
    range unless ``flag`` gives one ("HH", "LL"…; "" for none).
    """
    body: dict[str, Any] = {"status": status}
    if based_on is not None:
        body = {"basedOn": [ref(based_on, display=False)], **body}
    body.update(
        {
            "category": [LAB],
            "code": concept(code[2], loinc(code[0], code[1])),
            "subject": ref(patient_),
        }
    )
    if stay is not None:
        body["encounter"] = ref(stay, display=False)
    body["effectiveDateTime"] = when
    if status != "registered":
        body["issued"] = later(when, minutes=resulted_after)
    if performer is not None:
        body["performer"] = [ref(performer)]
    if value is not None:
        assert unit is not None
        body["valueQuantity"] = quantity(value, unit[0], unit[1])
    elif value_string is not None:
        body["valueString"] = value_string
    elif value_concept is not None:
        body["valueCodeableConcept"] = value_concept
    flag_code = _interpretation(value, low, high, flag)
    if flag_code:
        body["interpretation"] = [
            concept(
                INTERPRETATIONS[flag_code],
                coding(INTERPRETATION, flag_code, INTERPRETATIONS[flag_code]),
            )
        ]
    if unit is not None and (low is not None or high is not None):
        reference: dict[str, Any] = {}
        if low is not None:
            reference["low"] = quantity(low, unit[0], unit[1])
        if high is not None:
            reference["high"] = quantity(high, unit[0], unit[1])
        if range_text:
            reference["text"] = range_text
        body["referenceRange"] = [reference]
    elif range_text:
        body["referenceRange"] = [{"text": range_text}]
    return s.add("Observation", key, body, kind="lab")


def lab_report(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    stay: Resource,
    code: tuple[str, str, str],
    when: str,
    results: Iterable[Resource],
    performer: Resource,
    status: str = "final",
) -> Resource:
    found = list(results)
    return s.add(
        "DiagnosticReport",
        key,
        {
            "status": status,
            "category": [LAB_REPORT],
            "code": concept(code[2], loinc(code[0], code[1])),
            "subject": ref(patient_),
            "encounter": ref(stay, display=False),
            "effectiveDateTime": when,
            "issued": max(str(r.get("issued", when)) for r in found),
            "performer": [ref(performer)],
            "result": [ref(r, display=False) for r in found],
        },
    )


def imaging_report(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    stay: Resource,
    category: dict[str, Any],
    code: dict[str, Any],
    when: str,
    issued: str,
    reader: Resource,
    performer: Resource,
    conclusion: str,
    conclusion_codes: Iterable[dict[str, Any]],
    report_text: str,
    results: Iterable[Resource] = (),
    based_on: Resource | None = None,
) -> Resource:
    """An imaging (or echo) DiagnosticReport with a conclusion and the report as text."""
    body: dict[str, Any] = {}
    if based_on is not None:
        body["basedOn"] = [ref(based_on, display=False)]
    body.update(
        {
            "status": "final",
            "category": [category],
            "code": code,
            "subject": ref(patient_),
            "encounter": ref(stay, display=False),
            "effectiveDateTime": when,
            "issued": issued,
            "performer": [ref(performer)],
            "resultsInterpreter": [ref(reader)],
        }
    )
    found = [ref(r, display=False) for r in results]
    if found:
        body["result"] = found
    body["conclusion"] = conclusion
    codes = list(conclusion_codes)
    if codes:
        body["conclusionCode"] = codes
    body["presentedForm"] = [
        attachment(report_text, "text/plain", str(code.get("text") or "Report"), issued)
    ]
    return s.add("DiagnosticReport", key, body)


def _vital(
    s: Sample,
    key: str,
    patient_: Resource,
    stay: Resource | None,
    when: str,
    code: dict[str, Any],
    extra: dict[str, Any],
    performer: Resource | None,
) -> Resource:
    body: dict[str, Any] = {
        "status": "final",
        "category": [VITAL],
        "code": code,
        "subject": ref(patient_),
    }
    if stay is not None:
        body["encounter"] = ref(stay, display=False)
    body["effectiveDateTime"] = when
    body["issued"] = later(when, minutes=4)
    if performer is not None:
        body["performer"] = [ref(performer)]
    body.update(extra)
    return s.add("Observation", key, body, kind="vital")


def vitals(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    stay: Resource | None,
    when: str,
    nurse: Resource | None = None,
    heart_rate: int | None = None,
    bp: tuple[int, int] | None = None,
    resp_rate: int | None = None,
    temp_c: float | None = None,
    spo2: int | None = None,
    o2_flow: float | None = None,
    weight_kg: float | None = None,
    pain: int | None = None,
    flags: dict[str, str] | None = None,
) -> list[Resource]:
    """One set of vital signs charted together (each sign its own Observation)."""
    flags = flags or {}
    made: list[Resource] = []

    def interpretation(name: str) -> dict[str, Any]:
        if name not in flags:
            return {}
        flag = flags[name]
        return {
            "interpretation": [
                concept(INTERPRETATIONS[flag], coding(INTERPRETATION, flag, INTERPRETATIONS[flag]))
            ]
        }

    if heart_rate is not None:
        made.append(
            _vital(
                s,
                f"{key}/hr",
                patient_,
                stay,
                when,
                concept("Heart rate", loinc("8867-4", "Heart rate")),
                {"valueQuantity": quantity(heart_rate, "beats/minute", "/min")}
                | interpretation("hr"),
                nurse,
            )
        )
    if bp is not None:
        made.append(
            _vital(
                s,
                f"{key}/bp",
                patient_,
                stay,
                when,
                concept(
                    "Blood pressure",
                    loinc("85354-9", "Blood pressure panel with all children optional"),
                ),
                interpretation("bp")
                | {
                    "component": [
                        {
                            "code": concept(
                                "Systolic blood pressure",
                                loinc("8480-6", "Systolic blood pressure"),
                            ),
                            "valueQuantity": quantity(bp[0], "mmHg", "mm[Hg]"),
                        },
                        {
                            "code": concept(
                                "Diastolic blood pressure",
                                loinc("8462-4", "Diastolic blood pressure"),
                            ),
                            "valueQuantity": quantity(bp[1], "mmHg", "mm[Hg]"),
                        },
                    ]
                },
                nurse,
            )
        )
    if resp_rate is not None:
        made.append(
            _vital(
                s,
                f"{key}/rr",
                patient_,
                stay,
                when,
                concept("Respiratory rate", loinc("9279-1", "Respiratory rate")),
                {"valueQuantity": quantity(resp_rate, "breaths/minute", "/min")}
                | interpretation("rr"),
                nurse,
            )
        )
    if temp_c is not None:
        made.append(
            _vital(
                s,
                f"{key}/temp",
                patient_,
                stay,
                when,
                concept("Temperature", loinc("8310-5", "Body temperature")),
                {"valueQuantity": quantity(temp_c, "°C", "Cel")} | interpretation("temp"),
                nurse,
            )
        )
    if spo2 is not None:
        extra: dict[str, Any] = {"valueQuantity": quantity(spo2, "%")} | interpretation("spo2")
        if o2_flow is not None:
            extra["component"] = [
                {
                    "code": concept(
                        "Inhaled oxygen flow rate", loinc("3151-8", "Inhaled oxygen flow rate")
                    ),
                    "valueQuantity": quantity(o2_flow, "L/min", "L/min"),
                }
            ]
        made.append(
            _vital(
                s,
                f"{key}/spo2",
                patient_,
                stay,
                when,
                concept(
                    "SpO2",
                    loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
                    loinc("2708-6", "Oxygen saturation in Arterial blood"),
                ),
                extra,
                nurse,
            )
        )
    if weight_kg is not None:
        made.append(
            _vital(
                s,
                f"{key}/weight",
                patient_,
                stay,
                when,
                concept("Weight", loinc("29463-7", "Body weight")),
                {"valueQuantity": quantity(weight_kg, "kg")},
                nurse,
            )
        )
    if pain is not None:
        made.append(
            _vital(
                s,
                f"{key}/pain",
                patient_,
                stay,
                when,
                concept(
                    "Pain score",
                    loinc(
                        "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
                    ),
                ),
                {"valueQuantity": quantity(pain, "{score}")},
                nurse,
            )
        )
    return made
