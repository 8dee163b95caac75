"""Bad input: one clear line per problem naming where, the rest still processed, exit status 1."""

from __future__ import annotations

import gzip
import json

from tests.records import as_collection, small_stay, write_json, write_ndjson


def _good(tmp_path):
    """A valid record whose draft must still be written beside every bad input."""
    return write_json(tmp_path / "good.json", as_collection(small_stay("-ok")))


def _lines(stderr: str, prefix: str = "error:") -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


def _assert_good_one_written(result, tmp_path):
    assert (tmp_path / "out" / "e1-ok.json").is_file(), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_file(tmp_path, run_cli):
    result = run_cli("generate", tmp_path / "nope.json", _good(tmp_path), "--out", tmp_path / "out")
    assert result.code == 1
    assert _lines(result.stderr) == [f"error: {tmp_path / 'nope.json'}: no such file or folder"]
    _assert_good_one_written(result, tmp_path)


def test_unreadable_file(tmp_path, run_cli):
    broken = tmp_path / "export.ndjson.gz"
    broken.write_bytes(gzip.compress(b'{"resourceType": "Patient", "id": "x"}\n')[:25])
    result = run_cli("generate", broken, _good(tmp_path), "--out", tmp_path / "out")
    assert result.code == 1
    (line,) = _lines(result.stderr)
    assert line.startswith(f"error: {broken}: cannot read file")
    _assert_good_one_written(result, tmp_path)


