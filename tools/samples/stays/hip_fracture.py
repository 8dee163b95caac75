"""``stays/hip-fracture.json``: femoral neck fracture and hemiarthroplasty, discharged to a
skilled nursing facility (HAPI-style ids)."""

from __future__ import annotations

from tools.samples.administrative import address, location, organization, patient, practitioner
from tools.samples.codes import (
    ABO,
    CBC,
    CHEST_XRAY_PROCEDURE,
    CREATININE,
    G_DL,
    H_AND_P,
    HEMOGLOBIN,
    INR,
    IV,
    K_UL,
    MG_DL,
    OLD_SUMMARY_MARKER,
    ORAL,
    PAIN,
    PHYSICIAN_DISCHARGE_SUMMARY,
    PLATELETS,
    PROCEDURE_NOTE,
    PROGRESS_NOTE,
    RADIOLOGY_REPORT,
    RATIO,
    RH,
    SUBCUT,
    XR_CHEST,
)
from tools.samples.conditions import allergy, condition, procedure
from tools.samples.datatypes import coding, concept, cpt, icd10, quantity, rxnorm, snomed
from tools.samples.encounters import encounter, hospitalize
from tools.samples.follow_up import appointment, goal
from tools.samples.ids import hapi_id
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
from tools.samples.systems import TERMINOLOGY


