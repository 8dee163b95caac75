"""Clinical words the verifier recognises even when the chart never mentions them.

The verifier checks names against the stay's own facts; these lists catch what a model invents
from outside the chart: a drug (by name, or by the stem its class shares), or a serious
diagnosis. A word found here must be supported by a fact the sentence cites. The lists are
deliberately common names, not a terminology: a site can extend them.
"""

from __future__ import annotations

import re

DRUGS = frozenset(
    """
    acetaminophen paracetamol ibuprofen naproxen aspirin celecoxib diclofenac ketorolac
    morphine hydromorphone oxycodone hydrocodone fentanyl tramadol codeine methadone buprenorphine
    naloxone gabapentin pregabalin duloxetine amitriptyline nortriptyline sertraline fluoxetine
    citalopram escitalopram paroxetine venlafaxine bupropion mirtazapine trazodone quetiapine
    olanzapine risperidone haloperidol aripiprazole lithium valproate lamotrigine levetiracetam
    phenytoin carbamazepine lorazepam diazepam alprazolam clonazepam midazolam zolpidem melatonin
    warfarin heparin enoxaparin apixaban rivaroxaban dabigatran edoxaban clopidogrel ticagrelor
    prasugrel alteplase metoprolol atenolol carvedilol bisoprolol propranolol labetalol
    lisinopril enalapril ramipril captopril losartan valsartan irbesartan candesartan
    sacubitril amlodipine nifedipine diltiazem verapamil hydralazine clonidine nitroglycerin
    isosorbide digoxin amiodarone sotalol dofetilide furosemide bumetanide torsemide
    hydrochlorothiazide chlorthalidone spironolactone eplerenone atorvastatin simvastatin
    rosuvastatin pravastatin ezetimibe insulin metformin glipizide glyburide glimepiride
    sitagliptin linagliptin empagliflozin dapagliflozin canagliflozin liraglutide semaglutide
    dulaglutide pioglitazone levothyroxine methimazole prednisone prednisolone
    methylprednisolone dexamethasone hydrocortisone fludrocortisone albuterol ipratropium
    tiotropium salmeterol formoterol fluticasone budesonide montelukast amoxicillin ampicillin
    penicillin piperacillin tazobactam cefazolin ceftriaxone cefepime cephalexin cefuroxime
    ceftazidime meropenem ertapenem imipenem vancomycin linezolid daptomycin clindamycin
    azithromycin clarithromycin erythromycin doxycycline minocycline tetracycline
    ciprofloxacin levofloxacin moxifloxacin metronidazole nitrofurantoin sulfamethoxazole
    trimethoprim gentamicin tobramycin amikacin rifampin isoniazid fluconazole voriconazole
    micafungin acyclovir valacyclovir oseltamivir remdesivir omeprazole pantoprazole
    esomeprazole lansoprazole famotidine ranitidine ondansetron metoclopramide prochlorperazine
    promethazine docusate senna sennosides bisacodyl polyethylene lactulose loperamide
    simethicone potassium magnesium calcium ferrous folic cyanocobalamin thiamine vitamin
    allopurinol colchicine febuxostat methotrexate hydroxychloroquine tamsulosin finasteride
    oxybutynin sildenafil alendronate risedronate denosumab cisplatin carboplatin paclitaxel
    doxorubicin cyclophosphamide tacrolimus cyclosporine mycophenolate azathioprine
    epinephrine norepinephrine vasopressin dopamine dobutamine phenylephrine propofol
    ketamine etomidate succinylcholine rocuronium neostigmine sugammadex
    """.split()
)

DIAGNOSES = frozenset(
    """
    pneumonia sepsis septic stroke infarction embolism thrombosis fracture cancer carcinoma
    lymphoma leukemia metastasis diabetes ketoacidosis hypoglycemia hyperglycemia copd asthma
    bronchitis influenza covid meningitis encephalitis endocarditis pericarditis myocarditis
    cardiomyopathy arrhythmia fibrillation flutter tachycardia bradycardia hypertension
    hypotension shock cirrhosis hepatitis pancreatitis cholecystitis appendicitis diverticulitis
    colitis obstruction perforation hemorrhage bleeding anemia thrombocytopenia neutropenia
    dehydration hyponatremia hypernatremia hypokalemia hyperkalemia delirium dementia seizure
    epilepsy depression psychosis overdose cellulitis osteomyelitis abscess dialysis
    """.split()
)

_DRUG_STEMS = re.compile(
    r"\b[a-z]{3,}(?:olol|pril|sartan|statin|prazole|cillin|mycin|floxacin|cycline|parin|farin|"
    r"xaban|gatran|dipine|tidine|oxetine|azepam|azolam|codone|morphone|profen|coxib|semide|"
    r"thiazide|gliptin|gliflozin|glutide|ximab|zumab|tinib|ciclovir|navir)\b"
)
_WORD = re.compile(r"[a-z][a-z\-]+")


def clinical_words(text: str) -> set[str]:
    """Drug and diagnosis words in a text (lowercased): by name or by a drug-class stem."""
    lowered = text.lower()
    words = set(_WORD.findall(lowered))
    found = {w for w in words if w in DRUGS or w in DIAGNOSES}
    found.update(match.group(0) for match in _DRUG_STEMS.finditer(lowered))
    return found


def is_drug(word: str) -> bool:
    """A drug name or a word with a drug-class stem."""
    return word in DRUGS or bool(_DRUG_STEMS.fullmatch(word))
