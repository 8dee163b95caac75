"""The sample stays shipped with fhirgen, read the way a clinician reviewing the drafts would."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import pytest

from fhirgen.documents import DOCUMENT_KINDS
from tests.conftest import ROOT, SAMPLES

HEART_FAILURE = "eu4L8PolKgWuJTua8jnJQwL3"
PNEUMONIA = "19436125"
HIP_FRACTURE = "551725"
CHEST_PAIN = "e0A7wIed4I7rHxOYugtFpwG3"
DKA = "fbe012e7-b755-5604-b808-307bae96a5d0"
ALL = (HEART_FAILURE, PNEUMONIA, HIP_FRACTURE, CHEST_PAIN, DKA)


@pytest.fixture(scope="module")
def drafts(tmp_path_factory) -> Path:
    from click.testing import CliRunner

    from fhirgen.cli import cli

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


def _summary(drafts: Path, encounter: str) -> str:
    document = _bundle(drafts, encounter)["entry"][1]["resource"]
    return base64.b64decode(document["content"][0]["attachment"]["data"]).decode()


def _section(text: str, title: str) -> list[str]:
    body = text.split("\nSOURCES\n")[0]
    lines = body.split(f"\n{title.upper()}\n", 1)[1].split("\n\n", 1)[0]
    return lines.splitlines()


def _statements(text: str, title: str) -> list[str]:
    """A section's sentences without their citation marks."""
    return [
        re.sub(r"( \[\d+\])+$|(\[\d+\])+$", "", line).rstrip() for line in _section(text, title)
    ]


def _everything_written(drafts: Path, encounter: str) -> str:
    """All text the EHR would receive for a stay: attachments decoded, narrative included."""
    bundle = _bundle(drafts, encounter)
    parts = [json.dumps(bundle)]
    for content in bundle["entry"][1]["resource"]["content"]:
        parts.append(base64.b64decode(content["attachment"]["data"]).decode())
    return "\n".join(parts)


def test_samples_are_what_the_builder_writes(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "build_samples", ROOT / "tests/fixtures/build_samples.py"
    )
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    written = builder.build_all(tmp_path)
    assert written
    for path in written:
        committed = SAMPLES / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} differs from its builder"


@pytest.mark.parametrize("encounter", ALL)
def test_every_section_is_present_and_says_something(drafts, encounter):
    text = _summary(drafts, encounter)
    for spec in DOCUMENT_KINDS["discharge-summary"].sections:
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
    provenance = _bundle(drafts, HEART_FAILURE)["entry"][3]["resource"]
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
    plan = _bundle(drafts, CHEST_PAIN)["entry"][2]["resource"]
    assert "No care goals are recorded." in plan["text"]["div"]


def test_hip_fracture_disposition_goal_and_care_plan(drafts):
    text = _summary(drafts, HIP_FRACTURE)
    assert _section(text, "Condition and disposition at discharge")[0].startswith(
        "Discharge disposition: Discharged to skilled nursing facility."
    )
    assert "Your goal: Walk 50 feet with walker." in "\n".join(
        _section(text, "Patient instructions")
    )
    plan = _bundle(drafts, HIP_FRACTURE)["entry"][2]["resource"]
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
    assert (
        "Care team: Thomas Okonkwo, MD (admitter); Priya Raman, MD (attender, discharger)."
        in course
    )
    assert "kowalczyk" not in _everything_written(drafts, HEART_FAILURE).lower()
