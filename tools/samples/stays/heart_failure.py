"""``stays/heart-failure.json``: acute on chronic systolic heart failure, all four
reconciliation outcomes, an excluded existing discharge summary (Epic-style ids)."""

from __future__ import annotations

from typing import Any

from tools.samples.administrative import address, location, organization, patient, practitioner
from tools.samples.codes import (
    BICARBONATE,
    BMP,
    BUN,
    CARDIAC_ECHO_REPORT,
    CBC,
    CHLORIDE,
    CREATININE,
    DISCHARGE_SUMMARY,
    ECG_PROCEDURE,
    G_DL,
    GLUCOSE,
    H_AND_P,
    HEMOGLOBIN,
    IMAGING,
    IV,
    K_UL,
    LAB_ORDER,
    MAGNESIUM,
    MG_DL,
    MMOL_L,
    NOT_DETECTED,
    NT_PROBNP,
    OLD_SUMMARY_MARKER,
    ORAL,
    PAIN,
    PG_ML,
    PLATELETS,
    POTASSIUM,
    PROGRESS_NOTE,
    SARS_COV_2,
    SODIUM,
    WBC,
)
from tools.samples.conditions import allergy, condition, procedure
from tools.samples.datatypes import (
    Resource,
    coding,
    concept,
    cpt,
    icd10,
    loinc,
    quantity,
    ref,
    rxnorm,
    snomed,
)
from tools.samples.encounters import encounter, hospitalize
from tools.samples.follow_up import appointment, goal, service_request
from tools.samples.ids import epic_id
from tools.samples.medications import (
    administer,
    dispense,
    dosage,
    med_concept,
    med_request,
    med_statement,
    medication,
)
from tools.samples.notes import note
from tools.samples.observations import imaging_report, lab, lab_report, vitals
from tools.samples.sample import Sample
from tools.samples.systems import INTERPRETATION


