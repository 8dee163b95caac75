"""``stays/chest-pain-observation.json``: an observation stay whose sections are empty
(nothing pending, no follow-up, no allergy recorded), with an earlier emergency visit
(Epic-style ids)."""

from __future__ import annotations

from tools.samples.administrative import address, location, organization, patient, practitioner
from tools.samples.codes import (
    BMP,
    CBC,
    CHEST_XRAY_PROCEDURE,
    CREATININE,
    ECG_PROCEDURE,
    G_DL,
    GLUCOSE,
    H_AND_P,
    HEMOGLOBIN,
    K_UL,
    LAB_ORDER,
    MG_DL,
    MMOL_L,
    NG_L,
    ORAL,
    POTASSIUM,
    PROCEDURE_OBS,
    PROGRESS_NOTE,
    RADIOLOGY_REPORT,
    SODIUM,
    TROPONIN,
    WBC,
    XR_CHEST,
)
from tools.samples.conditions import condition, procedure
from tools.samples.datatypes import (
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
from tools.samples.follow_up import service_request
from tools.samples.ids import BASE_URL, epic_id
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
from tools.samples.times import later


def build_chest_pain_observation() -> Sample:
    """52-year-old man, chest pain observation stay (OBSENC), 1 day: nothing pending, nothing
    new, no allergies recorded at all, no follow-up (Epic-style ids)."""
    s = Sample("chest-pain-observation", epic_id, standard_utc_offset=-5)
    org = organization(
        s,
        "org",
        "Ashford Valley Medical Center",
        npi="1669203874",
        address=address("1 Valley Medical Plaza", "Hagerstown", "MD", "21740"),
        phone="301-555-0110",
    )
    obs_unit = location(s, "cdu", "AVMC Clinical Decision Unit", org=org, role=("HOSP", "Hospital"))
    ed = location(s, "ed", "AVMC Emergency Department", org=org, role=("ER", "Emergency room"))
    sorensen = practitioner(
        s, "sorensen", "Julia", "Sørensen", suffix="MD", npi="1740295836", gender="female"
    )
    menon = practitioner(s, "menon", "Ravi", "Menon", suffix="MD", npi="1851306947", gender="male")
    brooks = practitioner(
        s, "brooks", "Angela", "Brooks", suffix="MD", npi="1962417058", gender="female"
    )
    liu = practitioner(s, "liu", "Kevin", "Liu", suffix="MD", npi="1073528169", gender="male")
    nurse = practitioner(
        s, "owusu", "Abena", "Owusu", suffix="RN", npi="1184639270", gender="female"
    )
    pt = patient(
        s,
        "patient",
        mrn=("urn:oid:1.2.840.114350.1.13.552.2.7.5.737384.14", "E8820467"),
        given=["Marcus", "Adebayo"],
        family="Okafor",
        gender="male",
        birth_date="1974-02-11",
        home=address("62 Antietam Street", "Hagerstown", "MD", "21740", use="home"),
        phone="301-555-0187",
        race=("2054-5", "Black or African American"),
        ethnicity=("2186-5", "Not Hispanic or Latino"),
        marital=("M", "Married"),
        gp=brooks,
        org=org,
        updated=s.at("2026-09-15 13:30"),
    )
    # An emergency visit months earlier, for an ankle sprain: not the stay.
    emer = encounter(
        s,
        "ed-visit",
        patient_=pt,
        cls="EMER",
        type_=concept(
            "Emergency", snomed("4525004", "Emergency department patient visit (procedure)")
        ),
        start=s.at("2026-04-18 19:05"),
        end=s.at("2026-04-18 21:40"),
        org=org,
        place=ed,
        participants=[("ATND", liu)],
        reason_codes=[
            concept("Left ankle injury", snomed("44465007", "Sprain of ankle (disorder)"))
        ],
    )
    condition(
        s,
        "dx-ankle",
        patient_=pt,
        text="Sprain of left ankle",
        codes=[
            icd10("S93.402A", "Sprain of unspecified ligament of left ankle, initial encounter"),
            snomed("44465007", "Sprain of ankle (disorder)"),
        ],
        recorded=s.at("2026-04-18 20:30"),
        onset=s.at("2026-04-18 17:30"),
        abatement="2026-05-20",
        stay=emer,
        recorder=liu,
    )
    vitals(
        s,
        "ed-vitals",
        patient_=pt,
        stay=emer,
        when=s.at("2026-04-18 19:10"),
        nurse=nurse,
        heart_rate=76,
        bp=(134, 82),
        resp_rate=16,
        temp_c=36.7,
        spo2=99,
    )

    admitted, discharged = s.at("2026-09-14 16:20"), s.at("2026-09-15 13:05")
    stay = encounter(
        s,
        "stay",
        patient_=pt,
        cls="OBSENC",
        type_=concept(
            "Observation",
            coding(f"{BASE_URL}/CodeSystem/encounter-type", "OBS", "Hospital observation stay"),
        ),
        start=admitted,
        end=discharged,
        org=org,
        place=obs_unit,
        participants=[("ADM", sorensen), ("ATND", sorensen), ("DIS", sorensen)],
        reason_codes=[concept("Chest pain", snomed("29857009", "Chest pain (finding)"))],
        version="4",
        updated=s.at("2026-09-15 13:30"),
    )
    chest_pain = condition(
        s,
        "dx-chest-pain",
        patient_=pt,
        text="Chest pain, unspecified",
        codes=[
            icd10("R07.9", "Chest pain, unspecified"),
            snomed("29857009", "Chest pain (finding)"),
        ],
        recorded=s.at("2026-09-14 17:05"),
        onset=s.at("2026-09-14 13:30"),
        stay=stay,
        recorder=sorensen,
    )
    lipids = condition(
        s,
        "pl-hyperlipidemia",
        patient_=pt,
        text="Hyperlipidemia",
        codes=[
            icd10("E78.5", "Hyperlipidemia, unspecified"),
            snomed("55822004", "Hyperlipidemia (disorder)"),
        ],
        recorded="2018-01-22",
        onset="2018-01-22",
        recorder=brooks,
    )
    condition(
        s,
        "pl-prediabetes",
        patient_=pt,
        text="Prediabetes",
        codes=[icd10("R73.03", "Prediabetes"), snomed("714628002", "Prediabetes (finding)")],
        recorded="2023-03-14",
        onset="2023-03-14",
        recorder=brooks,
    )
    condition(
        s,
        "pl-bronchitis",
        patient_=pt,
        text="Acute bronchitis",
        codes=[
            icd10("J20.9", "Acute bronchitis, unspecified"),
            snomed("10509002", "Acute bronchitis (disorder)"),
        ],
        recorded="2019-12-03",
        onset="2019-11-28",
        abatement="2019-12-20",
        recorder=brooks,
    )
    hospitalize(
        stay,
        reasons=[chest_pain],
        diagnoses=[(chest_pain, "DD")],
        admit_source=("emd", "From accident/emergency department"),
        disposition=("home", "Home"),
        disposition_text="Home or Self Care",
    )

    atorvastatin = medication(
        s,
        "med-atorvastatin-40",
        text="atorvastatin 40 mg tablet",
        code=rxnorm("617311", "atorvastatin 40 MG Oral Tablet"),
        form=concept("Tablet", snomed("385055001", "Tablet (basic dose form)")),
        ingredient=concept("atorvastatin", rxnorm("83367", "atorvastatin")),
        strength=(quantity(40, "mg"), quantity(1, "tablet", "{tbl}")),
    )
    aspirin = med_concept("aspirin 81 mg tablet", rxnorm("243670", "aspirin 81 MG Oral Tablet"))
    tab = ("tablet", "{tbl}")
    atorvastatin_sig = dosage(
        "Take 1 tablet (40 mg total) by mouth daily at bedtime.",
        dose=quantity(40, "mg"),
        every=(1, 1, "d"),
        when=["HS"],
        route=ORAL,
    )
    aspirin_sig = dosage(
        "Take 1 tablet (81 mg total) by mouth daily.",
        dose=quantity(81, "mg"),
        every=(1, 1, "d"),
        route=ORAL,
    )
    med_request(
        s,
        "home-atorvastatin",
        patient_=pt,
        drug=atorvastatin,
        category="community",
        authored=s.at("2026-01-20 11:15"),
        requester=brooks,
        reasons=[lipids],
        instruction=atorvastatin_sig,
        supply=dispense("2026-01-20", "2027-01-20", quantity(90, *tab), 90, refills=3),
        course="continuous",
    )
    med_statement(
        s,
        "home-aspirin",
        patient_=pt,
        drug=aspirin,
        start="2021-06-01",
        asserted=s.at("2026-09-14 17:00"),
        source=pt,
        note="Over the counter.",
        instruction=aspirin_sig,
    )
    ip_aspirin = med_request(
        s,
        "ip-aspirin-load",
        patient_=pt,
        drug=med_concept(
            "aspirin 81 mg chewable tablet", rxnorm("243670", "aspirin 81 MG Oral Tablet")
        ),
        category="inpatient",
        status="completed",
        authored=s.at("2026-09-14 16:25"),
        requester=sorensen,
        stay=stay,
        reasons=[chest_pain],
        instruction=dosage("Chew 324 mg once.", dose=quantity(324, "mg"), route=ORAL),
    )
    administer(
        s,
        "mar-aspirin",
        patient_=pt,
        stay=stay,
        order=ip_aspirin,
        when=s.at("2026-09-14 16:31"),
        nurse=nurse,
        dose=quantity(324, "mg"),
        route=ORAL,
        text="324 mg (4 x 81 mg) chewed",
    )
    ip_atorvastatin = med_request(
        s,
        "ip-atorvastatin",
        patient_=pt,
        drug=atorvastatin,
        category="inpatient",
        status="completed",
        authored=s.at("2026-09-14 18:10"),
        requester=sorensen,
        stay=stay,
        instruction=atorvastatin_sig,
    )
    administer(
        s,
        "mar-atorvastatin",
        patient_=pt,
        stay=stay,
        order=ip_atorvastatin,
        when=s.at("2026-09-14 21:30"),
        nurse=nurse,
        dose=quantity(40, "mg"),
        route=ORAL,
        text="40 mg by mouth",
    )
    rx_time = s.at("2026-09-15 11:40")
    med_request(
        s,
        "dc-atorvastatin",
        patient_=pt,
        drug=atorvastatin,
        category="discharge",
        authored=rx_time,
        requester=sorensen,
        stay=stay,
        reasons=[lipids],
        instruction=atorvastatin_sig,
        supply=dispense("2026-09-15", "2027-09-15", quantity(90, *tab), 90, refills=3),
        course="continuous",
    )
    med_request(
        s,
        "dc-aspirin",
        patient_=pt,
        drug=aspirin,
        category="discharge",
        authored=rx_time,
        requester=sorensen,
        stay=stay,
        instruction=aspirin_sig,
        course="continuous",
    )

    # Serial high-sensitivity troponin (0, 2 and 6 hours): all below the 99th percentile.
    troponin_order = service_request(
        s,
        "order-troponin",
        patient_=pt,
        stay=stay,
        code=concept("Troponin I, high sensitivity (serial)", loinc(*TROPONIN[:2])),
        category=LAB_ORDER,
        status="completed",
        authored=s.at("2026-09-14 16:22"),
        requester=sorensen,
        priority="stat",
    )
    for key, when, value in [
        ("trop-0h", "2026-09-14 16:35", 4),
        ("trop-2h", "2026-09-14 18:35", 5),
        ("trop-6h", "2026-09-14 22:35", 4),
    ]:
        lab(
            s,
            key,
            patient_=pt,
            code=TROPONIN,
            when=s.at(when),
            stay=stay,
            value=value,
            unit=NG_L,
            high=34,
            range_text="<=34 ng/L (99th percentile, male)",
            performer=org,
            resulted_after=50,
            based_on=troponin_order,
        )
    first = s.at("2026-09-14 16:35")
    lab_report(
        s,
        "bmp-1",
        patient_=pt,
        stay=stay,
        code=BMP,
        when=first,
        performer=org,
        results=[
            lab(
                s,
                "na-1",
                patient_=pt,
                code=SODIUM,
                when=first,
                stay=stay,
                value=139,
                unit=MMOL_L,
                low=135,
                high=145,
                performer=org,
            ),
            lab(
                s,
                "k-1",
                patient_=pt,
                code=POTASSIUM,
                when=first,
                stay=stay,
                value=4.2,
                unit=MMOL_L,
                low=3.5,
                high=5.1,
                performer=org,
            ),
            lab(
                s,
                "creat-1",
                patient_=pt,
                code=CREATININE,
                when=first,
                stay=stay,
                value=1.0,
                unit=MG_DL,
                low=0.7,
                high=1.3,
                performer=org,
            ),
            lab(
                s,
                "glucose-1",
                patient_=pt,
                code=GLUCOSE,
                when=first,
                stay=stay,
                value=112,
                unit=MG_DL,
                low=70,
                high=99,
                performer=org,
            ),
        ],
    )
    lab_report(
        s,
        "cbc-1",
        patient_=pt,
        stay=stay,
        code=CBC,
        when=first,
        performer=org,
        results=[
            lab(
                s,
                "wbc-1",
                patient_=pt,
                code=WBC,
                when=first,
                stay=stay,
                value=6.8,
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
                when=first,
                stay=stay,
                value=14.6,
                unit=G_DL,
                low=13.2,
                high=17.1,
                performer=org,
                resulted_after=25,
            ),
        ],
    )
    for when, hr, bp, rr, spo2 in [
        ("2026-09-14 16:25", 88, (146, 90), 18, 98),
        ("2026-09-14 22:00", 72, (132, 82), 16, 98),
        ("2026-09-15 06:00", 68, (128, 80), 14, 99),
    ]:
        vitals(
            s,
            f"vitals-{when}",
            patient_=pt,
            stay=stay,
            when=s.at(when),
            nurse=nurse,
            heart_rate=hr,
            bp=bp,
            resp_rate=rr,
            temp_c=36.8,
            spo2=spo2,
        )
    vitals(
        s,
        "weight-1",
        patient_=pt,
        stay=stay,
        when=s.at("2026-09-14 16:25"),
        nurse=nurse,
        weight_kg=92.7,
    )

    ecg_time = s.at("2026-09-14 16:28")
    procedure(
        s,
        "proc-ecg",
        patient_=pt,
        stay=stay,
        text="12-lead ECG",
        codes=list(ECG_PROCEDURE),
        performed=ecg_time,
        performer=sorensen,
        reasons=[chest_pain],
    )
    s.add(
        "Observation",
        "ecg-impression",
        {
            "status": "final",
            "category": [PROCEDURE_OBS],
            "code": concept("ECG impression", loinc("8601-7", "EKG impression")),
            "subject": ref(pt),
            "encounter": ref(stay, display=False),
            "effectiveDateTime": ecg_time,
            "issued": later(ecg_time, minutes=12),
            "performer": [ref(sorensen)],
            "valueString": "Normal sinus rhythm, rate 86. Normal axis. No ST-segment or T-wave "
            "changes. No prior for comparison.",
        },
    )
    stress_order = service_request(
        s,
        "order-stress",
        patient_=pt,
        stay=stay,
        code=concept(
            "Exercise treadmill stress test",
            cpt(
                "93015",
                "Cardiovascular stress test using maximal or submaximal treadmill or bicycle "
                "exercise, continuous electrocardiographic monitoring, and/or pharmacological "
                "stress; with supervision, interpretation and report",
            ),
        ),
        category=concept(
            "Cardiology procedure", snomed("76746007", "Cardiovascular stress testing (procedure)")
        ),
        status="completed",
        authored=s.at("2026-09-14 18:40"),
        requester=sorensen,
        reasons=[chest_pain],
    )
    stress = procedure(
        s,
        "proc-stress",
        patient_=pt,
        stay=stay,
        text="Exercise treadmill stress test (Bruce protocol)",
        codes=[
            stress_order["code"]["coding"][0],
            snomed("76746007", "Cardiovascular stress testing (procedure)"),
        ],
        performed=(s.at("2026-09-15 09:00"), s.at("2026-09-15 09:40")),
        performer=menon,
        place=obs_unit,
        reasons=[chest_pain],
        outcome="Negative for ischemia",
    )
    stress["basedOn"] = [ref(stress_order, display=False)]
    s.add(
        "Observation",
        "stress-result",
        {
            "basedOn": [ref(stress_order, display=False)],
            "status": "final",
            "category": [PROCEDURE_OBS],
            "code": concept(
                "Stress test impression",
                loinc("18752-6", "Exercise stress test study"),
            ),
            "subject": ref(pt),
            "encounter": ref(stay, display=False),
            "effectiveDateTime": s.at("2026-09-15 09:00"),
            "issued": s.at("2026-09-15 10:15"),
            "performer": [ref(menon)],
            "valueString": "Bruce protocol, 10 min 30 s, 12.8 METs, 94% of maximum predicted "
            "heart rate. No chest pain. No ischemic ST changes. Normal blood pressure response. "
            "Low risk (Duke treadmill score +10).",
        },
    )
    cxr_time = s.at("2026-09-14 16:50")
    imaging_report(
        s,
        "cxr-report",
        patient_=pt,
        stay=stay,
        category=RADIOLOGY_REPORT,
        code=XR_CHEST,
        when=cxr_time,
        issued=s.at("2026-09-14 17:32"),
        reader=menon,
        performer=org,
        conclusion="No acute cardiopulmonary abnormality.",
        conclusion_codes=[],
        report_text=(
            "EXAM: XR CHEST 2 VIEWS\nINDICATION: Chest pain.\nFINDINGS: Normal heart size. "
            "Clear lungs. No effusion or pneumothorax. No acute osseous abnormality.\n"
            "IMPRESSION: No acute cardiopulmonary abnormality."
        ),
    )
    procedure(
        s,
        "proc-cxr",
        patient_=pt,
        stay=stay,
        text="Chest X-ray, 2 views",
        codes=list(CHEST_XRAY_PROCEDURE),
        performed=cxr_time,
        performer=sorensen,
        reasons=[chest_pain],
    )

    note(
        s,
        "note-hp",
        patient_=pt,
        stay=stay,
        kind=H_AND_P,
        title="Observation Admission H&P",
        when=s.at("2026-09-14 17:45"),
        author=sorensen,
        org=org,
        text=(
            "OBSERVATION H&P\n"
            "CC: Chest pressure.\n"
            "HPI: 52-year-old man with hyperlipidemia and prediabetes; 20 minutes of substernal "
            "pressure at rest while mowing, no radiation, resolved spontaneously. Non-smoker.\n"
            "Meds: atorvastatin 40 mg at bedtime, aspirin 81 mg daily.\n"
            "Allergies: not recorded.\n"
            "ECG: NSR, no ischemic changes. hs-troponin I 4 ng/L (0 h).\n"
            "HEART score 3 (low). Plan: serial troponin at 2 and 6 h, telemetry, exercise "
            "stress test in the morning if troponins negative. Aspirin 324 mg given."
        ),
    )
    note(
        s,
        "note-progress",
        patient_=pt,
        stay=stay,
        kind=PROGRESS_NOTE,
        title="Observation Progress Note",
        when=s.at("2026-09-15 11:20"),
        author=sorensen,
        org=org,
        text=(
            "PROGRESS NOTE\n"
            "No recurrent chest pain overnight; telemetry without arrhythmia. Troponin I 4 -> 5 "
            "-> 4 ng/L (all below the 99th percentile). Exercise treadmill test: 12.8 METs, no "
            "ischemia, Duke score +10.\n"
            "Assessment: Chest pain, non-cardiac, likely musculoskeletal.\n"
            "Plan: discharge home on the same medications (atorvastatin 40 mg nightly, aspirin "
            "81 mg daily). No new prescriptions. Return for recurrent chest pain."
        ),
    )
    return s
