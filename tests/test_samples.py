"""The sample stays shipped with fhirgen, read the way a clinician reviewing the drafts would."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from fhirgen.clinical.readability import flesch_reading_ease
from fhirgen.drafting.documents import DOCUMENT_KINDS, patient_instructions
from tests.conftest import SAMPLES
from tools.samples.build import build_all

HEART_FAILURE = "eu4L8PolKgWuJTua8jnJQwL3"
PNEUMONIA = "19436125"
HIP_FRACTURE = "551725"
CHEST_PAIN = "e0A7wIed4I7rHxOYugtFpwG3"
DKA = "fbe012e7-b755-5604-b808-307bae96a5d0"
ALL = (HEART_FAILURE, PNEUMONIA, HIP_FRACTURE, CHEST_PAIN, DKA)
SUMMARY, INSTRUCTIONS = "18842-5", "8653-8"  # LOINC types of the two documents


@pytest.fixture(scope="module")
def drafts(tmp_path_factory) -> Path:
    from click.testing import CliRunner

    from fhirgen.cli.main import cli

    out = tmp_path_factory.mktemp("samples") / "out"
    result = CliRunner().invoke(
        cli, ["generate", str(SAMPLES / "stays"), str(SAMPLES / "bulk"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert "5 stays drafted, 0 failed, 6 patient records read (1 without" in result.stderr
    assert "0 input errors, 0 warnings" in result.stderr
    return out


def _bundle(drafts: Path, encounter: str) -> dict:
    return json.loads((drafts / f"{encounter}.json").read_text())


def _resources(drafts: Path, encounter: str, rtype: str) -> list[dict]:
    return [
        e["resource"]
        for e in _bundle(drafts, encounter)["entry"]
        if e["resource"]["resourceType"] == rtype
    ]


def _document(drafts: Path, encounter: str, loinc: str = SUMMARY) -> dict:
    (document,) = [
        d
        for d in _resources(drafts, encounter, "DocumentReference")
        if d["type"]["coding"][0]["code"] == loinc
    ]
    return document


def _summary(drafts: Path, encounter: str, loinc: str = SUMMARY) -> str:
    document = _document(drafts, encounter, loinc)
    return base64.b64decode(document["content"][0]["attachment"]["data"]).decode()


def _instructions(drafts: Path, encounter: str) -> str:
    return _summary(drafts, encounter, INSTRUCTIONS)


# A section runs to the blank line before the next all-capitals title (a blank line may also
# stand between the paragraphs of one section).
_NEXT_SECTION = re.compile(r"\n\n(?=[A-Z0-9][A-Z0-9 ,/&()-]*\n)")


def _section(text: str, title: str) -> list[str]:
    body = text.split("\nSOURCES\n")[0] + "\n"
    lines = _NEXT_SECTION.split(body.split(f"\n{title.upper()}\n", 1)[1], maxsplit=1)[0]
    return [line for line in lines.splitlines() if line]


def _statements(text: str, title: str) -> list[str]:
    """A section's sentences without their citation marks."""
    return [
        re.sub(r"( \[\d+\])+$|(\[\d+\])+$", "", line).rstrip() for line in _section(text, title)
    ]


def _everything_written(drafts: Path, encounter: str) -> str:
    """All text the EHR would receive for a stay: attachments decoded, narrative included."""
    parts = [json.dumps(_bundle(drafts, encounter))]
    for document in _resources(drafts, encounter, "DocumentReference"):
        for content in document["content"]:
            parts.append(base64.b64decode(content["attachment"]["data"]).decode())
    return "\n".join(parts)


def test_samples_are_what_the_builder_writes(tmp_path):
    written = build_all(tmp_path)
    assert written
    for path in written:
        committed = SAMPLES / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} differs from its builder"


@pytest.mark.parametrize("encounter", ALL)
@pytest.mark.parametrize(
    ("kind", "loinc"), [("discharge-summary", SUMMARY), ("patient-instructions", INSTRUCTIONS)]
)
def test_every_section_is_present_and_says_something(drafts, encounter, kind, loinc):
    text = _summary(drafts, encounter, loinc)
    for spec in DOCUMENT_KINDS[kind].sections:
        lines = _section(text, spec.title)
        assert lines, spec.title
        assert all(line.rstrip().endswith("]") for line in lines), "every sentence cites"


def test_heart_failure_medication_reconciliation(drafts):
    lines = _section(_summary(drafts, HEART_FAILURE), "Discharge medications")
    assert [line.split(":")[0] for line in lines] == [
        "New at discharge",
        "Changed at discharge",
        "Changed at discharge",
        "Continued unchanged",
        "Stopped",
    ]
    assert lines[0].startswith("New at discharge: spironolactone 25 mg")
    assert (
        "furosemide 40 mg tablet" in lines[1] and "before admission: furosemide 20 mg" in lines[1]
    )
    assert "metoprolol succinate XL 50 mg" in lines[2] and "25 mg" in lines[2]
    assert lines[3].startswith("Continued unchanged: lisinopril 10 mg")
    assert lines[4].startswith("Stopped: ibuprofen 400 mg tablet")
    assert "Worsens heart failure" in lines[4]


