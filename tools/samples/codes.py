"""Shared codes: observation categories, routes, note types, order categories, common
laboratory tests and their units, and the marker every existing discharge summary carries."""

from __future__ import annotations

from tools.samples.datatypes import coding, concept, cpt, loinc, snomed
from tools.samples.systems import DOCUMENT_CATEGORY, OBSERVATION_CATEGORY, V2_0074

# Observation categories, interpretations, routes and other shared concepts.
LAB = concept("Laboratory", coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory"))
VITAL = concept("Vital Signs", coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs"))
IMAGING = concept("Imaging", coding(OBSERVATION_CATEGORY, "imaging", "Imaging"))
PROCEDURE_OBS = concept("Procedure", coding(OBSERVATION_CATEGORY, "procedure", "Procedure"))
INTERPRETATIONS = {
    "H": "High",
    "L": "Low",
    "HH": "Critical high",
    "LL": "Critical low",
    "N": "Normal",
    "A": "Abnormal",
}
ORAL = concept("Oral", snomed("26643006", "Oral route (qualifier value)"))
IV = concept("Intravenous", snomed("47625008", "Intravenous route (qualifier value)"))
SUBCUT = concept("Subcutaneous", snomed("34206005", "Subcutaneous route (qualifier value)"))
INHALED = concept("Inhalation", snomed("447694001", "Respiratory tract route (qualifier value)"))
PAIN = concept("Pain", snomed("22253000", "Pain (finding)"))
CLINICAL_NOTE = concept(
    "Clinical Note", coding(DOCUMENT_CATEGORY, "clinical-note", "Clinical Note")
)
NO_KNOWN_ALLERGY = concept(
    "No Known Allergies", snomed("716186003", "No known allergy (situation)")
)
LAB_REPORT = concept("Laboratory", coding(V2_0074, "LAB", "Laboratory"))
RADIOLOGY_REPORT = concept("Radiology", coding(V2_0074, "RAD", "Radiology"))
CARDIAC_ECHO_REPORT = concept("Cardiac Ultrasound", coding(V2_0074, "CUS", "Cardiac Ultrasound"))

# Note types (LOINC document ontology).
H_AND_P = ("34117-2", "History and physical note")
PROGRESS_NOTE = ("11506-3", "Progress note")
PROCEDURE_NOTE = ("28570-0", "Procedure note")
DISCHARGE_SUMMARY = ("18842-5", "Discharge summary")
NURSE_DISCHARGE_SUMMARY = ("34745-0", "Nurse Discharge summary")
PHYSICIAN_DISCHARGE_SUMMARY = ("11490-0", "Physician Discharge summary")

# The marker every existing discharge summary carries; nothing else in the samples says lithium.
OLD_SUMMARY_MARKER = "OLD-DISCHARGE-SUMMARY-MARKER: patient was started on lithium"


LAB_ORDER = concept("Laboratory", snomed("108252007", "Laboratory procedure (procedure)"))
IMAGING_ORDER = concept("Imaging", snomed("363679005", "Imaging (procedure)"))
REFERRAL = concept("Referral", snomed("3457005", "Patient referral (procedure)"))

# Common laboratory codes: (LOINC, LOINC display, short name) and units (shown, UCUM).
CREATININE = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "Creatinine")
POTASSIUM = ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "Potassium")
SODIUM = ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "Sodium")
CHLORIDE = ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "Chloride")
BICARBONATE = ("1963-8", "Bicarbonate [Moles/volume] in Serum or Plasma", "Bicarbonate")
BUN = ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "BUN")
GLUCOSE = ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "Glucose")
MAGNESIUM = ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "Magnesium")
ANION_GAP = ("33037-3", "Anion gap in Serum or Plasma", "Anion gap")
NT_PROBNP = (
    "33762-6",
    "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma",
    "NT-proBNP",
)
WBC = ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "WBC")
HEMOGLOBIN = ("718-7", "Hemoglobin [Mass/volume] in Blood", "Hemoglobin")
PLATELETS = ("777-3", "Platelets [#/volume] in Blood by Automated count", "Platelets")
INR = ("6301-6", "INR in Platelet poor plasma by Coagulation assay", "INR")
PROCALCITONIN = ("33959-8", "Procalcitonin [Mass/volume] in Serum or Plasma", "Procalcitonin")
LACTATE = ("2524-7", "Lactate [Moles/volume] in Serum or Plasma", "Lactate")
BLOOD_CULTURE = ("600-7", "Bacteria identified in Blood by Culture", "Blood culture")
TROPONIN = (
    "89579-7",
    "Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method",
    "Troponin I, high sensitivity",
)
HBA1C = ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hemoglobin A1c")
POC_GLUCOSE = ("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer", "POC glucose")
URINE_KETONES = ("2514-8", "Ketones [Presence] in Urine by Test strip", "Urine ketones")
SARS_COV_2 = (
    "94500-6",
    "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory system specimen by NAA with probe "
    "detection",
    "SARS-CoV-2 RNA",
)
ABO = ("883-9", "ABO group [Type] in Blood", "ABO group")
RH = ("10331-7", "Rh [Type] in Blood", "Rh type")
BMP = ("51990-0", "Basic metabolic panel - Blood", "Basic metabolic panel")
CBC = ("58410-2", "CBC panel - Blood by Automated count", "CBC")
MG_DL = ("mg/dL", "mg/dL")
MMOL_L = ("mmol/L", "mmol/L")
PG_ML = ("pg/mL", "pg/mL")
NG_ML = ("ng/mL", "ng/mL")
NG_L = ("ng/L", "ng/L")
G_DL = ("g/dL", "g/dL")
K_UL = ("10*3/uL", "10*3/uL")
RATIO = ("INR", "{INR}")
PERCENT = ("%", "%")
NOT_DETECTED = concept("Not detected", snomed("260415000", "Not detected (qualifier value)"))

XR_CHEST = concept("XR Chest 2 Views", loinc("36643-5", "XR Chest 2 Views"))
CHEST_XRAY_PROCEDURE = (
    cpt("71046", "Radiologic examination, chest; 2 views"),
    snomed("399208008", "Plain chest X-ray (procedure)"),
)
ECG_PROCEDURE = (
    cpt(
        "93000",
        "Electrocardiogram, routine ECG with at least 12 leads; with interpretation and report",
    ),
    snomed("29303009", "Electrocardiographic procedure (procedure)"),
)
