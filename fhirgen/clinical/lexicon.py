"""Which results, drugs and procedures belong to which problem: a small clinical lexicon.

A hospital course is told problem by problem: for heart failure the reader wants the
natriuretic peptide, the weight and the diuretics; for pneumonia the temperature, the white
count, the chest film and the antibiotics. Each ``Family`` below says how to recognise a problem
(ICD-10-CM code prefixes, SNOMED CT codes, words of its name) and which stay items it claims
(words of a result's, a drug's, a procedure's or a report's name). The lists follow the usual
problem-based assessment of inpatient medicine (e.g. the hospitalist curricula of the Society
of Hospital Medicine's Core Competencies); they are deliberately short and common, not a
terminology, and a site can extend them.

``claim_order`` decides who gets an item several problems could claim: the most specific
problem first (hypokalaemia claims potassium before heart failure does), broad ones last.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

_ANTIBIOTICS = (
    r"\w*cillin|cef\w+|ceph\w+|\w*penem|\w*mycin|\w*floxacin|\w*cycline|vancomycin|linezolid|"
    r"daptomycin|metronidazole|sulfamethoxazole|trimethoprim|nitrofurantoin|clavulan\w*|"
    r"tazobactam|aztreonam|fosfomycin|rifampin"
)
_OPIOIDS = r"morphine|hydromorphone|oxycodone|hydrocodone|fentanyl|tramadol|codeine|tapentadol"
_ANTICOAGULANTS = (
    r"heparin|enoxaparin|dalteparin|fondaparinux|apixaban|rivaroxaban|dabigatran|edoxaban|warfarin"
)


@dataclass(frozen=True)
class Family:
    """One kind of problem and what the stay's record shows about it."""

    key: str
    icd10: tuple[str, ...] = ()  # ICD-10(-CM) code prefixes, e.g. "I50"
    snomed: tuple[str, ...] = ()  # SNOMED CT concept ids
    names: str = ""  # regex on the problem's name (lower-case)
    results: str = ""  # regex on a result's names: the measurements that follow it
    drugs: str = ""  # regex on a drug's names: its treatment
    procedures: str = ""  # regex on procedure and report names: its work-up and treatment
    claim_order: int = 2  # 0 claims first (most specific)
    # When a patient should call or come back, in plain words (patient instructions); no
    # numbers, drug or diagnosis names, which the verifier would not find in the chart.
    warning: str = ""

    def claims(self, what: str, names: Iterable[str]) -> bool:
        """Whether an item (``result``, ``drug`` or ``procedure``) with these names is ours."""
        pattern = {"result": self.results, "drug": self.drugs, "procedure": self.procedures}[what]
        return bool(pattern) and any(_search(pattern, n) for n in names)