def test_existing_discharge_summaries_never_reach_a_draft(drafts):
    for encounter in ALL:
        assert "lithium" not in _everything_written(drafts, encounter).lower(), encounter
    (provenance,) = _resources(drafts, HEART_FAILURE, "Provenance")
    cited = {e["what"]["reference"] for e in provenance["entity"]}
    assert "DocumentReference/emqVswJVb5W16XnABcuLhf73" not in cited


def test_instructions_in_a_note_change_nothing(drafts):
    # The pneumonia progress note says to add warfarin to the discharge medications.
    written = _everything_written(drafts, PNEUMONIA).lower()
    assert "warfarin" not in written
    lines = _section(_summary(drafts, PNEUMONIA), "Discharge medications")
    assert len(lines) == 3


def test_pneumonia_pending_culture_and_follow_ups(drafts):
    text = _summary(drafts, PNEUMONIA)
    assert _statements(text, "Results pending at discharge") == [
        "Blood culture: result not final at discharge (status preliminary, so far: No growth "
        "at 2 days)."
    ]
    follow_up = _section(text, "Follow-up")
    assert follow_up[0].startswith("Referral to primary care - hospital follow-up, due 22 Jan 2026")
    assert follow_up[1].startswith("XR Chest 2 Views, due 26 Feb 2026")
    assert _statements(text, "Allergies") == ["No known allergies."]


def test_empty_sections_say_so_plainly(drafts):
    text = _summary(drafts, CHEST_PAIN)
    assert _statements(text, "Follow-up") == [
        "No follow-up appointments or referrals are recorded."
    ]
    assert _statements(text, "Allergies") == ["No allergies are recorded."]
    assert _statements(text, "Results pending at discharge") == [
        "No results were pending at discharge."
    ]
    (plan,) = _resources(drafts, CHEST_PAIN, "CarePlan")
    assert "No care goals are recorded." in plan["text"]["div"]
    instructions = _instructions(drafts, CHEST_PAIN)
    # The same absences, in words a patient reads.
    assert _statements(instructions, "Appointments and tests") == [
        "No visits are booked for you yet.",
        "Ask your doctor when to come back.",
        "All your test results were back before you left the hospital.",
    ]
    assert _statements(instructions, "Your goals") == [
        "Your care team did not write down goals for you."
    ]


def test_hip_fracture_disposition_goal_and_care_plan(drafts):
    text = _summary(drafts, HIP_FRACTURE)
    assert _section(text, "Condition and disposition at discharge")[0].startswith(
        "Discharge disposition: Discharged to skilled nursing facility."
    )
    assert _statements(_instructions(drafts, HIP_FRACTURE), "Your goals") == [
        "Your goal: Walk 50 feet with walker."
    ]
    (plan,) = _resources(drafts, HIP_FRACTURE, "CarePlan")
    assert plan["goal"] and all(g["reference"].startswith("Goal/") for g in plan["goal"])
    activity_targets = [a["reference"]["reference"] for a in plan["activity"] if "reference" in a]
    assert any(t.startswith("Appointment/") for t in activity_targets)
    stopped = [a["detail"] for a in plan["activity"] if "detail" in a]
    assert any(d["status"] == "stopped" and "amlodipine" in d["description"] for d in stopped)


def test_bulk_export_stay(drafts):
    lines = _section(_summary(drafts, DKA), "Discharge medications")
    assert [line.split(":")[0] for line in lines] == [
        "New at discharge",
        "New at discharge",
        "Stopped",
    ]
    assert lines[2].startswith("Stopped: metformin 1000 mg tablet")


def test_eval_passes_on_the_samples(run_cli):
    result = run_cli("eval", SAMPLES / "stays", SAMPLES / "bulk", "--json")
    assert result.code == 0, result.stdout
    overall = json.loads(result.stdout)["overall"]
    assert (overall["stays"], overall["passed"]) == (5, 5)
    assert overall["mentioned"]["discharge_medications"] == [16, 16]


def test_offline_demo_drafts_the_samples_and_shows_one(tmp_path, run_cli):
    result = run_cli("demo", "--offline", "--out", tmp_path / "demo")
    assert result.code == 0, result.stderr
    assert sorted(p.stem for p in (tmp_path / "demo").glob("*.json")) == sorted(ALL)
    assert "5 stays drafted, 0 failed" in result.stdout
    assert "DISCHARGE SUMMARY - AI-GENERATED DRAFT" in result.stdout


def test_care_team_is_named_and_the_patient_is_not(drafts):
    course = _statements(_summary(drafts, HEART_FAILURE), "Hospital course")
    assert course[0] == (
        "4-day stay, 2–6 Mar 2026; care team: Thomas Okonkwo, MD (admitter); "
        "Priya Raman, MD (attender, discharger)."
    )
    assert "kowalczyk" not in _everything_written(drafts, HEART_FAILURE).lower()