def test_invalid_json_names_the_file_and_position(tmp_path, run_cli):
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "type": "collection", "entry": [')
    result = run_cli("generate", bad, _good(tmp_path), "--out", tmp_path / "out")
    assert result.code == 1
    (line,) = _lines(result.stderr)
    assert line.startswith(f"error: {bad}: invalid JSON (")
    assert "line 1" in line
    _assert_good_one_written(result, tmp_path)


def test_invalid_ndjson_line_skips_only_that_line(tmp_path, run_cli):
    resources = small_stay()
    path = tmp_path / "export.ndjson"
    lines = [json.dumps(r) for r in resources]
    lines.insert(3, '{"resourceType": "Observation", "id": "broken", ')
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("generate", path, "--out", tmp_path / "out")
    assert result.code == 1
    (line,) = _lines(result.stderr)
    assert line.startswith(f"error: {path}:4: invalid JSON")
    assert (tmp_path / "out" / "e1.json").is_file(), "the other lines are still read"


def test_json_that_is_not_fhir(tmp_path, run_cli):
    not_fhir = write_json(tmp_path / "config.json", {"name": "something else", "items": [1, 2]})
    unknown = write_json(tmp_path / "banana.json", {"resourceType": "Banana", "id": "1"})
    array = write_json(tmp_path / "array.json", [1, 2, 3])
    result = run_cli(
        "generate", not_fhir, unknown, array, _good(tmp_path), "--out", tmp_path / "out"
    )
    assert result.code == 1
    assert _lines(result.stderr) == [
        f"error: {not_fhir}: not a FHIR resource (no resourceType)",
        f"error: {unknown}: not a FHIR R4 resource (unknown resourceType 'Banana')",
        f"error: {array}: not a FHIR resource (a JSON list)",
    ]
    _assert_good_one_written(result, tmp_path)


def test_encounter_whose_patient_is_missing(tmp_path, run_cli):
    orphan = [r for r in small_stay("-x") if r["resourceType"] != "Patient"]
    source = write_json(tmp_path / "orphan.json", as_collection(orphan))
    result = run_cli("generate", source, _good(tmp_path), "--out", tmp_path / "out")
    assert result.code == 1
    (line,) = _lines(result.stderr)
    assert line == (
        f"error: {source} entry 1: Encounter/e1-x refers to Patient/p1-x, which is not in the input"
    )
    assert not (tmp_path / "out" / "e1-x.json").exists()
    assert "1 stay drafted, 1 failed" in result.stderr
    _assert_good_one_written(result, tmp_path)


def test_dangling_medication_reference_fails_that_stay(tmp_path, run_cli):
    resources = small_stay()
    order = next(r for r in resources if r["id"] == "mr2")
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": "Medication/not-exported"}
    source = write_ndjson(tmp_path / "export.ndjson", resources)
    result = run_cli("generate", source, _good(tmp_path), "--out", tmp_path / "out")
    assert result.code == 1
    (line,) = _lines(result.stderr)
    assert line.startswith(
        f"error: {source}:9: MedicationRequest/mr2 refers to Medication/not-exported"
    )
    assert not (tmp_path / "out" / "e1.json").exists(), "no draft with an unnamed medication"
    _assert_good_one_written(result, tmp_path)


def test_dangling_reference_that_loses_nothing_essential_is_a_warning(tmp_path, run_cli):
    resources = small_stay()
    encounter = next(r for r in resources if r["id"] == "e1")
    encounter["diagnosis"] = [{"condition": {"reference": "Condition/not-exported"}}]
    source = write_json(tmp_path / "record.json", as_collection(resources))
    result = run_cli("generate", source, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert _lines(result.stderr, "warning:") == [
        f"warning: {source} entry 2: refers to Condition/not-exported, which is not in the input"
    ]
    assert (tmp_path / "out" / "e1.json").is_file()


def test_duplicate_ids_with_different_content(tmp_path, run_cli):
    first = write_json(tmp_path / "a.json", as_collection(small_stay()))
    changed = [r for r in small_stay() if r["id"] == "o3"]
    changed[0]["valueQuantity"]["value"] = 150
    second = write_ndjson(tmp_path / "b.ndjson", changed)
    result = run_cli("generate", first, second, "--out", tmp_path / "out")
    assert result.code == 1
    (line,) = _lines(result.stderr)
    assert line == (
        f"error: {second}:1: duplicate id Observation/o3 with different content "
        f"(first at {first} entry 12); the first is kept"
    )
    text = (tmp_path / "out" / "e1.json").read_text()
    assert (tmp_path / "out" / "e1.json").is_file() and text


def test_identical_duplicates_are_not_a_problem(tmp_path, run_cli):
    first = write_json(tmp_path / "a.json", as_collection(small_stay()))
    second = write_ndjson(tmp_path / "b.ndjson", small_stay())
    result = run_cli("generate", first, second, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert not _lines(result.stderr) and not _lines(result.stderr, "warning:")


def test_file_over_the_size_limit(tmp_path, run_cli):
    big = write_json(tmp_path / "big.json", as_collection(small_stay("-big")))
    limit = big.stat().st_size - 1
    result = run_cli(
        "generate",
        big,
        _good(tmp_path),
        "--out",
        tmp_path / "out",
        env={"FHIRGEN_MAX_BUNDLE_BYTES": str(limit)},
    )
    assert result.code == 1
    (line,) = _lines(result.stderr)
    assert line.startswith(f"error: {big}: file is ")
    assert "over the" in line and "NDJSON" in line
    assert not (tmp_path / "out" / "e1-big.json").exists()


def test_ndjson_line_over_the_limit(tmp_path, run_cli):
    resources = small_stay()
    note = next(r for r in resources if r["resourceType"] == "DocumentReference")
    note["content"][0]["attachment"]["data"] = "QUJD" * 20000
    path = write_ndjson(tmp_path / "export.ndjson", resources)
    result = run_cli(
        "generate", path, "--out", tmp_path / "out", env={"FHIRGEN_MAX_LINE_BYTES": "50000"}
    )
    assert result.code == 1
    index = resources.index(note) + 1
    assert _lines(result.stderr) == [f"error: {path}:{index}: line is over the 0.0 MiB limit"]
    assert (tmp_path / "out" / "e1.json").is_file(), "the lines after it are still read"


def test_a_record_without_an_inpatient_stay_is_not_an_error(tmp_path, run_cli):
    clinic_only = [r for r in small_stay() if r["resourceType"] in {"Patient", "Condition"}]
    source = write_json(tmp_path / "clinic.json", as_collection(clinic_only))
    result = run_cli("generate", source, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert (
        "0 stays drafted, 0 failed, 1 patient record read (1 without a finished inpatient stay)"
        in result.stderr
    )


def test_unknown_encounter_requested(tmp_path, run_cli):
    source = _good(tmp_path)
    result = run_cli(
        "generate", source, "--encounter", "e1-ok", "--encounter", "zzz", "--out", tmp_path / "out"
    )
    assert result.code == 1
    assert _lines(result.stderr) == ["error: Encounter/zzz is not in the input"]
    _assert_good_one_written(result, tmp_path)


def test_bad_settings_are_one_line_and_exit_2(tmp_path, run_cli):
    result = run_cli(
        "generate",
        _good(tmp_path),
        "--out",
        tmp_path / "out",
        env={"FHIRGEN_INPATIENT_CLASSES": " , "},
    )
    assert result.code == 2
    assert result.stderr.strip().startswith("error: invalid settings: inpatient_classes:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_malformed_fhir_fails_only_its_stay(tmp_path, run_cli):
    resources = small_stay("-bad")
    procedure = next(r for r in resources if r["resourceType"] == "Procedure")
    procedure["code"] = "chest x-ray"  # a string where a CodeableConcept belongs
    procedure["performedDateTime"] = 20260302
    source = write_json(tmp_path / "bad.json", as_collection(resources))
    result = run_cli("generate", source, _good(tmp_path), "--out", tmp_path / "out")
    assert result.code == 1
    (line,) = _lines(result.stderr)
    assert line.startswith(f"error: {source} entry 2: Encounter/e1-bad: malformed FHIR data")
    _assert_good_one_written(result, tmp_path)