def build_heart_failure() -> Sample:
    """71-year-old man, acute on chronic systolic heart failure, 4 days (Epic-style ids)."""
    s = Sample("heart-failure", epic_id, standard_utc_offset=-5)
    org = organization(
        s,
        "org",
        "Lakeshore Regional Medical Center",
        npi="1578902346",
        address=address("2200 Lakeshore Parkway", "Cleveland", "OH", "44114"),
        phone="216-555-0100",
    )
    ward = location(s, "6n", "LRMC 6 North Cardiac Telemetry", org=org, role=("HOSP", "Hospital"))
    clinic = location(
        s,
        "heart-clinic",
        "LRMC Heart & Vascular Clinic",
        org=org,
        role=(
            "CARD",
            "Ambulatory Health Care Facilities; Clinic/Center; Rehabilitation: Cardiac Facilities",
        ),
        physical=("ro", "Room"),
    )
    raman = practitioner(
        s, "raman", "Priya", "Raman", suffix="MD", npi="1396857201", gender="female"
    )
    okonkwo = practitioner(
        s, "okonkwo", "Thomas", "Okonkwo", suffix="MD", npi="1447203985", gender="male"
    )
    marchetti = practitioner(
        s, "marchetti", "Elena", "Marchetti", suffix="MD", npi="1629458830", gender="female"
    )
    hale = practitioner(s, "hale", "Gregory", "Hale", suffix="MD", npi="1750394621", gender="male")
    ellis = practitioner(
        s, "ellis", "Jordan", "Ellis", suffix="RN", npi="1285067413", gender="female"
    )
    pt = patient(
        s,
        "patient",
        mrn=("urn:oid:1.2.840.114350.1.13.861.1.7.5.737384.14", "E3104872"),
        given=["Eugene", "Robert"],
        family="Kowalczyk",
        gender="male",
        birth_date="1954-08-17",
        home=address("1187 Birchwood Avenue", "Parma", "OH", "44129", use="home"),
        phone="440-555-0143",
        race=("2106-3", "White"),
        ethnicity=("2186-5", "Not Hispanic or Latino"),
        marital=("M", "Married"),
        gp=hale,
        org=org,
        updated=s.at("2026-03-06 12:02"),
    )
    admitted, discharged = s.at("2026-03-02 14:05"), s.at("2026-03-06 11:30")

    # An earlier clinic visit: its orders are the home medications, its labs are not the stay's.
    visit = encounter(
        s,
        "clinic-visit",
        patient_=pt,
        cls="AMB",
        type_=concept("Office Visit", snomed("390906007", "Follow-up encounter (procedure)")),
        start=s.at("2026-02-09 09:30"),
        end=s.at("2026-02-09 10:05"),
        org=org,
        place=clinic,
        participants=[("ATND", marchetti)],
        reason_codes=[
            concept("Heart failure follow-up", snomed("84114007", "Heart failure (disorder)"))
        ],
    )
    stay = encounter(
        s,
        "stay",
        patient_=pt,
        cls="IMP",
        type_=concept("Inpatient Admission", snomed("32485007", "Hospital admission (procedure)")),
        start=admitted,
        end=discharged,
        org=org,
        place=ward,
        participants=[("ADM", okonkwo), ("ATND", raman), ("DIS", raman)],
        reason_codes=[concept("Shortness of breath", snomed("267036007", "Dyspnea (finding)"))],
        version="7",
        updated=s.at("2026-03-06 12:02"),
    )

    hf = condition(
        s,
        "dx-hf",
        patient_=pt,
        text="Acute on chronic systolic heart failure",
        codes=[
            icd10("I50.23", "Acute on chronic systolic (congestive) heart failure"),
            snomed("417996009", "Systolic heart failure (disorder)"),
        ],
        recorded=s.at("2026-03-02 16:40"),
        onset=admitted,
        stay=stay,
        recorder=okonkwo,
    )
    hypokalemia = condition(
        s,
        "dx-hypokalemia",
        patient_=pt,
        text="Hypokalemia",
        codes=[icd10("E87.6", "Hypokalemia"), snomed("43339004", "Hypokalemia (disorder)")],
        recorded=s.at("2026-03-02 17:05"),
        onset=admitted,
        stay=stay,
        recorder=okonkwo,
    )
    aki = condition(
        s,
        "dx-aki",
        patient_=pt,
        text="Acute kidney injury",
        codes=[
            icd10("N17.9", "Acute kidney failure, unspecified"),
            snomed("14669001", "Acute renal failure syndrome (disorder)"),
        ],
        recorded=s.at("2026-03-04 09:20"),
        onset=s.at("2026-03-03 06:00"),
        stay=stay,
        recorder=raman,
    )
    chronic_hf = condition(
        s,
        "pl-chf",
        patient_=pt,
        text="Chronic systolic heart failure",
        codes=[
            icd10("I50.22", "Chronic systolic (congestive) heart failure"),
            snomed("417996009", "Systolic heart failure (disorder)"),
        ],
        recorded="2022-11-14",
        onset="2022-11-02",
        recorder=marchetti,
    )
    htn = condition(
        s,
        "pl-htn",
        patient_=pt,
        text="Essential hypertension",
        codes=[
            icd10("I10", "Essential (primary) hypertension"),
            snomed("59621000", "Essential hypertension (disorder)"),
        ],
        recorded="2009-04-21",
        onset="2009-04-21",
        recorder=hale,
    )
    condition(
        s,
        "pl-ckd",
        patient_=pt,
        text="Chronic kidney disease stage 3a",
        codes=[
            icd10("N18.31", "Chronic kidney disease, stage 3a"),
            snomed("700378005", "Chronic kidney disease stage 3A (disorder)"),
        ],
        recorded="2023-06-05",
        onset="2023-06-05",
        recorder=hale,
    )
    knee_oa = condition(
        s,
        "pl-knee-oa",
        patient_=pt,
        text="Osteoarthritis of both knees",
        codes=[
            icd10("M17.0", "Bilateral primary osteoarthritis of knee"),
            snomed("239873007", "Osteoarthritis of knee (disorder)"),
        ],
        recorded="2019-09-30",
        onset="2019-09-30",
        recorder=hale,
    )
    condition(
        s,
        "pl-appendicitis",
        patient_=pt,
        text="Acute appendicitis",
        codes=[
            icd10("K35.80", "Unspecified acute appendicitis"),
            snomed("85189001", "Acute appendicitis (disorder)"),
        ],
        recorded="1998-07-14",
        onset="1998-07-13",
        abatement="1998-07-20",
        recorder=hale,
    )
    hospitalize(
        stay,
        reasons=[hf],
        diagnoses=[(hf, "DD"), (hypokalemia, "DD"), (aki, "DD")],
        admit_source=("emd", "From accident/emergency department"),
        disposition=("home", "Home"),
        disposition_text="Home or Self Care",
    )

    allergy(
        s,
        "allergy-penicillin",
        patient_=pt,
        code=concept(
            "Penicillins",
            snomed(
                "373270004",
                "Substance with penicillin structure and antibacterial mechanism of action (substance)",  # noqa: E501
            ),
            rxnorm("70618", "penicillin"),
        ),
        category="medication",
        criticality="low",
        reaction=(concept("Hives", snomed("126485001", "Urticaria (disorder)")), "moderate"),
        onset="1971",
        recorded=s.at("2014-05-12 10:15"),
        recorder=hale,
    )

    # Home medications: clinic orders (outpatient, linked to the clinic visit) and one
    # patient-reported over-the-counter drug that was stopped in hospital.
    def tablet(
        key: str, text: str, code: dict[str, Any], ingredient: dict[str, Any], mg: float
    ) -> Resource:
        return medication(
            s,
            key,
            text=text,
            code=code,
            form=concept("Tablet", snomed("385055001", "Tablet (basic dose form)")),
            ingredient=ingredient,
            strength=(quantity(mg, "mg"), quantity(1, "tablet", "{tbl}")),
        )

    lisinopril_10 = tablet(
        "med-lisinopril-10",
        "lisinopril 10 mg tablet",
        rxnorm("314076", "lisinopril 10 MG Oral Tablet"),
        concept("lisinopril", rxnorm("29046", "lisinopril")),
        10,
    )
    metoprolol_25 = tablet(
        "med-metoprolol-25",
        "metoprolol succinate XL 25 mg 24 hr tablet",
        rxnorm("866427", "24 HR metoprolol succinate 25 MG Extended Release Oral Tablet"),
        concept("metoprolol succinate", rxnorm("221124", "metoprolol succinate")),
        25,
    )
    metoprolol_50 = tablet(
        "med-metoprolol-50",
        "metoprolol succinate XL 50 mg 24 hr tablet",
        rxnorm("866436", "24 HR metoprolol succinate 50 MG Extended Release Oral Tablet"),
        concept("metoprolol succinate", rxnorm("221124", "metoprolol succinate")),
        50,
    )
    furosemide_20 = tablet(
        "med-furosemide-20",
        "furosemide 20 mg tablet",
        rxnorm("310429", "furosemide 20 MG Oral Tablet"),
        concept("furosemide", rxnorm("4603", "furosemide")),
        20,
    )
    furosemide_40 = tablet(
        "med-furosemide-40",
        "furosemide 40 mg tablet",
        rxnorm("313988", "furosemide 40 MG Oral Tablet"),
        concept("furosemide", rxnorm("4603", "furosemide")),
        40,
    )
    spironolactone_25 = tablet(
        "med-spironolactone-25",
        "spironolactone 25 mg tablet",
        rxnorm("313096", "spironolactone 25 MG Oral Tablet"),
        concept("spironolactone", rxnorm("9997", "spironolactone")),
        25,
    )
    furosemide_iv = medication(
        s,
        "med-furosemide-inj",
        text="furosemide 10 mg/mL injection solution",
        code=rxnorm("1719286", "10 ML furosemide 10 MG/ML Injection"),
        form=concept(
            "Injection",
            snomed("385219001", "Conventional release solution for injection (dose form)"),
        ),
        ingredient=concept("furosemide", rxnorm("4603", "furosemide")),
        strength=(quantity(10, "mg"), quantity(1, "mL")),
    )
    potassium = med_concept(
        "potassium chloride ER 20 mEq tablet", rxnorm("8591", "potassium chloride")
    )
    ibuprofen = med_concept(
        "ibuprofen 400 mg tablet", rxnorm("197805", "ibuprofen 400 MG Oral Tablet")
    )

    visit_time = s.at("2026-02-09 09:52")
    tab = ("tablet", "{tbl}")
    daily = (1, 1, "d")
    twice_daily = (2, 1, "d")
    med_request(
        s,
        "home-lisinopril",
        patient_=pt,
        drug=lisinopril_10,
        category="outpatient",
        authored=visit_time,
        requester=marchetti,
        stay=visit,
        reasons=[htn],
        instruction=dosage(
            "Take 1 tablet (10 mg total) by mouth daily.",
            dose=quantity(10, "mg"),
            every=daily,
            route=ORAL,
        ),
        supply=dispense("2026-02-09", "2027-02-09", quantity(90, *tab), 90, refills=3),
        course="continuous",
    )
    med_request(
        s,
        "home-metoprolol",
        patient_=pt,
        drug=metoprolol_25,
        category="outpatient",
        authored=visit_time,
        requester=marchetti,
        stay=visit,
        reasons=[chronic_hf],
        instruction=dosage(
            "Take 1 tablet (25 mg total) by mouth daily.",
            dose=quantity(25, "mg"),
            every=daily,
            route=ORAL,
        ),
        supply=dispense("2026-02-09", "2027-02-09", quantity(90, *tab), 90, refills=3),
        course="continuous",
    )
    med_request(
        s,
        "home-furosemide",
        patient_=pt,
        drug=furosemide_20,
        category="outpatient",
        authored=visit_time,
        requester=marchetti,
        stay=visit,
        reasons=[chronic_hf],
        instruction=dosage(
            "Take 1 tablet (20 mg total) by mouth daily.",
            dose=quantity(20, "mg"),
            every=daily,
            route=ORAL,
        ),
        supply=dispense("2026-02-09", "2027-02-09", quantity(90, *tab), 90, refills=3),
        course="continuous",
    )
    med_statement(
        s,
        "home-ibuprofen",
        patient_=pt,
        drug=ibuprofen,
        status="stopped",
        status_reason=concept("Worsens heart failure"),
        start="2025-06-01",
        end=s.at("2026-03-02 18:30"),
        asserted=s.at("2026-03-02 16:20"),
        source=pt,
        reasons=[knee_oa],
        note="Over the counter for knee pain, usually 2-3 times a week. Stopped on admission: "
        "NSAIDs worsen heart failure and kidney function.",
        instruction=dosage(
            "Take 1 tablet (400 mg total) by mouth every 8 hours as needed for knee pain.",
            dose=quantity(400, "mg"),
            every=(1, 8, "h"),
            route=ORAL,
            as_needed=PAIN,
        ),
    )

    # Inpatient orders and what the nurses gave.
    iv_lasix = med_request(
        s,
        "ip-furosemide-iv",
        patient_=pt,
        drug=furosemide_iv,
        category="inpatient",
        status="completed",
        authored=s.at("2026-03-02 15:10"),
        requester=okonkwo,
        stay=stay,
        reasons=[hf],
        instruction=dosage(
            "40 mg intravenous every 12 hours.",
            dose=quantity(40, "mg"),
            every=(2, 1, "d"),
            route=IV,
        ),
    )
    for index, when in enumerate(
        [
            "2026-03-02 16:02",
            "2026-03-03 08:10",
            "2026-03-03 17:55",
            "2026-03-04 08:04",
            "2026-03-04 18:01",
            "2026-03-05 08:15",
        ],
        start=1,
    ):
        administer(
            s,
            f"mar-furosemide-{index}",
            patient_=pt,
            stay=stay,
            order=iv_lasix,
            when=s.at(when),
            nurse=ellis,
            dose=quantity(40, "mg"),
            route=IV,
            text="40 mg IV push over 2 minutes",
        )
    kcl = med_request(
        s,
        "ip-potassium",
        patient_=pt,
        drug=potassium,
        category="inpatient",
        status="completed",
        authored=s.at("2026-03-02 17:10"),
        requester=okonkwo,
        stay=stay,
        reasons=[hypokalemia],
        instruction=dosage(
            "20 mEq by mouth twice daily.",
            dose=quantity(20, "mEq", "meq"),
            every=twice_daily,
            route=ORAL,
        ),
    )
    for index, when in enumerate(["2026-03-02 18:00", "2026-03-03 09:00", "2026-03-03 21:00"], 1):
        administer(
            s,
            f"mar-potassium-{index}",
            patient_=pt,
            stay=stay,
            order=kcl,
            when=s.at(when),
            nurse=ellis,
            dose=quantity(20, "mEq", "meq"),
            route=ORAL,
            text="20 mEq by mouth",
        )
    ip_metoprolol = med_request(
        s,
        "ip-metoprolol",
        patient_=pt,
        drug=metoprolol_25,
        category="inpatient",
        status="completed",
        authored=s.at("2026-03-02 15:12"),
        requester=okonkwo,
        stay=stay,
        instruction=dosage(
            "25 mg by mouth daily.", dose=quantity(25, "mg"), every=daily, route=ORAL
        ),
    )
    for index, when in enumerate(["2026-03-03 09:00", "2026-03-04 09:00", "2026-03-05 09:00"], 1):
        administer(
            s,
            f"mar-metoprolol-{index}",
            patient_=pt,
            stay=stay,
            order=ip_metoprolol,
            when=s.at(when),
            nurse=ellis,
            dose=quantity(25, "mg"),
            route=ORAL,
            text="25 mg by mouth",
        )
    ip_spironolactone = med_request(
        s,
        "ip-spironolactone",
        patient_=pt,
        drug=spironolactone_25,
        category="inpatient",
        status="completed",
        authored=s.at("2026-03-05 10:30"),
        requester=raman,
        stay=stay,
        reasons=[hf],
        instruction=dosage(
            "25 mg by mouth daily.", dose=quantity(25, "mg"), every=daily, route=ORAL
        ),
    )
    administer(
        s,
        "mar-spironolactone-1",
        patient_=pt,
        stay=stay,
        order=ip_spironolactone,
        when=s.at("2026-03-05 11:05"),
        nurse=ellis,
        dose=quantity(25, "mg"),
        route=ORAL,
        text="25 mg by mouth",
    )

    # Discharge prescriptions.
    rx_time = s.at("2026-03-06 09:45")
    med_request(
        s,
        "dc-lisinopril",
        patient_=pt,
        drug=lisinopril_10,
        category="discharge",
        authored=rx_time,
        requester=raman,
        stay=stay,
        reasons=[htn],
        instruction=dosage(
            "Take 1 tablet (10 mg total) by mouth daily.",
            dose=quantity(10, "mg"),
            every=daily,
            route=ORAL,
        ),
        supply=dispense("2026-03-06", "2027-03-06", quantity(30, *tab), 30, refills=5),
        course="continuous",
    )
    med_request(
        s,
        "dc-metoprolol",
        patient_=pt,
        drug=metoprolol_50,
        category="discharge",
        authored=rx_time,
        requester=raman,
        stay=stay,
        reasons=[hf],
        instruction=dosage(
            "Take 1 tablet (50 mg total) by mouth daily.",
            dose=quantity(50, "mg"),
            every=daily,
            route=ORAL,
        ),
        supply=dispense("2026-03-06", "2027-03-06", quantity(30, *tab), 30, refills=5),
        course="continuous",
    )
    med_request(
        s,
        "dc-furosemide",
        patient_=pt,
        drug=furosemide_40,
        category="discharge",
        authored=rx_time,
        requester=raman,
        stay=stay,
        reasons=[hf],
        instruction=dosage(
            "Take 1 tablet (40 mg total) by mouth 2 times daily.",
            dose=quantity(40, "mg"),
            every=twice_daily,
            route=ORAL,
            patient_text="Take in the morning and mid-afternoon. Weigh yourself every morning.",
        ),
        supply=dispense("2026-03-06", "2027-03-06", quantity(60, *tab), 30, refills=5),
        course="continuous",
    )
    med_request(
        s,
        "dc-spironolactone",
        patient_=pt,
        drug=spironolactone_25,
        category="discharge",
        authored=rx_time,
        requester=raman,
        stay=stay,
        reasons=[hf],
        instruction=dosage(
            "Take 1 tablet (25 mg total) by mouth daily.",
            dose=quantity(25, "mg"),
            every=daily,
            route=ORAL,
        ),
        supply=dispense("2026-03-06", "2027-03-06", quantity(30, *tab), 30, refills=5),
        course="continuous",
    )

    # Labs: the clinic's creatinine (not the stay's), then daily panels in hospital.
    lab(
        s,
        "clinic-creatinine",
        patient_=pt,
        code=CREATININE,
        when=s.at("2026-02-09 10:20"),
        stay=visit,
        value=1.2,
        unit=MG_DL,
        low=0.7,
        high=1.3,
        performer=org,
        resulted_after=240,
    )
    lab(
        s,
        "covid",
        patient_=pt,
        code=SARS_COV_2,
        when=s.at("2026-03-02 14:40"),
        stay=stay,
        value_concept=NOT_DETECTED,
        range_text="Not detected",
        performer=org,
        resulted_after=80,
    )
    panels = [
        # day, time, sodium, potassium, chloride, bicarbonate, BUN, creatinine, glucose
        ("2026-03-02", "14:32", 133, 3.3, 96, 27, 28, 1.3, 131),
        ("2026-03-03", "05:48", 134, 3.4, 97, 29, 34, 1.6, 118),
        ("2026-03-04", "05:51", 136, 3.8, 98, 30, 39, 1.8, 109),
        ("2026-03-05", "05:45", 137, 4.1, 99, 29, 33, 1.4, 104),
        ("2026-03-06", "05:40", 137, 4.3, 99, 28, 27, 1.2, 101),
    ]
    for day, clock, na, k, cl, co2, bun, creat, glucose in panels:
        when = s.at(f"{day} {clock}")
        results = [
            lab(
                s,
                f"na-{day}",
                patient_=pt,
                code=SODIUM,
                when=when,
                stay=stay,
                value=na,
                unit=MMOL_L,
                low=135,
                high=145,
                performer=org,
            ),
            lab(
                s,
                f"k-{day}",
                patient_=pt,
                code=POTASSIUM,
                when=when,
                stay=stay,
                value=k,
                unit=MMOL_L,
                low=3.5,
                high=5.1,
                performer=org,
            ),
            lab(
                s,
                f"cl-{day}",
                patient_=pt,
                code=CHLORIDE,
                when=when,
                stay=stay,
                value=cl,
                unit=MMOL_L,
                low=98,
                high=107,
                performer=org,
            ),
            lab(
                s,
                f"co2-{day}",
                patient_=pt,
                code=BICARBONATE,
                when=when,
                stay=stay,
                value=co2,
                unit=MMOL_L,
                low=22,
                high=29,
                performer=org,
            ),
            lab(
                s,
                f"bun-{day}",
                patient_=pt,
                code=BUN,
                when=when,
                stay=stay,
                value=bun,
                unit=MG_DL,
                low=8,
                high=23,
                performer=org,
            ),
            lab(
                s,
                f"creat-{day}",
                patient_=pt,
                code=CREATININE,
                when=when,
                stay=stay,
                value=creat,
                unit=MG_DL,
                low=0.7,
                high=1.3,
                performer=org,
            ),
            lab(
                s,
                f"glucose-{day}",
                patient_=pt,
                code=GLUCOSE,
                when=when,
                stay=stay,
                value=glucose,
                unit=MG_DL,
                low=70,
                high=99,
                performer=org,
            ),
        ]
        lab_report(
            s,
            f"bmp-{day}",
            patient_=pt,
            stay=stay,
            code=BMP,
            when=when,
            results=results,
            performer=org,
        )
    for key, clock, value in [
        ("bnp-1", "2026-03-02 14:32", 8450),
        ("bnp-2", "2026-03-05 05:45", 3120),
    ]:
        lab(
            s,
            key,
            patient_=pt,
            code=NT_PROBNP,
            when=s.at(clock),
            stay=stay,
            value=value,
            unit=PG_ML,
            high=900,
            range_text="<900 pg/mL (age 50-75)",
            performer=org,
            resulted_after=95,
        )
    cbc_time = s.at("2026-03-02 14:32")
    lab_report(
        s,
        "cbc-2026-03-02",
        patient_=pt,
        stay=stay,
        code=CBC,
        when=cbc_time,
        performer=org,
        results=[
            lab(
                s,
                "wbc-1",
                patient_=pt,
                code=WBC,
                when=cbc_time,
                stay=stay,
                value=7.9,
                unit=K_UL,
                low=4.0,
                high=10.5,
                performer=org,
                resulted_after=25,
            ),
            lab(
                s,
                "hgb-1",
                patient_=pt,
                code=HEMOGLOBIN,
                when=cbc_time,
                stay=stay,
                value=12.6,
                unit=G_DL,
                low=13.2,
                high=17.1,
                performer=org,
                resulted_after=25,
            ),
            lab(
                s,
                "plt-1",
                patient_=pt,
                code=PLATELETS,
                when=cbc_time,
                stay=stay,
                value=214,
                unit=K_UL,
                low=150,
                high=400,
                performer=org,
                resulted_after=25,
            ),
        ],
    )
    # Drawn on the morning of discharge, still in the lab when the patient left.
    lab(
        s,
        "magnesium-pending",
        patient_=pt,
        code=MAGNESIUM,
        when=s.at("2026-03-06 05:40"),
        stay=stay,
        status="registered",
        performer=org,
    )

    vital_rows = [
        # when, HR, BP, RR, temp, SpO2, weight
        ("2026-03-02 14:10", 104, (148, 92), 24, 36.8, 92, 88.4),
        ("2026-03-03 06:00", 92, (136, 84), 20, 36.9, 94, 86.9),
        ("2026-03-04 06:00", 84, (124, 76), 18, 36.7, 95, 85.6),
        ("2026-03-05 06:00", 80, (120, 74), 16, 36.8, 96, 84.8),
        ("2026-03-06 06:00", 78, (118, 72), 16, 36.6, 96, 84.5),
    ]
    for when, hr, bp, rr, temp, spo2, weight in vital_rows:
        vitals(
            s,
            f"vitals-{when}",
            patient_=pt,
            stay=stay,
            when=s.at(when),
            nurse=ellis,
            heart_rate=hr,
            bp=bp,
            resp_rate=rr,
            temp_c=temp,
            spo2=spo2,
            weight_kg=weight,
        )

    echo_time = s.at("2026-03-03 10:30")
    lvef = s.add(
        "Observation",
        "lvef",
        {
            "status": "final",
            "category": [IMAGING],
            "code": concept(
                "LV ejection fraction", loinc("10230-1", "Left ventricular Ejection fraction")
            ),
            "subject": ref(pt),
            "encounter": ref(stay, display=False),
            "effectiveDateTime": echo_time,
            "issued": s.at("2026-03-03 13:05"),
            "performer": [ref(marchetti)],
            "valueQuantity": quantity(30, "%"),
            "interpretation": [concept("Low", coding(INTERPRETATION, "L", "Low"))],
            "referenceRange": [{"low": quantity(52, "%"), "high": quantity(72, "%")}],
        },
    )
    procedure(
        s,
        "proc-echo",
        patient_=pt,
        stay=stay,
        text="Transthoracic echocardiogram",
        codes=[
            cpt(
                "93306",
                "Echocardiography, transthoracic, real-time with image documentation (2D), "
                "includes M-mode recording, when performed, complete, with spectral Doppler "
                "echocardiography, and with color flow Doppler echocardiography",
            ),
            snomed("433236007", "Transthoracic echocardiography (procedure)"),
        ],
        performed=(echo_time, s.at("2026-03-03 11:10")),
        performer=marchetti,
        place=ward,
        reasons=[hf],
    )
    procedure(
        s,
        "proc-ecg",
        patient_=pt,
        stay=stay,
        text="12-lead ECG",
        codes=list(ECG_PROCEDURE),
        performed=s.at("2026-03-02 14:20"),
        performer=okonkwo,
        reasons=[hf],
    )
    imaging_report(
        s,
        "echo-report",
        patient_=pt,
        stay=stay,
        category=CARDIAC_ECHO_REPORT,
        code=concept("Transthoracic echocardiogram", loinc("34552-0", "2D echocardiogram panel")),
        when=echo_time,
        issued=s.at("2026-03-03 13:05"),
        reader=marchetti,
        performer=org,
        results=[lvef],
        conclusion="Severely reduced left ventricular systolic function, LVEF 30% by biplane "
        "Simpson's, with global hypokinesis. Moderate functional mitral regurgitation. "
        "Estimated RVSP 48 mmHg. Dilated IVC with <50% inspiratory collapse.",
        conclusion_codes=[
            concept(
                "Systolic dysfunction", snomed("417996009", "Systolic heart failure (disorder)")
            )
        ],
        report_text=(
            "TRANSTHORACIC ECHOCARDIOGRAM\n"
            "Indication: Acute on chronic systolic heart failure.\n"
            "Left ventricle: Dilated (LVIDd 6.1 cm). Global hypokinesis. LVEF 30% (biplane). "
            "Grade II diastolic dysfunction.\n"
            "Right ventricle: Normal size, mildly reduced function (TAPSE 1.6 cm).\n"
            "Valves: Moderate functional mitral regurgitation. Mild tricuspid regurgitation.\n"
            "RVSP estimated 48 mmHg. IVC 2.4 cm with <50% collapse.\n"
            "Compared with 11/2022: LVEF previously 35%.\n"
            "Impression: Severely reduced LV systolic function, LVEF 30%. Moderate functional MR.\n"
            "Electronically signed by Elena Marchetti, MD on 3/3/2026 1:05 PM."
        ),
    )

    note(
        s,
        "note-hp",
        patient_=pt,
        stay=stay,
        kind=H_AND_P,
        title="History and Physical",
        when=s.at("2026-03-02 18:40"),
        author=okonkwo,
        org=org,
        text=(
            "HISTORY AND PHYSICAL\n"
            "Chief complaint: Shortness of breath and leg swelling for 5 days.\n\n"
            "HPI: 71-year-old man with chronic systolic heart failure (LVEF 35% in 11/2022), "
            "hypertension and CKD stage 3a, with 3 kg weight gain, orthopnea (3 pillows) and "
            "bilateral leg edema. He has been taking ibuprofen 400 mg two to three times a week "
            "for knee osteoarthritis. Adherent to furosemide 20 mg daily.\n\n"
            "Home medications: lisinopril 10 mg daily; metoprolol succinate XL 25 mg daily; "
            "furosemide 20 mg daily; ibuprofen 400 mg as needed (OTC).\n"
            "Allergies: Penicillin (hives).\n\n"
            "Exam: HR 104, BP 148/92, RR 24, SpO2 92% on room air, weight 88.4 kg. JVP 12 cm. "
            "Bibasilar crackles. 2+ pitting edema to the knees.\n"
            "Data: NT-proBNP 8,450 pg/mL. K 3.3, Na 133, creatinine 1.3 (baseline 1.2). "
            "ECG sinus tachycardia, no acute ST changes. CXR: pulmonary vascular congestion, "
            "small bilateral effusions.\n\n"
            "Assessment and plan:\n"
            "1. Acute on chronic systolic heart failure, likely precipitated by NSAID use: "
            "furosemide 40 mg IV every 12 hours, strict I/O, daily weights, 2 g sodium diet, "
            "echocardiogram.\n"
            "2. Hypokalemia: potassium chloride 20 mEq twice daily, recheck BMP in the morning.\n"
            "3. Hypertension: continue metoprolol; hold lisinopril tonight, resume if creatinine "
            "stable.\n"
            "4. Stop ibuprofen.\n"
            "DVT prophylaxis: SCDs. Code status: Full code."
        ),
    )
    note(
        s,
        "note-progress-1",
        patient_=pt,
        stay=stay,
        kind=PROGRESS_NOTE,
        title="Hospitalist Progress Note",
        when=s.at("2026-03-04 11:15"),
        author=raman,
        org=org,
        text=(
            "PROGRESS NOTE - Hospital day 3\n"
            "S: Breathing better, slept on one pillow. Net negative 2.8 L in 24 h.\n"
            "O: HR 84, BP 124/76, SpO2 95% RA, weight 85.6 kg (admission 88.4 kg). Trace edema.\n"
            "Labs: creatinine 1.8 (up from 1.3), K 3.8. Echo: LVEF 30%, moderate functional MR.\n"
            "A/P:\n"
            "1. Acute on chronic systolic HF: improving, continue IV furosemide today.\n"
            "2. Acute kidney injury, likely hemodynamic with diuresis and recent NSAID use: "
            "avoid nephrotoxins, trend creatinine.\n"
            "3. Medication changes: ibuprofen discontinued permanently - NSAIDs worsen heart "
            "failure and kidney function; use acetaminophen for knee pain. Patient educated.\n"
            "4. Hypokalemia resolved; potassium chloride stopped."
        ),
    )
    note(
        s,
        "note-progress-2",
        patient_=pt,
        stay=stay,
        kind=PROGRESS_NOTE,
        title="Hospitalist Progress Note",
        when=s.at("2026-03-05 12:40"),
        author=raman,
        org=org,
        text=(
            "PROGRESS NOTE - Hospital day 4\n"
            "S: No orthopnea. Walked the hallway twice without dyspnea.\n"
            "O: HR 80, BP 120/74, weight 84.8 kg. Creatinine 1.4 (improving), K 4.1.\n"
            "A/P:\n"
            "1. HFrEF (EF 30%): near dry weight (estimated 84.5 kg). Transition to oral "
            "furosemide 40 mg twice daily tomorrow. Increase metoprolol succinate to 50 mg daily "
            "at discharge (HR 80, BP tolerates). Start spironolactone 25 mg daily today for "
            "GDMT; K 4.1, creatinine improving. Continue lisinopril 10 mg daily.\n"
            "2. AKI: resolving.\n"
            "3. Discharge planning: home tomorrow if creatinine stable; BMP in 3 days; "
            "cardiology clinic in 1 week; daily weights."
        ),
    )
    note(
        s,
        "note-discharge-summary",
        patient_=pt,
        stay=stay,
        kind=DISCHARGE_SUMMARY,
        title="Discharge Summary",
        when=s.at("2026-03-06 13:10"),
        author=raman,
        org=org,
        text=(
            "DISCHARGE SUMMARY\n"
            f"{OLD_SUMMARY_MARKER}.\n"
            "This copy was imported from an outside system and must not be used."
        ),
    )

    goal(
        s,
        "goal-weight",
        patient_=pt,
        text="Daily weight within 1 kg of dry weight (84.5 kg)",
        start="2026-03-05",
        target={
            "measure": concept("Body weight", loinc("29463-7", "Body weight")),
            "detailQuantity": quantity(85.5, "kg", comparator="<="),
            "dueDate": "2026-04-06",
        },
        expressed_by=raman,
        addresses=[hf],
    )
    service_request(
        s,
        "order-bmp-followup",
        patient_=pt,
        stay=stay,
        code=concept("Basic metabolic panel", loinc(*BMP[:2])),
        category=LAB_ORDER,
        authored=s.at("2026-03-06 09:50"),
        requester=raman,
        occurrence=s.at("2026-03-09 08:00"),
        performer=org,
        reasons=[hf],
        note_text="Outpatient lab draw 3 days after discharge: potassium and creatinine on "
        "spironolactone and higher furosemide dose.",
    )
    appointment(
        s,
        "appt-cardiology",
        patient_=pt,
        clinician=marchetti,
        place=clinic,
        start=s.at("2026-03-13 10:00"),
        minutes=30,
        created=s.at("2026-03-06 10:05"),
        service=concept("Cardiology", snomed("394579002", "Cardiology (qualifier value)")),
        description="Heart failure follow-up, 1 week after discharge",
        reasons=[hf],
        instructions="Bring your weight log and all medication bottles.",
    )
    return s
