"""Synthetic inpatient stays of a chosen size, for benchmarks (seeded: the same every run).

A stay of ``size`` resources has what a busy week in hospital leaves in an EHR: many lab and
vital-sign results, medication orders and administrations, procedures, notes and problems.
"""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta, timezone
from typing import Any

TZ = timezone(timedelta(hours=-5))
LABS = [
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12, 16),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5, 11),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99),
    ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107),
    ("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3),
    ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "mg/dL", 1.7, 2.2),
]
VITALS = [
    ("8867-4", "Heart rate", "/min", 60, 100),
    ("9279-1", "Respiratory rate", "/min", 12, 20),
    ("8310-5", "Body temperature", "Cel", 36.1, 37.8),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 94, 100),
    ("29463-7", "Body weight", "kg", 50, 110),
]
DRUGS = [
    ("314076", "Lisinopril 10 MG Oral Tablet"),
    ("866427", "Metoprolol succinate 25 MG Extended Release Oral Tablet"),
    ("310429", "Furosemide 20 MG Oral Tablet"),
    ("617311", "Atorvastatin 40 MG Oral Tablet"),
    ("243670", "Aspirin 81 MG Oral Tablet"),
    ("197361", "Amlodipine 5 MG Oral Tablet"),
    ("860975", "Metformin hydrochloride 1000 MG Oral Tablet"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("1665021", "Ceftriaxone 1000 MG Injection"),
    ("1649987", "Enoxaparin sodium 40 MG/0.4ML Prefilled Syringe"),
]
PROCEDURES = [
    ("399208008", "Plain chest X-ray"),
    ("40701008", "Echocardiography"),
    ("29303009", "Electrocardiographic procedure"),
    ("392230005", "Insertion of peripheral intravenous catheter"),
    ("18286008", "Catheterization of urinary bladder"),
]


def _ts(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def stay_record(index: int, size: int = 500) -> list[dict[str, Any]]:
    """One patient's resources with one finished inpatient stay of about ``size`` resources."""
    rng = random.Random(index)
    pid, eid = f"bp{index}", f"be{index}"
    patient = {"reference": f"Patient/{pid}"}
    encounter = {"reference": f"Encounter/{eid}"}
    start = datetime(2026, 1, 5, 14, 0, tzinfo=TZ) + timedelta(days=index % 200)
    days = rng.randint(3, 8)
    end = start + timedelta(days=days, hours=3)
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1950-01-01"},
        {
            "resourceType": "Encounter",
            "id": eid,
            "meta": {"versionId": "2"},
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "type": [_concept("http://snomed.info/sct", "32485007", "Hospital admission")],
            "subject": patient,
            "period": {"start": _ts(start), "end": _ts(end)},
            "reasonCode": [
                _concept("http://snomed.info/sct", "42343007", "Congestive heart failure")
            ],
        },
    ]

    def add(resource: dict[str, Any]) -> None:
        resource["id"] = f"{resource['resourceType'][:3].lower()}{index}-{len(out)}"
        out.append(resource)

    for n in range(6):
        add(
            {
                "resourceType": "Condition",
                "clinicalStatus": _concept(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
                ),
                "code": _concept(
                    "http://snomed.info/sct", str(100000 + n), f"Condition number {n}"
                ),
                "subject": patient,
                **({"encounter": encounter} if n < 2 else {"onsetDateTime": "2020-01-01"}),
            }
        )
    for code, name in PROCEDURES:
        add(
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": _concept("http://snomed.info/sct", code, name),
                "subject": patient,
                "encounter": encounter,
                "performedDateTime": _ts(start + timedelta(hours=rng.randint(1, 24 * days))),
            }
        )
    for n, (code, name) in enumerate(DRUGS):
        base = {
            "medicationCodeableConcept": _concept(
                "http://www.nlm.nih.gov/research/umls/rxnorm", code, name
            ),
            "subject": patient,
        }
        if n < 6:
            add(
                {
                    "resourceType": "MedicationStatement",
                    "status": "active",
                    **base,
                    "effectivePeriod": {"start": "2024-06-01"},
                    "dosage": [{"text": "1 tablet daily"}],
                }
            )
        category = "inpatient" if n >= 8 else "discharge"
        if n % 3 != 2:
            add(
                {
                    "resourceType": "MedicationRequest",
                    "status": "active" if category == "discharge" else "completed",
                    "intent": "order",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "medicationrequest-category",
                                    "code": category,
                                }
                            ]
                        }
                    ],
                    **base,
                    "encounter": encounter,
                    "authoredOn": _ts(end - timedelta(hours=2)),
                    "dosageInstruction": [
                        {"text": f"{1 + n % 2} tablet daily", "timing": {"code": {"text": "daily"}}}
                    ],
                }
            )
    notes = 4
    results = max(size - len(out) - notes - 40, 10)
    panels = LABS + VITALS
    for n in range(results):
        code, name, unit, low, high = panels[n % len(panels)]
        when = start + timedelta(hours=(n // len(panels)) * 6 + 1)
        value = round(rng.uniform(low * 0.8, high * 1.2), 2)
        vital = (code, name, unit, low, high) in VITALS
        add(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "observation-category",
                                "code": "vital-signs" if vital else "laboratory",
                            }
                        ]
                    }
                ],
                "code": _concept("http://loinc.org", code, name),
                "subject": patient,
                "encounter": encounter,
                "effectiveDateTime": _ts(min(when, end)),
                "valueQuantity": {"value": value, "unit": unit},
                "referenceRange": [{"low": {"value": low}, "high": {"value": high}}],
            }
        )
    for n in range(40):
        add(
            {
                "resourceType": "MedicationAdministration",
                "status": "completed",
                "medicationCodeableConcept": _concept(
                    "http://www.nlm.nih.gov/research/umls/rxnorm", DRUGS[8][0], DRUGS[8][1]
                ),
                "subject": patient,
                "context": encounter,
                "effectiveDateTime": _ts(start + timedelta(hours=3 * n % (24 * days))),
                "dosage": {"dose": {"value": 1, "unit": "g"}},
            }
        )
    for n in range(notes):
        text = f"Progress note day {n + 1}. Patient improving. Plan: continue diuresis.\n" * 20
        add(
            {
                "resourceType": "DocumentReference",
                "status": "current",
                "type": _concept("http://loinc.org", "11506-3", "Progress note"),
                "subject": patient,
                "date": _ts(start + timedelta(days=n % days, hours=8)),
                "content": [
                    {
                        "attachment": {
                            "contentType": "text/plain",
                            "data": base64.b64encode(text.encode()).decode(),
                        }
                    }
                ],
                "context": {"encounter": [encounter]},
            }
        )
    return out