def build_hip_fracture() -> Sample:
    """83-year-old woman, left femoral neck fracture, hemiarthroplasty, 5 days (HAPI ids)."""
    s = Sample("hip-fracture", hapi_id, standard_utc_offset=-8)
    org = organization(
        s,
        "org",
        "Cedar Hollow Community Hospital",
        npi="1497360528",
        address=address("700 Orchard Grade Road", "Santa Rosa", "CA", "95404"),
        phone="707-555-0190",
    )
    ward = location(s, "ortho", "CHCH 3 South Orthopedics", org=org, role=("HOSP", "Hospital"))
    theatre = location(
        s,
        "or-4",
        "CHCH Operating Room 4",
        org=org,
        role=("HOSP", "Hospital"),
        physical=("ro", "Room"),
    )
    ortho_clinic = location(
        s,
        "ortho-clinic",
        "Cedar Hollow Orthopedic Clinic",
        org=org,
        role=("OF", "Outpatient facility"),
        physical=("ro", "Room"),
    )
    family_clinic = location(
        s,
        "family-clinic",
        "Cedar Hollow Family Medicine",
        org=org,
        role=("FMC", "Family medicine clinic"),
        physical=("ro", "Room"),
    )
    snf_org = organization(
        s,
        "snf",
        "Willow Creek Rehabilitation and Nursing Center",
        npi="1356029847",
        address=address("48 Willow Creek Lane", "Santa Rosa", "CA", "95405"),
        phone="707-555-0134",
    )
    snf = location(
        s,
        "snf-site",
        "Willow Creek Rehabilitation and Nursing Center",
        org=snf_org,
        role=("SNF", "Skilled nursing facility"),
        physical=("bu", "Building"),
    )
    quintero = practitioner(
        s, "quintero", "Rafael", "Quintero", suffix="MD", npi="1174839206", gender="male"
    )
    fischer = practitioner(
        s, "fischer", "Naomi", "Fischer", suffix="MD", npi="1285930471", gender="female"
    )
    park = practitioner(s, "park", "Daniel", "Park", suffix="MD", npi="1922074586", gender="male")
    morgan = practitioner(
        s, "morgan", "Tess", "Morgan", suffix="RN", npi="1013648297", gender="female"
    )
    kapoor = practitioner(
        s, "kapoor", "Anil", "Kapoor", suffix="PT", npi="1548203769", gender="male"
    )
    pt = patient(
        s,
        "patient",
        mrn=("http://cedarhollow.example.org/fhir/sid/mrn", "CH-7730415"),
        given=["Margaret", "Ann"],
        family="Lindqvist",
        gender="female",
        birth_date="1942-11-03",
        home=address("15 Vintage Oak Court", "Santa Rosa", "CA", "95409", use="home"),
        phone="707-555-0162",
        race=("2106-3", "White"),
        ethnicity=("2186-5", "Not Hispanic or Latino"),
        marital=("W", "Widowed"),
        gp=park,
        org=org,
        updated=s.at("2026-05-16 11:20"),
    )
    admitted, discharged = s.at("2026-05-11 19:20"), s.at("2026-05-16 10:45")
    visit = encounter(
        s,
        "pcp-visit",
        patient_=pt,
        cls="AMB",
        type_=concept("Office Visit", snomed("185349003", "Encounter for check up (procedure)")),
        start=s.at("2026-04-02 10:00"),
        end=s.at("2026-04-02 10:30"),
        org=org,
        place=family_clinic,
        participants=[("ATND", park)],
    )
    stay = encounter(
        s,
        "stay",
        patient_=pt,
        cls="IMP",
        type_=concept("Inpatient", snomed("32485007", "Hospital admission (procedure)")),
        start=admitted,
        end=discharged,
        org=org,
        place=ward,
        participants=[("ADM", fischer), ("ATND", quintero), ("DIS", fischer)],
        reason_codes=[concept("Left hip pain after fall", snomed("1912002", "Fall (event)"))],
        version="9",
        updated=s.at("2026-05-16 11:20"),
    )
    fracture = condition(
        s,
        "dx-fracture",
        patient_=pt,
        text="Closed fracture of left femoral neck",
        codes=[
            icd10(
                "S72.002A",
                "Fracture of unspecified part of neck of left femur, initial encounter for "
                "closed fracture",
            ),
            snomed("5913000", "Fracture of neck of femur (disorder)"),
        ],
        recorded=s.at("2026-05-11 20:30"),
        onset=s.at("2026-05-11 16:45"),
        stay=stay,
        recorder=fischer,
    )
    hypotension = condition(
        s,
        "dx-hypotension",
        patient_=pt,
        text="Hypotension",
        codes=[
            icd10("I95.9", "Hypotension, unspecified"),
            snomed("45007003", "Low blood pressure (disorder)"),
        ],
        recorded=s.at("2026-05-13 08:10"),
        onset=s.at("2026-05-13 06:00"),
        stay=stay,
        recorder=fischer,
    )
    anemia = condition(
        s,
        "dx-anemia",
        patient_=pt,
        text="Acute blood loss anemia",
        codes=[
            icd10("D62", "Acute posthemorrhagic anemia"),
            snomed("271737000", "Anemia (disorder)"),
        ],
        recorded=s.at("2026-05-13 08:12"),
        onset=s.at("2026-05-12 18:00"),
        stay=stay,
        recorder=fischer,
    )
    osteoporosis = condition(
        s,
        "pl-osteoporosis",
        patient_=pt,
        text="Age-related osteoporosis",
        codes=[
            icd10("M81.0", "Age-related osteoporosis without current pathological fracture"),
            snomed("64859006", "Osteoporosis (disorder)"),
        ],
        recorded="2019-02-14",
        onset="2019-02-14",
        recorder=park,
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
        recorded="2012-06-01",
        onset="2012-06-01",
        recorder=park,
    )
    condition(
        s,
        "pl-zoster",
        patient_=pt,
        text="Herpes zoster",
        codes=[
            icd10("B02.9", "Zoster without complications"),
            snomed("4740000", "Herpes zoster (disorder)"),
        ],
        recorded="2017-09-05",
        onset="2017-09-03",
        abatement="2017-10-10",
        recorder=park,
    )
    hospitalize(
        stay,
        reasons=[fracture],
        diagnoses=[(fracture, "DD"), (anemia, "DD"), (hypotension, "DD")],
        admit_source=("emd", "From accident/emergency department"),
        disposition=("snf", "Skilled nursing facility"),
        disposition_text="Discharged to skilled nursing facility",
        destination=snf,
    )
    allergy(
        s,
        "allergy-sulfa",
        patient_=pt,
        code=concept("Sulfonamide antibiotics", snomed("387406002", "Sulfonamide (substance)")),
        category="medication",
        criticality="low",
        reaction=(concept("Rash", snomed("271807003", "Eruption of skin (disorder)")), "mild"),
        onset="1988",
        recorded=s.at("2015-03-20 09:40"),
        recorder=park,
    )

    # Home medications.
    alendronate = med_concept(
        "alendronate 70 mg tablet", rxnorm("904419", "alendronic acid 70 MG Oral Tablet")
    )
    amlodipine = med_concept(
        "amlodipine 5 mg tablet", rxnorm("197361", "amlodipine 5 MG Oral Tablet")
    )
    tab = ("tablet", "{tbl}")
    alendronate_sig = dosage(
        "Take 1 tablet (70 mg) by mouth once a week on Sunday morning with a full glass of "
        "water, 30 minutes before food; stay upright.",
        dose=quantity(70, "mg"),
        every=(1, 1, "wk"),
        route=ORAL,
    )
    med_request(
        s,
        "home-alendronate",
        patient_=pt,
        drug=alendronate,
        category="outpatient",
        authored=s.at("2026-04-02 10:22"),
        requester=park,
        stay=visit,
        reasons=[osteoporosis],
        instruction=alendronate_sig,
        supply=dispense("2026-04-02", "2027-04-02", quantity(12, *tab), 84, refills=3),
        course="continuous",
    )
    med_statement(
        s,
        "home-amlodipine",
        patient_=pt,
        drug=amlodipine,
        status="stopped",
        status_reason=concept("Hypotension", snomed("45007003", "Low blood pressure (disorder)")),
        start="2012-06-01",
        end=s.at("2026-05-13 08:00"),
        asserted=s.at("2026-05-11 20:05"),
        source=pt,
        reasons=[htn],
        note="Held for hypotension (BP 94/56) after surgery; discontinued, do not restart "
        "until reviewed by primary care.",
        instruction=dosage(
            "Take 1 tablet (5 mg) by mouth daily.",
            dose=quantity(5, "mg"),
            every=(1, 1, "d"),
            route=ORAL,
        ),
    )

    # Inpatient medications.
    enoxaparin = medication(
        s,
        "med-enoxaparin",
        text="enoxaparin 40 mg/0.4 mL prefilled syringe",
        code=rxnorm("854235", "0.4 ML enoxaparin sodium 100 MG/ML Prefilled Syringe"),
        form=concept(
            "Prefilled syringe",
            snomed("1197451009", "Solution for injection in pre-filled syringe (dose form)"),
        ),
        ingredient=concept("enoxaparin sodium", rxnorm("67108", "enoxaparin")),
        strength=(quantity(100, "mg"), quantity(1, "mL")),
    )
    oxycodone = med_concept(
        "oxycodone 5 mg tablet", rxnorm("1049621", "oxycodone hydrochloride 5 MG Oral Tablet")
    )
    acetaminophen = med_concept(
        "acetaminophen 500 mg tablet", rxnorm("198440", "acetaminophen 500 MG Oral Tablet")
    )
    docusate = med_concept(
        "docusate sodium 100 mg capsule", rxnorm("1115005", "docusate sodium 100 MG Oral Capsule")
    )
    cefazolin = med_concept("ceFAZolin 2 g IV", rxnorm("2180", "cefazolin"))
    ip_cefazolin = med_request(
        s,
        "ip-cefazolin",
        patient_=pt,
        drug=cefazolin,
        category="inpatient",
        status="completed",
        authored=s.at("2026-05-11 22:00"),
        requester=quintero,
        stay=stay,
        instruction=dosage(
            "2 g IV within 60 minutes before incision, then every 8 hours for 2 doses.",
            dose=quantity(2, "g"),
            every=(3, 1, "d"),
            route=IV,
        ),
    )
    for index, when in enumerate(["2026-05-12 08:40", "2026-05-12 16:40", "2026-05-13 00:40"], 1):
        administer(
            s,
            f"mar-cefazolin-{index}",
            patient_=pt,
            stay=stay,
            order=ip_cefazolin,
            when=s.at(when),
            nurse=morgan,
            dose=quantity(2, "g"),
            route=IV,
            text="2 g IV over 30 minutes",
        )
    ip_enoxaparin = med_request(
        s,
        "ip-enoxaparin",
        patient_=pt,
        drug=enoxaparin,
        category="inpatient",
        status="completed",
        authored=s.at("2026-05-12 11:30"),
        requester=quintero,
        stay=stay,
        reasons=[fracture],
        instruction=dosage(
            "40 mg subcutaneous daily, first dose 12 hours after surgery.",
            dose=quantity(40, "mg"),
            every=(1, 1, "d"),
            route=SUBCUT,
        ),
    )
    for index, day in enumerate(["2026-05-12", "2026-05-13", "2026-05-14", "2026-05-15"], 1):
        administer(
            s,
            f"mar-enoxaparin-{index}",
            patient_=pt,
            stay=stay,
            order=ip_enoxaparin,
            when=s.at(f"{day} 22:00"),
            nurse=morgan,
            dose=quantity(40, "mg"),
            route=SUBCUT,
            text="40 mg subcutaneous, abdomen",
        )
    ip_acetaminophen = med_request(
        s,
        "ip-acetaminophen",
        patient_=pt,
        drug=acetaminophen,
        category="inpatient",
        status="completed",
        authored=s.at("2026-05-11 20:40"),
        requester=fischer,
        stay=stay,
        instruction=dosage(
            "1,000 mg by mouth every 8 hours.",
            dose=quantity(1000, "mg"),
            every=(3, 1, "d"),
            route=ORAL,
        ),
    )
    for index, when in enumerate(
        [
            "2026-05-12 06:00",
            "2026-05-12 14:00",
            "2026-05-12 22:00",
            "2026-05-13 06:00",
            "2026-05-13 14:00",
            "2026-05-13 22:00",
        ],
        1,
    ):
        administer(
            s,
            f"mar-acetaminophen-{index}",
            patient_=pt,
            stay=stay,
            order=ip_acetaminophen,
            when=s.at(when),
            nurse=morgan,
            dose=quantity(1000, "mg"),
            route=ORAL,
            text="1,000 mg by mouth",
        )
    ip_oxycodone = med_request(
        s,
        "ip-oxycodone",
        patient_=pt,
        drug=oxycodone,
        category="inpatient",
        status="completed",
        authored=s.at("2026-05-12 11:30"),
        requester=quintero,
        stay=stay,
        instruction=dosage(
            "5 mg by mouth every 6 hours as needed for moderate to severe pain.",
            dose=quantity(5, "mg"),
            every=(1, 6, "h"),
            route=ORAL,
            as_needed=PAIN,
        ),
    )
    for index, when in enumerate(["2026-05-12 15:10", "2026-05-13 09:30", "2026-05-14 10:05"], 1):
        administer(
            s,
            f"mar-oxycodone-{index}",
            patient_=pt,
            stay=stay,
            order=ip_oxycodone,
            when=s.at(when),
            nurse=morgan,
            dose=quantity(5, "mg"),
            route=ORAL,
            text="5 mg by mouth for pain 7/10",
        )

    # Discharge prescriptions (alendronate unchanged; amlodipine stopped; four new).
    rx_time = s.at("2026-05-16 08:50")
    med_request(
        s,
        "dc-alendronate",
        patient_=pt,
        drug=alendronate,
        category="discharge",
        authored=rx_time,
        requester=fischer,
        stay=stay,
        reasons=[osteoporosis],
        instruction=alendronate_sig,
        supply=dispense("2026-05-16", "2027-05-16", quantity(4, *tab), 28, refills=2),
        course="continuous",
    )
    med_request(
        s,
        "dc-enoxaparin",
        patient_=pt,
        drug=enoxaparin,
        category="discharge",
        authored=rx_time,
        requester=quintero,
        stay=stay,
        reasons=[fracture],
        instruction=dosage(
            "Inject 40 mg under the skin once daily for 28 days (through 6/12/2026).",
            dose=quantity(40, "mg"),
            every=(1, 1, "d"),
            bound_days=28,
            route=SUBCUT,
        ),
        supply=dispense("2026-05-16", "2026-06-13", quantity(28, "syringe", "{syringe}"), 28),
        course="acute",
    )
    med_request(
        s,
        "dc-oxycodone",
        patient_=pt,
        drug=oxycodone,
        category="discharge",
        authored=rx_time,
        requester=quintero,
        stay=stay,
        reasons=[fracture],
        instruction=dosage(
            "Take 1 tablet (5 mg) by mouth every 6 hours as needed for severe pain.",
            dose=quantity(5, "mg"),
            every=(1, 6, "h"),
            route=ORAL,
            as_needed=PAIN,
        ),
        supply=dispense("2026-05-16", "2026-05-23", quantity(20, *tab), 5),
        course="acute",
    )
    med_request(
        s,
        "dc-acetaminophen",
        patient_=pt,
        drug=acetaminophen,
        category="discharge",
        authored=rx_time,
        requester=fischer,
        stay=stay,
        reasons=[fracture],
        instruction=dosage(
            "Take 2 tablets (1,000 mg) by mouth 3 times daily.",
            dose=quantity(1000, "mg"),
            every=(3, 1, "d"),
            route=ORAL,
        ),
        supply=dispense("2026-05-16", "2026-08-16", quantity(180, *tab), 30),
        course="acute",
    )
    med_request(
        s,
        "dc-docusate",
        patient_=pt,
        drug=docusate,
        category="discharge",
        authored=rx_time,
        requester=fischer,
        stay=stay,
        instruction=dosage(
            "Take 1 capsule (100 mg) by mouth 2 times daily while taking oxycodone.",
            dose=quantity(100, "mg"),
            every=(2, 1, "d"),
            route=ORAL,
        ),
        supply=dispense("2026-05-16", "2026-08-16", quantity(60, "capsule", "{capsule}"), 30),
        course="acute",
    )

    # Labs: hemoglobin falls after surgery, then holds; INR before surgery and after.
    hgb_rows = [
        ("2026-05-11 19:45", 12.1),
        ("2026-05-12 18:00", 9.4),
        ("2026-05-13 05:30", 8.6),
        ("2026-05-14 05:30", 8.7),
        ("2026-05-15 05:30", 8.9),
    ]
    for index, (when, value) in enumerate(hgb_rows, 1):
        moment = s.at(when)
        results = [
            lab(
                s,
                f"hgb-{index}",
                patient_=pt,
                code=HEMOGLOBIN,
                when=moment,
                stay=stay,
                value=value,
                unit=G_DL,
                low=12.0,
                high=15.5,
                performer=org,
                resulted_after=35,
            ),
            lab(
                s,
                f"plt-{index}",
                patient_=pt,
                code=PLATELETS,
                when=moment,
                stay=stay,
                value=[246, 198, 187, 205, 231][index - 1],
                unit=K_UL,
                low=150,
                high=400,
                performer=org,
                resulted_after=35,
            ),
        ]
        lab_report(
            s,
            f"cbc-{index}",
            patient_=pt,
            stay=stay,
            code=CBC,
            when=moment,
            results=results,
            performer=org,
        )
    for key, when, value in [
        ("inr-1", "2026-05-11 19:45", 1.0),
        ("inr-2", "2026-05-13 05:30", 1.1),
    ]:
        lab(
            s,
            key,
            patient_=pt,
            code=INR,
            when=s.at(when),
            stay=stay,
            value=value,
            unit=RATIO,
            low=0.9,
            high=1.1,
            performer=org,
            resulted_after=50,
        )
    for key, when, value in [
        ("creat-1", "2026-05-11 19:45", 0.8),
        ("creat-2", "2026-05-13 05:30", 0.9),
    ]:
        lab(
            s,
            key,
            patient_=pt,
            code=CREATININE,
            when=s.at(when),
            stay=stay,
            value=value,
            unit=MG_DL,
            low=0.5,
            high=1.0,
            performer=org,
        )
    type_time = s.at("2026-05-11 19:50")
    lab(
        s,
        "abo",
        patient_=pt,
        code=ABO,
        when=type_time,
        stay=stay,
        value_concept=concept("Blood group A", snomed("112144000", "Blood group A (finding)")),
        performer=org,
        resulted_after=75,
    )
    lab(
        s,
        "rh",
        patient_=pt,
        code=RH,
        when=type_time,
        stay=stay,
        value_concept=concept("Rh positive", snomed("165747007", "RhD positive (finding)")),
        performer=org,
        resulted_after=75,
    )

    for when, hr, bp, rr, temp, spo2, pain, flags in [
        ("2026-05-11 19:30", 96, (152, 84), 18, 36.7, 96, 8, {}),
        ("2026-05-12 12:30", 88, (118, 64), 16, 36.9, 95, 6, {}),
        ("2026-05-13 06:00", 98, (94, 56), 18, 37.2, 95, 4, {"bp": "L"}),
        ("2026-05-14 06:00", 86, (112, 64), 16, 36.9, 96, 3, {}),
        ("2026-05-15 06:00", 80, (118, 66), 16, 36.8, 97, 3, {}),
        ("2026-05-16 06:00", 78, (122, 68), 16, 36.7, 97, 2, {}),
    ]:
        vitals(
            s,
            f"vitals-{when}",
            patient_=pt,
            stay=stay,
            when=s.at(when),
            nurse=morgan,
            heart_rate=hr,
            bp=bp,
            resp_rate=rr,
            temp_c=temp,
            spo2=spo2,
            pain=pain,
            flags=flags,
        )
    vitals(
        s,
        "weight-1",
        patient_=pt,
        stay=stay,
        when=s.at("2026-05-11 19:30"),
        nurse=morgan,
        weight_kg=58.3,
    )

    cxr_time = s.at("2026-05-11 20:05")
    imaging_report(
        s,
        "cxr-preop",
        patient_=pt,
        stay=stay,
        category=RADIOLOGY_REPORT,
        code=XR_CHEST,
        when=cxr_time,
        issued=s.at("2026-05-11 21:02"),
        reader=fischer,
        performer=org,
        conclusion="No acute cardiopulmonary process. Mild cardiomegaly unchanged from 2023.",
        conclusion_codes=[],
        report_text=(
            "EXAM: Chest, PA and lateral (pre-operative).\n"
            "FINDINGS: Lungs clear. No effusion or pneumothorax. Mild cardiomegaly, stable. "
            "Aortic atherosclerotic calcification. Osteopenia.\n"
            "IMPRESSION: No acute cardiopulmonary process."
        ),
    )
    procedure(
        s,
        "proc-cxr",
        patient_=pt,
        stay=stay,
        text="Chest X-ray, 2 views (pre-operative)",
        codes=list(CHEST_XRAY_PROCEDURE),
        performed=cxr_time,
        performer=fischer,
    )
    surgery = procedure(
        s,
        "proc-hemiarthroplasty",
        patient_=pt,
        stay=stay,
        text="Left hip hemiarthroplasty (cemented bipolar)",
        codes=[
            cpt(
                "27125",
                "Hemiarthroplasty, hip, partial (eg, femoral stem prosthesis, bipolar arthroplasty)",  # noqa: E501
            )
        ],
        category=concept(
            "Surgical procedure", snomed("387713003", "Surgical procedure (procedure)")
        ),
        performed=(s.at("2026-05-12 09:15"), s.at("2026-05-12 10:40")),
        performer=quintero,
        place=theatre,
        reasons=[fracture],
        body_site=concept(
            "Left hip", snomed("287679003", "Left hip region structure (body structure)")
        ),
        outcome="Successful; estimated blood loss 350 mL",
    )
    procedure(
        s,
        "proc-pt",
        patient_=pt,
        stay=stay,
        text="Physical therapy evaluation and gait training",
        codes=[snomed("91251008", "Physical therapy procedure (regime/therapy)")],
        performed=(s.at("2026-05-13 10:00"), s.at("2026-05-13 10:45")),
        performer=kapoor,
        place=ward,
        reasons=[fracture],
    )

    note(
        s,
        "note-hp",
        patient_=pt,
        stay=stay,
        kind=H_AND_P,
        title="Hospitalist Admission H&P",
        when=s.at("2026-05-11 21:30"),
        author=fischer,
        org=org,
        text=(
            "ADMISSION HISTORY AND PHYSICAL\n"
            "CC: Left hip pain after a fall at home.\n"
            "HPI: 83-year-old woman with osteoporosis and hypertension tripped on a rug at about "
            "16:45, unable to bear weight. Left leg shortened and externally rotated. No head "
            "strike, no loss of consciousness.\n"
            "Meds: alendronate 70 mg weekly (Sundays), amlodipine 5 mg daily.\n"
            "Allergies: sulfonamide antibiotics (rash).\n"
            "Imaging: XR left hip - displaced subcapital femoral neck fracture (Garden IV).\n"
            "A/P: Closed displaced left femoral neck fracture. Orthopedics (Dr. Quintero) "
            "consulted - hemiarthroplasty tomorrow morning. NPO after midnight. Acetaminophen "
            "scheduled, oxycodone PRN. Type and screen. Pre-op CXR, ECG. Fall precautions."
        ),
    )
    note(
        s,
        "note-op",
        patient_=pt,
        stay=stay,
        kind=PROCEDURE_NOTE,
        title="Operative Note",
        when=s.at("2026-05-12 11:05"),
        author=quintero,
        org=org,
        text=(
            "OPERATIVE NOTE\n"
            "Preoperative diagnosis: Displaced left femoral neck fracture.\n"
            "Postoperative diagnosis: Same.\n"
            "Procedure: Left hip cemented bipolar hemiarthroplasty.\n"
            "Surgeon: Rafael Quintero, MD. Anesthesia: Spinal with sedation.\n"
            "Findings: Displaced subcapital fracture; femoral head 45 mm.\n"
            "EBL: 350 mL. Complications: None. Implants: cemented femoral stem size 3, "
            "bipolar head 45 mm.\n"
            "Plan: Weight bearing as tolerated, posterior hip precautions. Enoxaparin 40 mg daily "
            "for 28 days starting tonight. PT/OT from POD 1. Follow up in orthopedic clinic in 2 "
            "weeks for wound check and staple removal."
        ),
    )
    note(
        s,
        "note-progress-1",
        patient_=pt,
        stay=stay,
        kind=PROGRESS_NOTE,
        title="Hospitalist Progress Note",
        when=s.at("2026-05-13 11:40"),
        author=fischer,
        org=org,
        text=(
            "PROGRESS NOTE - POD 1\n"
            "Hypotensive this morning, BP 94/56, asymptomatic, after spinal anesthesia and "
            "blood loss. Hemoglobin 8.6 (pre-op 12.1). No transfusion needed; 500 mL LR bolus.\n"
            "Medication change: amlodipine 5 mg stopped because of hypotension - do not restart "
            "at discharge; PCP to reassess blood pressure.\n"
            "Plan: recheck CBC in the morning; PT evaluation today."
        ),
    )
    note(
        s,
        "note-progress-2",
        patient_=pt,
        stay=stay,
        kind=PROGRESS_NOTE,
        title="Hospitalist Progress Note",
        when=s.at("2026-05-15 10:20"),
        author=fischer,
        org=org,
        text=(
            "PROGRESS NOTE - POD 3\n"
            "Pain controlled (2-3/10). BP 118/66 off amlodipine. Hemoglobin stable at 8.9. "
            "Walked 20 feet with a front-wheeled walker and one assist.\n"
            "Plan: discharge to Willow Creek SNF tomorrow for rehabilitation. Goal: walk 50 feet "
            "with walker. Enoxaparin to complete 28 days. Bowel regimen while on oxycodone."
        ),
    )
    note(
        s,
        "note-draft-discharge-summary",
        patient_=pt,
        stay=stay,
        kind=PHYSICIAN_DISCHARGE_SUMMARY,
        title="Physician Discharge Summary (in progress)",
        when=s.at("2026-05-16 09:30"),
        author=fischer,
        org=org,
        doc_status="preliminary",
        text=(
            "PHYSICIAN DISCHARGE SUMMARY - DRAFT, NOT SIGNED\n"
            f"{OLD_SUMMARY_MARKER}.\n"
            "Started from a template; unreviewed."
        ),
    )
    goal(
        s,
        "goal-walk",
        patient_=pt,
        text="Walk 50 feet with walker",
        start="2026-05-15",
        category=concept(
            "Physiotherapy", coding(TERMINOLOGY + "goal-category", "physiotherapy", "Physiotherapy")
        ),
        target={
            "measure": concept("Ambulation distance with front-wheeled walker"),
            "detailString": "50 feet with front-wheeled walker, stand-by assist",
            "dueDate": "2026-06-12",
        },
        expressed_by=kapoor,
        addresses=[fracture],
    )
    appointment(
        s,
        "appt-ortho",
        patient_=pt,
        clinician=quintero,
        place=ortho_clinic,
        start=s.at("2026-05-29 14:00"),
        minutes=20,
        created=s.at("2026-05-15 16:00"),
        service=concept(
            "Orthopedics", snomed("394801008", "Trauma and orthopedics (qualifier value)")
        ),
        description="Post-operative visit: wound check and staple removal, 2 weeks after "
        "hemiarthroplasty",
        reasons=[surgery],
        instructions="The skilled nursing facility will arrange transport.",
    )
    return s