FAMILIES: tuple[Family, ...] = (
    Family(
        "hypokalemia",
        icd10=("E87.6",),
        snomed=("43339004",),
        names=r"hypokal[a]?emia|low potassium",
        results=r"potassium",
        drugs=r"potassium",
        claim_order=0,
    ),
    Family(
        "hyperkalemia",
        icd10=("E87.5",),
        snomed=("14140009",),
        names=r"hyperkal[a]?emia|high potassium",
        results=r"potassium",
        drugs=r"patiromer|zirconium|polystyrene|calcium gluconate",
        claim_order=0,
    ),
    Family(
        "sodium",
        icd10=("E87.0", "E87.1", "E22.2"),
        snomed=("89627008", "39355002"),
        names=r"hypo?natr[a]?emia|hypernatr[a]?emia|siadh",
        results=r"sodium|osmolality",
        drugs=r"tolvaptan|sodium chloride",
        claim_order=0,
    ),
    Family(
        "magnesium",
        icd10=("E83.4",),
        names=r"hypomagnes[a]?emia",
        results=r"magnesium",
        drugs=r"magnesium",
        claim_order=0,
    ),
    Family(
        "diabetes",
        icd10=("E08", "E09", "E10", "E11", "E13", "R73", "E16.2"),
        snomed=("420422005", "44054006", "46635009", "15777000", "302866003"),
        names=r"diabet|ketoacidosis|hyperglyc|hypoglyc|prediabetes|\bdka\b",
        results=r"glucose|bicarbonate|carbon dioxide|\bco2\b|anion gap|ketone|hydroxybutyrate|"
        r"\bph\b|a1c|hemoglobin a1c|osmolality",
        drugs=r"insulin|metformin|glipizide|glyburide|glimepiride|\w*gliptin|\w*gliflozin|"
        r"\w*glutide|pioglitazone|dextrose",
        claim_order=1,
        warning=(
            "Check your blood sugar as you were shown. Call your doctor if it stays high, or "
            "if you are sick and cannot eat or drink."
        ),
    ),
    Family(
        "kidney",
        icd10=("N17", "N18", "N19", "R94.4"),
        snomed=("14669001", "709044004", "433144002", "431855005", "431856006"),
        names=r"kidney|renal|nephropathy|\baki\b|\bckd\b|uremia",
        results=r"creatinine|\begfr\b|glomerular|\bbun\b|urea|urine output",
        drugs=r"sodium bicarbonate|sevelamer|calcitriol",
        procedures=r"dialysis|renal|kidney|bladder scan",
        claim_order=1,
        warning="Call your doctor if you pass much less urine than usual, or your legs swell.",
    ),
    Family(
        "gi-bleed",
        icd10=("K92.0", "K92.1", "K92.2", "K62.5", "K25.0", "K25.4", "K26.0", "K26.4", "I85.01"),
        names=r"bleed|h[a]?emorrhage|melena|melaena|h[a]?ematemesis|hematochezia",
        results=r"h[a]?emoglobin(?! a1c)|hematocrit|haematocrit|platelet|\binr\b|prothrombin",
        drugs=r"pantoprazole|omeprazole|esomeprazole|octreotide|tranexamic|red (blood )?cell",
        procedures=r"endoscop|gastroscop|\begd\b|colonoscop|transfusion|banding",
        claim_order=1,
        warning="Get help at once if you vomit blood, or your stools turn black or bloody.",
    ),
    Family(
        "anemia",
        icd10=("D50", "D51", "D52", "D53", "D55", "D58", "D59", "D61", "D62", "D63", "D64"),
        snomed=("271737000",),
        names=r"an[a]?emia",
        results=r"h[a]?emoglobin(?! a1c)|hematocrit|haematocrit|ferritin|\bmcv\b|reticulocyte|"
        r"iron|transferrin|b12|folate",
        drugs=r"ferrous|iron|epoetin|darbepoetin|cyanocobalamin|folic",
        procedures=r"transfusion",
        claim_order=1,
        warning="Call your doctor if you feel very tired, dizzy or short of breath.",
    ),
    Family(
        "heart-failure",
        icd10=("I50", "I11.0", "I13.0", "I13.2", "I42"),
        snomed=("84114007", "88805009", "417996009", "42343007", "85232009"),
        names=r"heart failure|cardiac failure|cardiomyopathy|\bchf\b|\bhfref\b|\bhfpef\b",
        results=r"nt-?pro-?bnp|\bbnp\b|natriuretic|body weight|^weight",
        drugs=r"furosemide|bumetanide|torsemide|metolazone|spironolactone|eplerenone|"
        r"sacubitril|dapagliflozin|empagliflozin|carvedilol|metoprolol succinate|digoxin|"
        r"ivabradine|hydralazine|isosorbide",
        procedures=r"echocardiog|\becho\b|chest x-?ray|radiograph of chest|chest radiograph|"
        r"xr chest",
        claim_order=2,
        warning=(
            "Weigh yourself each morning. Call your doctor if your weight goes up quickly, "
            "your legs or belly swell, or you get more short of breath."
        ),
    ),
    Family(
        "acs",
        icd10=("I20", "I21", "I22", "I24", "I25", "R07"),
        snomed=("22298006", "29857009", "194828000", "57054005", "401303003", "401314000"),
        names=r"chest pain|angina|myocardial infarction|coronary|\bacs\b|\bstemi\b|\bnstemi\b",
        results=r"troponin|\bck-?mb\b|creatine kinase",
        drugs=r"aspirin|clopidogrel|ticagrelor|prasugrel|nitroglycerin|heparin|"
        r"atorvastatin|rosuvastatin",
        procedures=r"\becg\b|\bekg\b|electrocardiog|stress|angiogra|catheteri[sz]ation|"
        r"\bpci\b|coronary|echocardiog",
        claim_order=2,
        warning=(
            "Call an ambulance at once if chest pain comes back and does not go away with rest."
        ),
    ),
    Family(
        "arrhythmia",
        icd10=("I47", "I48", "I49", "R00"),
        snomed=("49436004", "5370000", "6456007"),
        names=r"fibrillation|flutter|tachycardia|bradycardia|arrhythmia|palpitation",
        results=r"heart rate|pulse|\btsh\b|thyroid",
        drugs=r"amiodarone|diltiazem|verapamil|metoprolol|digoxin|sotalol|dofetilide|"
        r"flecainide|apixaban|rivaroxaban|dabigatran|edoxaban|warfarin",
        procedures=r"\becg\b|\bekg\b|electrocardiog|cardioversion|ablation|pacemaker|holter",
        claim_order=2,
        warning="Call your doctor if your heart races or skips, you feel faint, or you pass out.",
    ),
    Family(
        "copd",
        icd10=("J41", "J42", "J43", "J44", "J45", "J46"),
        snomed=("13645005", "195967001", "185086009", "87433001"),
        names=r"chronic obstructive|copd|emphysema|asthma|chronic bronchitis|"
        r"obstructive bronchitis",
        results=r"\bpco2\b|carbon dioxide \[partial|\bph\b|\bpo2\b|eosinophil|peak flow|fev1",
        drugs=r"albuterol|salbutamol|levalbuterol|ipratropium|tiotropium|salmeterol|formoterol|"
        r"fluticasone|budesonide|prednisone|prednisolone|methylprednisolone|montelukast|"
        r"theophylline|nebuli[sz]",
        procedures=r"nebuli[sz]|bipap|cpap|non-?invasive ventilation|\bniv\b|spirometr|"
        r"inhal",
        claim_order=2,
        warning=(
            "Call your doctor if you are more short of breath than usual, or need your "
            "reliever inhaler more often."
        ),
    ),
    Family(
        "covid",
        icd10=("U07.1",),
        snomed=("840539006",),
        names=r"covid|sars-cov-2|coronavirus",
        results=r"sars-cov|d-dimer|fibrin d-dimer|ferritin|oxygen saturation|\bspo2\b|"
        r"c reactive|\bcrp\b|temperature",
        drugs=r"dexamethasone|remdesivir|tocilizumab|baricitinib",
        procedures=r"oxygen|ventilat|intubat|chest x-?ray|radiograph of chest|xr chest|"
        r"ct (of )?chest",
        claim_order=2,
        warning="Get help at once if you find it hard to breathe or your lips turn blue.",
    ),
    Family(
        "pneumonia",
        icd10=("J12", "J13", "J14", "J15", "J16", "J17", "J18", "J20", "J21", "J22", "J69"),
        snomed=("233604007", "385093006", "10509002", "195951007"),
        names=r"pneumonia|pneumonitis|bronchitis|lower respiratory|chest infection|"
        r"respiratory infection",
        results=r"temperature|\bwbc\b|leukocytes|white blood|c reactive|\bcrp\b|procalcitonin|"
        r"oxygen saturation|\bspo2\b|respiratory rate|sputum|blood culture|legionella|"
        r"pneumococcal",
        drugs=_ANTIBIOTICS,
        procedures=r"chest x-?ray|radiograph of chest|chest radiograph|xr chest|ct (of )?chest|"
        r"oxygen|sputum|blood culture",
        claim_order=2,
        warning=(
            "Call your doctor if your fever comes back, your cough gets worse, or you find it"
            " hard to breathe."
        ),
    ),
    Family(
        "sepsis",
        icd10=("A40", "A41", "R65.2", "R65.1", "R78.81"),
        snomed=("91302008", "76571007", "10001005"),
        names=r"sepsis|septic|bacter[a]?emia|septicemia",
        results=r"lactate|lactic|\bwbc\b|leukocytes|temperature|heart rate|blood pressure|"
        r"procalcitonin|blood culture|c reactive|\bcrp\b",
        drugs=_ANTIBIOTICS + r"|norepinephrine|vasopressin|phenylephrine|epinephrine",
        procedures=r"blood culture|central line|culture",
        claim_order=3,
        warning=(
            "Get help at once if you get a fever or chills, feel confused, or feel much more "
            "unwell."
        ),
    ),
    Family(
        "uti",
        icd10=("N39.0", "N10", "N30", "N12"),
        snomed=("68566005", "45816000", "38822007"),
        names=r"urinary tract infection|pyelonephritis|cystitis|\buti\b",
        results=r"urine|urinalysis|leukocyte esterase|nitrite|\bwbc\b|temperature",
        drugs=_ANTIBIOTICS,
        procedures=r"urine culture|urinalysis|catheter",
        claim_order=2,
        warning=(
            "Call your doctor if it burns when you pass urine, or you get a fever or pain in "
            "your back."
        ),
    ),
    Family(
        "cellulitis",
        icd10=("L03", "L02", "L08"),
        snomed=("128045006",),
        names=r"cellulitis|abscess|skin infection|soft tissue infection",
        results=r"\bwbc\b|leukocytes|temperature|c reactive|\bcrp\b",
        drugs=_ANTIBIOTICS,
        procedures=r"incision|drainage|debridement|wound",
        claim_order=2,
        warning="Call your doctor if the redness spreads, or the skin gets hotter or more painful.",
    ),
    Family(
        "hip-fracture",
        icd10=("S72", "S32", "S42", "S52", "S82", "M80", "M84.3", "M84.4"),
        snomed=("5913000", "263225007", "71620000"),
        names=r"fracture",
        results=r"h[a]?emoglobin(?! a1c)|hematocrit|pain|vitamin d|calcium",
        drugs=_OPIOIDS + r"|acetaminophen|paracetamol|enoxaparin|alendronate|calcium|"
        r"vitamin d|cholecalciferol",
        procedures=r"arthroplasty|hemiarthroplasty|fixation|\borif\b|pinning|nailing|reduction|"
        r"physical therap|physiotherap|occupational therap|x-?ray of (hip|pelvis|femur)|splint|"
        r"cast",
        claim_order=2,
        warning=(
            "Call your doctor if your wound gets red, hot or leaks, your leg swells, or the "
            "pain gets worse."
        ),
    ),
    Family(
        "stroke",
        icd10=("I60", "I61", "I62", "I63", "I64", "G45"),
        snomed=("230690007", "422504002", "266257000"),
        names=r"stroke|cerebral infarction|cerebrovascular|transient ischemic|\btia\b|"
        r"intracerebral|subarachnoid",
        results=r"nihss|glasgow",
        drugs=r"alteplase|tenecteplase|clopidogrel|aspirin|atorvastatin",
        procedures=r"ct (of )?(head|brain)|mri (of )?(head|brain)|thrombectomy|carotid|"
        r"swallow|speech",
        claim_order=2,
        warning=(
            "Call an ambulance at once if you get new weakness, a drooping face, or trouble "
            "speaking."
        ),
    ),
    Family(
        "hypoxemia",
        icd10=("R09.02", "J96", "R06.0"),
        snomed=("389087006", "409622000", "65710008"),
        names=r"hypox|respiratory failure|respiratory distress",
        results=r"oxygen saturation|\bspo2\b|\bpo2\b|\bpco2\b|respiratory rate|oxygen",
        drugs=r"oxygen",
        procedures=r"oxygen|ventilat|intubat|bipap|cpap|high[- ]flow",
        claim_order=1,
        warning="Get help at once if you find it hard to breathe or your lips turn blue.",
    ),
    Family(
        "hypotension",
        icd10=("I95", "R57"),
        snomed=("45007003", "28651003"),
        names=r"hypotensi|orthostatic|\bshock\b",
        results=r"blood pressure|systolic|diastolic|lactate",
        drugs=r"midodrine|fludrocortisone|norepinephrine|phenylephrine|vasopressin|"
        r"lactated ringer|sodium chloride 0.9|normal saline",
        claim_order=1,
        warning="Stand up slowly. Call your doctor if you feel faint or dizzy.",
    ),
    Family(
        "dehydration",
        icd10=("E86",),
        snomed=("34095006", "28560003"),
        names=r"dehydrat|hypovol[a]?emia|volume depletion",
        results=r"urine specific gravity|urine output",
        drugs=r"lactated ringer|sodium chloride|normal saline|dextrose|plasma-lyte",
        claim_order=2,
        warning=(
            "Drink enough to keep your urine pale. Call your doctor if you cannot keep fluids down."
        ),
    ),
    Family(
        "pain-opioids",
        icd10=("T40", "F11"),
        snomed=("55680006",),
        names=r"overdose|poisoning|opioid",
        drugs=r"naloxone|buprenorphine|methadone",
        claim_order=1,
        warning=(
            "Take your medicines only as your doctor told you. Get help at once if someone "
            "cannot wake you."
        ),
    ),
    Family(
        "cancer",
        icd10=("C", "D0"),
        snomed=("363346000", "254637007", "93761005"),
        names=r"carcinoma|cancer|neoplasm|malignan|lymphoma|leuk[a]?emia|tumou?r|myeloma|"
        r"sarcoma|melanoma|metasta",
        results=r"\bcea\b|\bpsa\b|\bca[- ]?125\b|\bca 19-9\b|alpha-fetoprotein|neutrophil",
        drugs=r"\w+platin\b|\w+taxel\b|\w+rubicin\b|\w+mab\b|\w+tinib\b|leuprolide|tamoxifen|"
        r"letrozole|anastrozole|cyclophosphamide|fluorouracil|capecitabine|gemcitabine|"
        r"etoposide|vincristine|methotrexate|ondansetron|filgrastim|pegfilgrastim",
        procedures=r"chemotherap|radiation|radiotherap|resection|biopsy|colostomy|ileostomy|"
        r"lobectomy|mastectomy|colectomy|prostatectomy|computed tomography|\bct\b|\bpet\b|"
        r"oncolog|port insertion",
        claim_order=3,
        warning="Call your care team if you get a fever, new pain, or cannot eat or drink.",
    ),
    Family(
        "dental",
        icd10=("K00", "K01", "K02", "K03", "K04", "K05", "K08"),
        snomed=("196416002", "109597000"),
        names=r"molar|tooth|teeth|dental|caries|gingiv|periodont",
        drugs=_OPIOIDS + r"|acetaminophen|paracetamol|ibuprofen|chlorhexidine|amoxicillin",
        procedures=r"tooth|teeth|dental|extraction|wisdom|oral surgery",
        claim_order=1,
        warning=(
            "Call your dentist if your mouth keeps oozing blood, or your face swells, or you "
            "get a fever."
        ),
    ),
    Family(
        "joint",
        icd10=("M15", "M16", "M17", "M19", "M23", "M24", "M25", "S83", "S86", "S43", "S46"),
        snomed=("239873007", "396275006", "444470001", "444448004", "263134004"),
        names=r"osteoarthritis|arthrosis|ligament|tendon|meniscus|sprain|dislocation of|"
        r"joint pain|arthropathy",
        drugs=_OPIOIDS + r"|acetaminophen|paracetamol|ibuprofen|naproxen|meloxicam|celecoxib|"
        r"enoxaparin",
        procedures=r"arthroplasty|joint replacement|knee replacement|hip replacement|arthroscop|"
        r"manipulation of joint|ligament|tendon|meniscectomy|physical therap|physiotherap",
        claim_order=1,
        warning=(
            "Call your doctor if your wound gets red, hot or leaks, your leg swells, or the "
            "pain gets worse."
        ),
    ),
    Family(
        "sleep-apnea",
        icd10=("G47.3",),
        snomed=("78275009", "73430006"),
        names=r"sleep apn[o]?ea",
        procedures=r"sleep apn|polysomnog|\bcpap\b|sleep study",
        claim_order=1,
    ),
    Family(
        "pain",
        icd10=("G43", "G44", "G89", "R51", "R52"),
        snomed=("82423001", "124171000119105", "37796009"),
        names=r"chronic pain|migraine|headache|\bpain\b",
        results=r"pain",
        drugs=_OPIOIDS + r"|acetaminophen|paracetamol|ibuprofen|naproxen|gabapentin|pregabalin|"
        r"sumatriptan|\w+triptan\b|topiramate|duloxetine",
        claim_order=3,
        warning="Call your doctor if your pain gets worse, or your medicine does not help.",
    ),
    Family(
        "hypertension",
        icd10=("I10", "I11", "I12", "I13", "I15", "I16"),
        snomed=("38341003", "59621000"),
        names=r"hypertensi",
        results=r"blood pressure|systolic|diastolic",
        drugs=r"amlodipine|nifedipine|\w*pril\b|\w*sartan\b|hydrochlorothiazide|chlorthalidone|"
        r"labetalol|hydralazine|clonidine",
        claim_order=3,
    ),
)


