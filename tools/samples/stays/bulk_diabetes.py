"""``bulk/``: a Bulk Data export of two patients, one with a diabetic ketoacidosis stay, the
other with only a clinic visit (UUID ids)."""

from __future__ import annotations

from tools.samples.administrative import address, location, organization, patient, practitioner
from tools.samples.codes import (
    ANION_GAP,
    BICARBONATE,
    BMP,
    CHEST_XRAY_PROCEDURE,
    CHLORIDE,
    CREATININE,
    ECG_PROCEDURE,
    GLUCOSE,
    H_AND_P,
    HBA1C,
    IV,
    MG_DL,
    MMOL_L,
    NO_KNOWN_ALLERGY,
    ORAL,
    PERCENT,
    POC_GLUCOSE,
    POTASSIUM,
    PROGRESS_NOTE,
    RADIOLOGY_REPORT,
    SODIUM,
    SUBCUT,
    URINE_KETONES,
    XR_CHEST,
)
from tools.samples.conditions import allergy, condition, procedure
from tools.samples.datatypes import concept, icd10, quantity, rxnorm, snomed
from tools.samples.encounters import encounter, hospitalize
from tools.samples.follow_up import appointment
from tools.samples.ids import bulk_id
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


def build_bulk_diabetes() -> Sample:
    """Bulk export: 64-year-old woman with DKA (3 days), plus a patient with only a clinic visit."""
    s = Sample("bulk", bulk_id, standard_utc_offset=-7)
    org = organization(
        s,
        "org",
        "High Plains Regional Hospital",
        npi="1205938471",
        address=address("3500 Foothill Road", "Greeley", "CO", "80634"),
        phone="970-555-0150",
    )
    ward = location(
        s, "5e", "HPRH 5 East Medical ICU Step-Down", org=org, role=("HOSP", "Hospital")
    )
    clinic = location(
        s,
        "diabetes-clinic",
        "High Plains Endocrinology & Diabetes Clinic",
        org=org,
        role=("ENDOS", "Endocrinology clinic"),
        physical=("ro", "Room"),
    )
    family_clinic = location(
        s,
        "family-clinic",
        "High Plains Family Medicine",
        org=org,
        role=("FMC", "Family medicine clinic"),
        physical=("ro", "Room"),
    )
    whitaker = practitioner(
        s, "whitaker", "Samuel", "Whitaker", suffix="MD", npi="1316049582", gender="male"
    )
    iyer = practitioner(s, "iyer", "Meera", "Iyer", suffix="MD", npi="1427150693", gender="female")
    ortega = practitioner(
        s, "ortega", "Carlos", "Ortega", suffix="MD", npi="1538261704", gender="male"
    )
    scott = practitioner(
        s, "scott", "Brianna", "Scott", suffix="RN", npi="1649372815", gender="female"
    )
    pt = patient(
        s,
        "patient-rosa",
        mrn=("http://highplains.example.org/fhir/sid/mrn", "HP2294731"),
        given=["Rosa", "Elena"],
        family="Delgado",
        gender="female",
        birth_date="1961-07-29",
        home=address("2418 Aspen Ridge Drive", "Greeley", "CO", "80634", use="home"),
        phone="970-555-0119",
        race=("2106-3", "White"),
        ethnicity=("2135-2", "Hispanic or Latino"),
        marital=("M", "Married"),
        gp=ortega,
        org=org,
        updated=s.at("2026-02-19 13:00"),
    )
    admitted, discharged = s.at("2026-02-16 03:40"), s.at("2026-02-19 12:10")
    visit = encounter(
        s,
        "rosa-clinic-visit",
        patient_=pt,
        cls="AMB",
        type_=concept("Office Visit", snomed("390906007", "Follow-up encounter (procedure)")),
        start=s.at("2025-11-20 14:00"),
        end=s.at("2025-11-20 14:30"),
        org=org,
        place=family_clinic,
        participants=[("ATND", ortega)],
        reason_codes=[
            concept("Diabetes follow-up", snomed("44054006", "Diabetes mellitus type 2 (disorder)"))
        ],
    )
    stay = encounter(
        s,
        "rosa-stay",
        patient_=pt,
        cls="IMP",
        type_=concept("Inpatient", snomed("32485007", "Hospital admission (procedure)")),
        start=admitted,
        end=discharged,
        org=org,
        place=ward,
        participants=[("ADM", whitaker), ("ATND", whitaker), ("DIS", whitaker)],
        reason_codes=[
            concept("Vomiting and high blood sugar", snomed("422400008", "Vomiting (disorder)"))
        ],
        version="6",
        updated=s.at("2026-02-19 13:00"),
    )
    dka = condition(
        s,
        "dx-dka",
        patient_=pt,
        text="Diabetic ketoacidosis, type 2 diabetes",
        codes=[
            icd10("E11.10", "Type 2 diabetes mellitus with ketoacidosis without coma"),
            snomed("420422005", "Ketoacidosis due to diabetes mellitus (disorder)"),
        ],
        recorded=s.at("2026-02-16 04:45"),
        onset=s.at("2026-02-15 12:00"),
        stay=stay,
        recorder=whitaker,
    )
    dehydration = condition(
        s,
        "dx-dehydration",
        patient_=pt,
        text="Dehydration",
        codes=[icd10("E86.0", "Dehydration"), snomed("34095006", "Dehydration (disorder)")],
        recorded=s.at("2026-02-16 04:47"),
        onset=s.at("2026-02-15 12:00"),
        stay=stay,
        recorder=whitaker,
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
        recorded=s.at("2026-02-16 04:50"),
        onset=admitted,
        stay=stay,
        recorder=whitaker,
    )
    diabetes = condition(
        s,
        "pl-t2dm",
        patient_=pt,
        text="Type 2 diabetes mellitus",
        codes=[
            icd10("E11.9", "Type 2 diabetes mellitus without complications"),
            snomed("44054006", "Diabetes mellitus type 2 (disorder)"),
        ],
        recorded="2014-05-02",
        onset="2014-05-02",
        recorder=ortega,
    )
    condition(
        s,
        "pl-obesity",
        patient_=pt,
        text="Obesity",
        codes=[icd10("E66.9", "Obesity, unspecified"), snomed("414916001", "Obesity (disorder)")],
        recorded="2014-05-02",
        onset="2014-05-02",
        recorder=ortega,
    )
    condition(
        s,
        "pl-appendicitis",
        patient_=pt,
        text="Appendicitis",
        codes=[
            icd10("K37", "Unspecified appendicitis"),
            snomed("74400008", "Appendicitis (disorder)"),
        ],
        recorded="1989-10-11",
        onset="1989-10-10",
        abatement="1989-10-25",
        recorder=ortega,
    )
    hospitalize(
        stay,
        reasons=[dka],
        diagnoses=[(dka, "DD"), (dehydration, "DD"), (aki, "DD")],
        admit_source=("emd", "From accident/emergency department"),
        disposition=("home", "Home"),
        disposition_text="Home or Self Care",
    )
    allergy(
        s,
        "rosa-nka",
        patient_=pt,
        code=NO_KNOWN_ALLERGY,
        recorded=s.at("2026-02-16 04:05"),
        recorder=scott,
    )

    metformin = med_concept(
        "metformin 1000 mg tablet",
        rxnorm("861004", "metformin hydrochloride 1000 MG Oral Tablet"),
    )
    med_statement(
        s,
        "home-metformin",
        patient_=pt,
        drug=metformin,
        status="stopped",
        status_reason=concept(
            "Ketoacidosis and acute kidney injury; replaced by insulin",
            snomed("420422005", "Ketoacidosis due to diabetes mellitus (disorder)"),
        ),
        start="2014-05-02",
        end=s.at("2026-02-16 05:00"),
        asserted=s.at("2026-02-16 04:20"),
        source=pt,
        reasons=[diabetes],
        note="Stopped on admission for DKA with acute kidney injury; not resumed at discharge. "
        "Endocrinology to reassess.",
        instruction=dosage(
            "Take 1 tablet (1,000 mg) by mouth 2 times daily with meals.",
            dose=quantity(1000, "mg"),
            every=(2, 1, "d"),
            route=ORAL,
        ),
    )
    glargine = medication(
        s,
        "med-glargine",
        text="insulin glargine 100 units/mL (3 mL) pen",
        code=rxnorm("847230", "3 ML insulin glargine 100 UNT/ML Pen Injector"),
        form=concept(
            "Pen injector",
            snomed("385219001", "Conventional release solution for injection (dose form)"),
        ),
        ingredient=concept("insulin glargine", rxnorm("274783", "insulin glargine")),
        strength=(quantity(100, "units", "[iU]"), quantity(1, "mL")),
    )
    lispro = med_concept(
        "insulin lispro 100 units/mL (3 mL) pen",
        rxnorm("1652639", "3 ML insulin lispro 100 UNT/ML Pen Injector"),
    )
    insulin_drip = med_concept(
        "insulin regular (human) 100 units/100 mL in 0.9% sodium chloride infusion",
        rxnorm("253182", "insulin, regular, human"),
    )
    units = ("units", "[iU]")
    drip = med_request(
        s,
        "ip-insulin-drip",
        patient_=pt,
        drug=insulin_drip,
        category="inpatient",
        status="completed",
        authored=s.at("2026-02-16 04:10"),
        requester=whitaker,
        stay=stay,
        reasons=[dka],
        instruction=dosage(
            "0.1 units/kg/hour IV per DKA protocol; titrate to glucose and anion gap.",
            dose=quantity(9, *units),
            every=(1, 1, "h"),
            route=IV,
        ),
    )
    administer(
        s,
        "mar-insulin-drip",
        patient_=pt,
        stay=stay,
        order=drip,
        when=s.at("2026-02-16 04:30"),
        nurse=scott,
        dose=quantity(9, *units),
        route=IV,
        text="Infusion started at 9 units/hour",
    )
    potassium_iv = med_request(
        s,
        "ip-potassium-iv",
        patient_=pt,
        drug=med_concept(
            "potassium chloride 20 mEq in 100 mL IV", rxnorm("8591", "potassium chloride")
        ),
        category="inpatient",
        status="completed",
        authored=s.at("2026-02-16 20:30"),
        requester=whitaker,
        stay=stay,
        instruction=dosage(
            "20 mEq IV over 2 hours for potassium below 3.5.",
            dose=quantity(20, "mEq", "meq"),
            route=IV,
        ),
    )
    administer(
        s,
        "mar-potassium-iv",
        patient_=pt,
        stay=stay,
        order=potassium_iv,
        when=s.at("2026-02-16 21:00"),
        nurse=scott,
        dose=quantity(20, "mEq", "meq"),
        route=IV,
        text="20 mEq IV over 2 hours",
    )
    ip_glargine = med_request(
        s,
        "ip-glargine",
        patient_=pt,
        drug=glargine,
        category="inpatient",
        status="completed",
        authored=s.at("2026-02-17 14:00"),
        requester=whitaker,
        stay=stay,
        reasons=[diabetes],
        instruction=dosage(
            "20 units subcutaneous nightly at 21:00 (2 hours before stopping the insulin drip).",
            dose=quantity(20, *units),
            every=(1, 1, "d"),
            route=SUBCUT,
        ),
    )
    for index, day in enumerate(["2026-02-17", "2026-02-18"], 1):
        administer(
            s,
            f"mar-glargine-{index}",
            patient_=pt,
            stay=stay,
            order=ip_glargine,
            when=s.at(f"{day} 21:00"),
            nurse=scott,
            dose=quantity(20, *units),
            route=SUBCUT,
            text="20 units subcutaneous",
        )
    rx_time = s.at("2026-02-19 10:30")
    med_request(
        s,
        "dc-glargine",
        patient_=pt,
        drug=glargine,
        category="discharge",
        authored=rx_time,
        requester=whitaker,
        stay=stay,
        reasons=[diabetes],
        instruction=dosage(
            "Inject 20 units under the skin nightly at bedtime.",
            dose=quantity(20, *units),
            every=(1, 1, "d"),
            when=["HS"],
            route=SUBCUT,
        ),
        supply=dispense("2026-02-19", "2027-02-19", quantity(15, "mL", "mL"), 75, refills=5),
        course="continuous",
    )
    med_request(
        s,
        "dc-lispro",
        patient_=pt,
        drug=lispro,
        category="discharge",
        authored=rx_time,
        requester=whitaker,
        stay=stay,
        reasons=[diabetes],
        instruction=dosage(
            "Inject under the skin before meals per correction scale: glucose 150-199: 2 units; "
            "200-249: 4 units; 250-299: 6 units; 300-349: 8 units; 350 or more: 10 units and "
            "call the clinic.",
            dose_range=(quantity(2, *units), quantity(10, *units)),
            every=(3, 1, "d"),
            when=["AC"],
            route=SUBCUT,
        ),
        supply=dispense("2026-02-19", "2027-02-19", quantity(15, "mL", "mL"), 30, refills=5),
        course="continuous",
    )

    # Labs: glucose and anion gap fall, bicarbonate rises, potassium dips with insulin.
    lab(
        s,
        "a1c-clinic",
        patient_=pt,
        code=HBA1C,
        when=s.at("2025-11-20 14:20"),
        stay=visit,
        value=9.8,
        unit=PERCENT,
        high=5.6,
        performer=org,
        resulted_after=300,
    )
    panels = [
        ("2026-02-16 03:55", 612, 8, 29, 5.6, 1.6, 131, 94, "HH", "LL"),
        ("2026-02-16 09:00", 418, 12, 22, 4.2, 1.5, 134, 100, None, None),
        ("2026-02-16 19:00", 288, 17, 15, 3.3, 1.3, 136, 104, None, None),
        ("2026-02-17 05:00", 196, 21, 11, 3.6, 1.1, 137, 105, None, None),
        ("2026-02-18 05:00", 164, 24, 10, 4.0, 0.9, 138, 104, None, None),
        ("2026-02-19 05:00", 142, 25, 9, 4.1, 0.8, 139, 105, None, None),
    ]
    for index, (
        when,
        glucose,
        bicarb,
        gap,
        k,
        creat,
        na,
        cl,
        glucose_flag,
        bicarb_flag,
    ) in enumerate(panels, 1):
        moment = s.at(when)
        results = [
            lab(
                s,
                f"na-{index}",
                patient_=pt,
                code=SODIUM,
                when=moment,
                stay=stay,
                value=na,
                unit=MMOL_L,
                low=135,
                high=145,
                performer=org,
            ),
            lab(
                s,
                f"k-{index}",
                patient_=pt,
                code=POTASSIUM,
                when=moment,
                stay=stay,
                value=k,
                unit=MMOL_L,
                low=3.5,
                high=5.1,
                performer=org,
            ),
            lab(
                s,
                f"cl-{index}",
                patient_=pt,
                code=CHLORIDE,
                when=moment,
                stay=stay,
                value=cl,
                unit=MMOL_L,
                low=98,
                high=107,
                performer=org,
            ),
            lab(
                s,
                f"bicarb-{index}",
                patient_=pt,
                code=BICARBONATE,
                when=moment,
                stay=stay,
                value=bicarb,
                unit=MMOL_L,
                low=22,
                high=29,
                flag=bicarb_flag,
                performer=org,
            ),
            lab(
                s,
                f"gap-{index}",
                patient_=pt,
                code=ANION_GAP,
                when=moment,
                stay=stay,
                value=gap,
                unit=MMOL_L,
                low=4,
                high=12,
                performer=org,
            ),
            lab(
                s,
                f"creat-{index}",
                patient_=pt,
                code=CREATININE,
                when=moment,
                stay=stay,
                value=creat,
                unit=MG_DL,
                low=0.57,
                high=1.0,
                performer=org,
            ),
            lab(
                s,
                f"glucose-{index}",
                patient_=pt,
                code=GLUCOSE,
                when=moment,
                stay=stay,
                value=glucose,
                unit=MG_DL,
                low=70,
                high=99,
                flag=glucose_flag,
                performer=org,
            ),
        ]
        lab_report(
            s,
            f"bmp-{index}",
            patient_=pt,
            stay=stay,
            code=BMP,
            when=moment,
            results=results,
            performer=org,
        )
    lab(
        s,
        "a1c-stay",
        patient_=pt,
        code=HBA1C,
        when=s.at("2026-02-16 03:55"),
        stay=stay,
        value=12.4,
        unit=PERCENT,
        high=5.6,
        performer=org,
        resulted_after=360,
    )
    lab(
        s,
        "urine-ketones",
        patient_=pt,
        code=URINE_KETONES,
        when=s.at("2026-02-16 04:15"),
        stay=stay,
        value_concept=concept("Positive (large)", snomed("10828004", "Positive (qualifier value)")),
        flag="A",
        range_text="Negative",
        performer=org,
        resulted_after=30,
    )
    for index, (when, value) in enumerate(
        [
            ("2026-02-17 11:30", 182),
            ("2026-02-17 17:30", 176),
            ("2026-02-18 07:30", 158),
            ("2026-02-18 11:30", 171),
            ("2026-02-18 17:30", 149),
            ("2026-02-19 07:30", 138),
        ],
        1,
    ):
        lab(
            s,
            f"poc-glucose-{index}",
            patient_=pt,
            code=POC_GLUCOSE,
            when=s.at(when),
            stay=stay,
            value=value,
            unit=MG_DL,
            low=70,
            high=180,
            performer=scott,
            resulted_after=1,
        )
    for when, hr, bp, rr, temp, spo2, weight in [
        ("2026-02-16 03:45", 118, (102, 64), 28, 37.2, 97, 84.0),
        ("2026-02-16 12:00", 104, (112, 68), 22, 37.0, 98, None),
        ("2026-02-17 08:00", 92, (124, 76), 18, 36.8, 98, None),
        ("2026-02-18 08:00", 84, (128, 78), 16, 36.7, 98, None),
        ("2026-02-19 08:00", 80, (126, 76), 16, 36.7, 99, 86.1),
    ]:
        vitals(
            s,
            f"vitals-{when}",
            patient_=pt,
            stay=stay,
            when=s.at(when),
            nurse=scott,
            heart_rate=hr,
            bp=bp,
            resp_rate=rr,
            temp_c=temp,
            spo2=spo2,
            weight_kg=weight,
        )
    procedure(
        s,
        "proc-ecg",
        patient_=pt,
        stay=stay,
        text="12-lead ECG",
        codes=list(ECG_PROCEDURE),
        performed=s.at("2026-02-16 04:00"),
        performer=whitaker,
        reasons=[dka],
    )
    cxr_time = s.at("2026-02-16 04:25")
    procedure(
        s,
        "proc-cxr",
        patient_=pt,
        stay=stay,
        text="Chest X-ray, 2 views",
        codes=list(CHEST_XRAY_PROCEDURE),
        performed=cxr_time,
        performer=whitaker,
    )
    imaging_report(
        s,
        "cxr-report",
        patient_=pt,
        stay=stay,
        category=RADIOLOGY_REPORT,
        code=XR_CHEST,
        when=cxr_time,
        issued=s.at("2026-02-16 05:10"),
        reader=whitaker,
        performer=org,
        conclusion="No focal consolidation to suggest an infectious trigger.",
        conclusion_codes=[],
        report_text="XR CHEST 2 VIEWS\nIndication: DKA, evaluate for infection.\nFindings: "
        "Clear lungs. Normal heart size. No effusion.\nImpression: No acute process.",
    )
    note(
        s,
        "note-hp",
        patient_=pt,
        stay=stay,
        kind=H_AND_P,
        title="Admission H&P",
        when=s.at("2026-02-16 05:30"),
        author=whitaker,
        org=org,
        text=(
            "ADMISSION H&P\n"
            "64F with type 2 diabetes (A1c 9.8% in 11/2025) on metformin 1,000 mg twice daily, "
            "2 days of polyuria, vomiting and abdominal pain. Glucose 612, bicarbonate 8, anion "
            "gap 29, urine ketones large, creatinine 1.6 (baseline 0.8). Lactate normal. "
            "CXR clear; no infection found.\n"
            "A/P: Diabetic ketoacidosis (type 2 diabetes), severe volume depletion, AKI.\n"
            "- DKA protocol: insulin infusion, IV fluids, potassium replacement.\n"
            "- Hold metformin (AKI, acidosis).\n"
            "- Endocrinology consult; diabetes education."
        ),
    )
    note(
        s,
        "note-progress",
        patient_=pt,
        stay=stay,
        kind=PROGRESS_NOTE,
        title="Hospitalist Progress Note",
        when=s.at("2026-02-18 10:15"),
        author=whitaker,
        org=org,
        text=(
            "PROGRESS NOTE - Hospital day 3\n"
            "Anion gap closed on 2/17 (11); insulin drip stopped 2 hours after glargine 20 units. "
            "Eating well. POC glucose 149-182.\n"
            "Medication plan (with Dr. Iyer, endocrinology): metformin stopped - recent "
            "ketoacidosis and AKI; not to be resumed until endocrinology review. New: insulin "
            "glargine 20 units nightly and insulin lispro correction scale before meals. Insulin "
            "pen teaching completed; glucometer supplies ordered.\n"
            "Follow-up: endocrinology clinic in 1 week."
        ),
    )
    appointment(
        s,
        "appt-endocrinology",
        patient_=pt,
        clinician=iyer,
        place=clinic,
        start=s.at("2026-02-26 10:30"),
        minutes=40,
        created=s.at("2026-02-18 15:30"),
        service=concept("Endocrinology", snomed("394583002", "Endocrinology (qualifier value)")),
        description="New insulin regimen after diabetic ketoacidosis",
        reasons=[diabetes],
        instructions="Bring your glucose log and insulin pens.",
    )

    # A second patient in the same export: one clinic visit, no hospital stay.
    tyler = patient(
        s,
        "patient-tyler",
        mrn=("http://highplains.example.org/fhir/sid/mrn", "HP3108852"),
        given=["Tyler", "James"],
        family="Nguyen",
        gender="male",
        birth_date="1981-04-05",
        home=address("731 Cottonwood Lane", "Evans", "CO", "80620", use="home"),
        phone="970-555-0176",
        race=("2028-9", "Asian"),
        ethnicity=("2186-5", "Not Hispanic or Latino"),
        marital=("S", "Never Married"),
        gp=ortega,
        org=org,
        updated=s.at("2026-01-28 16:00"),
    )
    office = encounter(
        s,
        "tyler-visit",
        patient_=tyler,
        cls="AMB",
        type_=concept("Office Visit", snomed("185349003", "Encounter for check up (procedure)")),
        start=s.at("2026-01-28 15:00"),
        end=s.at("2026-01-28 15:25"),
        org=org,
        place=family_clinic,
        participants=[("ATND", ortega)],
        reason_codes=[
            concept("Annual physical", snomed("185349003", "Encounter for check up (procedure)"))
        ],
    )
    tyler_htn = condition(
        s,
        "tyler-htn",
        patient_=tyler,
        text="Essential hypertension",
        codes=[
            icd10("I10", "Essential (primary) hypertension"),
            snomed("59621000", "Essential hypertension (disorder)"),
        ],
        recorded="2026-01-28",
        onset="2026-01-28",
        recorder=ortega,
    )
    vitals(
        s,
        "tyler-vitals",
        patient_=tyler,
        stay=office,
        when=s.at("2026-01-28 15:05"),
        nurse=scott,
        heart_rate=74,
        bp=(148, 94),
        resp_rate=14,
        temp_c=36.6,
        spo2=99,
        weight_kg=88.9,
        flags={"bp": "H"},
    )
    med_request(
        s,
        "tyler-lisinopril",
        patient_=tyler,
        drug=med_concept(
            "lisinopril 10 mg tablet", rxnorm("314076", "lisinopril 10 MG Oral Tablet")
        ),
        category="outpatient",
        authored=s.at("2026-01-28 15:20"),
        requester=ortega,
        stay=office,
        reasons=[tyler_htn],
        instruction=dosage(
            "Take 1 tablet (10 mg) by mouth daily.",
            dose=quantity(10, "mg"),
            every=(1, 1, "d"),
            route=ORAL,
        ),
        supply=dispense("2026-01-28", "2027-01-28", quantity(90, "tablet", "{tbl}"), 90, refills=3),
        course="continuous",
    )
    allergy(
        s,
        "tyler-allergy",
        patient_=tyler,
        code=concept("Peanut", snomed("762952008", "Peanut (substance)")),
        category="food",
        criticality="high",
        reaction=(concept("Anaphylaxis", snomed("39579001", "Anaphylaxis (disorder)")), "severe"),
        recorded=s.at("2026-01-28 15:08"),
        recorder=ortega,
    )
    return s