# -- the patient instructions ----------------------------------------------------------------


@pytest.fixture(scope="module")
def stays():
    """Every sample stay run through the pipeline: {encounter id: StayDraft}."""
    from fhirgen.cli.offline import OfflineRun
    from fhirgen.config import Settings
    from fhirgen.drafting.generation import get_generator

    problems = []
    with OfflineRun(Settings(), problems.append) as run:
        run.load([SAMPLES / "stays", SAMPLES / "bulk"])
        outcomes = list(run.stays(get_generator("template")))
    assert not problems and all(o.draft for o in outcomes)
    return {o.encounter_id: o.draft for o in outcomes}


def _reading_ease(stay) -> float:
    """The Flesch score of the instructions' sentences as written to the EHR (headings, header
    and source list aside), medicine and test names counted as plain words."""
    document = next(
        e["resource"]
        for e in stay.bundle["entry"]
        if e["resource"].get("type", {}).get("coding", [{}])[0].get("code") == INSTRUCTIONS
    )
    text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    lines = [
        line
        for title in (spec.title for spec in patient_instructions.KIND.sections)
        for line in _statements(text, title)
    ]
    score = flesch_reading_ease("\n".join(lines), patient_instructions.plain_names(stay.facts))
    assert score is not None
    return score


def test_patient_instructions_are_plain_language_on_every_sample(stays):
    assert sorted(stays) == sorted(ALL)
    scores = {encounter: _reading_ease(stay) for encounter, stay in stays.items()}
    assert all(score >= patient_instructions.READING_EASE for score in scores.values()), scores
    # Written to the patient: no sentence of ours speaks of "the patient".
    for stay in stays.values():
        draft = stay.drafts["patient-instructions"]
        assert not [s.text for _, s in draft.sentences() if "the patient" in s.text.lower()]
        assert stay.reports["patient-instructions"].clean, stay.reports["patient-instructions"]


def test_heart_failure_patient_instructions(drafts):
    text = _instructions(drafts, HEART_FAILURE)
    assert text.startswith("PATIENT INSTRUCTIONS - AI-GENERATED DRAFT\n")
    assert _statements(text, "Your medicines") == [
        "Start taking spironolactone 25 mg tablet.",
        "How to take spironolactone: 1 tablet (25 mg total) by mouth daily.",
        "Take furosemide 40 mg tablet in a new way.",
        "From now on, take furosemide like this: 1 tablet (40 mg total) by mouth 2 times daily.",
        "Take metoprolol succinate XL 50 mg 24 hr tablet in a new way.",
        "From now on, take metoprolol succinate like this: 1 tablet (50 mg total) by mouth daily.",
        "Stop taking ibuprofen 400 mg tablet.",
        "Keep taking lisinopril 10 mg tablet as before.",
        "Tell everyone who treats you that you are allergic to Penicillins.",
    ]
    appointments = _statements(text, "Appointments and tests")
    assert appointments[0].startswith("Your doctor asked for this test or visit: Basic metabolic")
    assert appointments[1].startswith("Go to your appointment: Heart failure follow-up")
    assert appointments[2:] == [
        "We are waiting for some test results: Magnesium.",
        "Your doctor will tell you the results.",
    ]
    # Each problem's warning signs (heart failure, then the kidney injury), then the general one.
    assert _statements(text, "Warning signs") == [
        "Weigh yourself each morning.",
        "Call your doctor if your weight goes up quickly, your legs or belly swell, or you get "
        "more short of breath.",
        "Call your doctor if you pass much less urine than usual, or your legs swell.",
        "If you feel worse or have a new problem, call your doctor or come back to the hospital.",
    ]
    assert _statements(text, "Your goals") == [
        "Your goal: Daily weight within 1 kg of dry weight (84.5 kg)."
    ]
    # The same words sit in the CarePlan's narrative, under their own heading.
    (plan,) = _resources(drafts, HEART_FAILURE, "CarePlan")
    div = plan["text"]["div"]
    assert "<h3>Patient instructions</h3>" in div
    assert "Keep taking lisinopril 10 mg tablet as before." in div


def test_pneumonia_instructions_say_which_results_are_awaited(drafts):
    text = _instructions(drafts, PNEUMONIA)
    assert _statements(text, "Appointments and tests")[-2:] == [
        "We are waiting for some test results: Blood culture.",
        "Your doctor will tell you the results.",
    ]
    assert "warfarin" not in text.lower()


def test_bulk_export_instructions_stop_metformin(drafts):
    medicines = _statements(_instructions(drafts, DKA), "Your medicines")
    assert "Stop taking metformin 1000 mg tablet." in medicines
    assert medicines[0] == "Start taking insulin glargine 100 units/mL (3 mL) pen."