def family_of(codes: Iterable[str], names: Iterable[str]) -> Family | None:
    """The family of a condition, by its codes first and its names second (None if none fits)."""
    return _family_of(tuple(codes), tuple(names))


@lru_cache(maxsize=4096)
def _family_of(codes: tuple[str, ...], names: tuple[str, ...]) -> Family | None:
    plain = tuple(c.upper().replace(".", "") for c in codes if c)
    names = tuple(n.lower() for n in names)
    for family in FAMILIES:
        prefixes = tuple(p.replace(".", "") for p in family.icd10)
        if any(c.startswith(prefixes) or c in family.snomed for c in plain):
            return family
    for family in FAMILIES:
        if family.names and any(_search(family.names, n) for n in names):
            return family
    return None


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern).search(text.lower()) is not None


# Drug classes in which two drugs at discharge are usually a reconciliation error (duplicate
# therapy), by ingredient name. Combinations that are often intended (two opioids, basal and
# bolus insulin, aspirin with clopidogrel) are deliberately absent.
DUPLICATE_CLASSES: tuple[tuple[str, str], ...] = (
    ("renin-angiotensin blockers", r"\b\w+pril\b|\b\w+sartan\b|aliskiren"),
    ("statins", r"\b\w+vastatin\b"),
    ("beta blockers", r"\b\w+olol\b|carvedilol|labetalol"),
    ("proton pump inhibitors", r"\b\w+prazole\b"),
    ("anticoagulants", _ANTICOAGULANTS),
    ("NSAIDs", r"ibuprofen|naproxen|diclofenac|celecoxib|ketorolac|meloxicam|indomethacin"),
    ("SSRIs", r"sertraline|fluoxetine|citalopram|escitalopram|paroxetine|fluvoxamine"),
    ("loop diuretics", r"furosemide|bumetanide|torsemide"),
    ("sulfonylureas", r"glipizide|glyburide|glimepiride|gliclazide"),
    ("dihydropyridine calcium channel blockers", r"amlodipine|nifedipine|felodipine"),
)


def drug_class(ingredients: str) -> str | None:
    """The duplicate-therapy class of a drug (by its ingredient words), if it has one."""
    for name, pattern in DUPLICATE_CLASSES:
        if _search(pattern, ingredients):
            return name
    return None


# Social circumstances recorded as conditions (SNOMED "finding"s such as "Full-time employment",
# "Social isolation"): they belong in the social history, not among the active problems.
SOCIAL_HISTORY = (
    r"employment|employed|labou?r force|education|social isolation|limited social contact|"
    r"\bstress\b|abuse|violence|housing|homeless|unemploy|incarcerat|transport|insurance|"
    r"refugee|risk activity|lack of access|financial|food insecurity|caregiver|"
    r"criminal record|military service|not in labor"
)


def is_social_history(name: str) -> bool:
    """Whether a condition's name records social circumstances rather than a disease."""
    return _search(SOCIAL_HISTORY, name)
