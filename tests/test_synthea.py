"""Records nobody here wrote: every Synthea inpatient stay drafts, and the eval passes on all."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.synthea


def _inpatient_encounters(synthea) -> set[str]:
    manifest = json.loads((synthea / "manifest.json").read_text())
    return {
        stay["encounter_id"]
        for files in manifest.values()
        for record in files
        for stay in record["inpatient_encounters"]
    }


def test_generate_drafts_every_inpatient_stay(synthea, tmp_path, run_cli):
    result = run_cli(
        "generate", synthea / "smart-r4", synthea / "bulk10", "--out", tmp_path / "out"
    )
    assert result.code == 0, result.stderr[-2000:]
    written = {p.stem for p in (tmp_path / "out").glob("*.json")}
    expected = _inpatient_encounters(synthea)
    assert len(expected) >= 200
    assert written == expected
    assert "error:" not in result.stderr


def test_eval_passes_on_every_stay(synthea, run_cli):
    result = run_cli("eval", synthea / "smart-r4", synthea / "bulk10", "--json")
    assert result.code == 0, result.stdout[-3000:]
    overall = json.loads(result.stdout)["overall"]
    assert overall["stays"] == len(_inpatient_encounters(synthea))
    assert overall["passed"] == overall["stays"]
    assert overall["valid_fhir_percent"] == 100.0
    assert overall["uncited_sentences"] == 0
    assert overall["unknown_citations"] == 0
    assert overall["sections_missing"] == 0
    assert all(pct == 100.0 for pct in overall["mentioned_percent"].values() if pct is not None)
    # What a physician objects to, on records nobody here wrote: none of it, and the
    # template's own text never needs the verifier.
    assert overall["repeated_sentences"] == 0
    assert overall["raw_codes"] == 0
    assert overall["trend_contradictions"] == 0
    assert overall["body_words_median"] <= 700 and overall["body_words_p95"] <= 1000
    assert overall["reading_ease_min"] >= 60
    assert all(stay["dropped_by_verifier"] == 0 for stay in json.loads(result.stdout)["stays"])
    mentioned = overall["mentioned"]
    assert mentioned["discharge_medications"][1] > 0 and mentioned["procedures"][1] > 0
