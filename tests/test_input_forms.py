"""Every input form EHRs export gives the same drafts for the same record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.records import (
    as_batch_response,
    as_collection,
    as_document,
    as_searchset,
    as_transaction,
    small_stay,
    write_bulk_export,
    write_json,
    write_ndjson,
)


def _form(name: str, folder: Path) -> Path:
    resources = small_stay()
    if name == "collection":
        return write_json(folder / "record.json", as_collection(resources))
    if name == "searchset":
        return write_json(folder / "everything.json", as_searchset(resources))
    if name == "transaction":
        return write_json(folder / "tx.json", as_transaction(resources))
    if name == "batch-response":
        return write_json(folder / "batch.json", as_batch_response(resources))
    if name == "ndjson":
        return write_ndjson(folder / "all.ndjson", resources)
    if name == "ndjson-gz":
        return write_ndjson(folder / "all.ndjson.gz", resources, compress=True)
    if name == "bulk-with-manifest":
        return write_bulk_export(folder / "export", resources)
    if name == "bulk-without-manifest":
        return write_bulk_export(folder / "export", resources, manifest=False)
    if name == "folder-of-bundles":
        for resource in resources:
            write_json(folder / "bundles" / f"{resource['id']}.json", as_collection([resource]))
        return folder / "bundles"
    raise AssertionError(name)


FORMS = [
    "collection",
    "searchset",
    "transaction",
    "batch-response",
    "ndjson",
    "ndjson-gz",
    "bulk-with-manifest",
    "bulk-without-manifest",
    "folder-of-bundles",
]


@pytest.fixture(scope="module")
def reference_bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from click.testing import CliRunner

    from fhirgen.cli.main import cli

    folder = tmp_path_factory.mktemp("reference")
    source = _form("collection", folder)
    result = CliRunner().invoke(cli, ["generate", str(source), "--out", str(folder / "out")])
    assert result.exit_code == 0, result.stderr
    return (folder / "out" / "e1.json").read_bytes()


@pytest.mark.parametrize("form", FORMS)
def test_each_form_drafts_the_same_stay(form, tmp_path, run_cli, reference_bundle):
    source = _form(form, tmp_path)
    result = run_cli("generate", source, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert "1 stay drafted, 0 failed" in result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["e1.json"], (
        "only the finished inpatient stay is drafted, not the clinic visit"
    )
    assert (tmp_path / "out" / "e1.json").read_bytes() == reference_bundle


def test_transaction_without_ids_takes_them_from_the_urn_full_urls(tmp_path, run_cli):
    source = write_json(tmp_path / "tx.json", as_transaction(small_stay(), keep_ids=False))
    result = run_cli("generate", source, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    (written,) = (tmp_path / "out").iterdir()
    bundle = json.loads(written.read_text())
    document = bundle["entry"][1]["resource"]
    encounter_id = written.stem
    assert document["context"]["encounter"] == [{"reference": f"Encounter/{encounter_id}"}]
    assert document["subject"]["reference"].startswith("Patient/00000000-")


def test_document_bundle_reads_the_composition_as_a_note(tmp_path, run_cli):
    source = write_json(tmp_path / "doc.json", as_document(small_stay()))
    result = run_cli("generate", source, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert (tmp_path / "out" / "e1.json").exists()
    # Note titles are not listed in the summary; the note is read as input to the drafts.
    from fhirgen.cli.offline import OfflineRun
    from fhirgen.config import load_settings
    from fhirgen.drafting.generation.template import TemplateGenerator

    with OfflineRun(load_settings(), lambda problem: None) as run:
        run.load([source])
        (outcome,) = list(run.stays(TemplateGenerator()))
    assert outcome.draft is not None
    composed = [n for n in outcome.draft.context.notes if n.source.startswith("Composition/")]
    assert [n.title for n in composed] == ["History and physical"]
    assert composed[0].text.strip()


def test_many_patients_in_one_bundle(tmp_path, run_cli):
    source = write_json(tmp_path / "two.json", as_collection(small_stay() + small_stay("-b")))
    result = run_cli("generate", source, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["e1-b.json", "e1.json"]
    assert "2 patient records read" in result.stderr


def test_mixed_inputs_in_one_run(tmp_path, run_cli):
    ndjson = write_ndjson(tmp_path / "a.ndjson", small_stay())
    other = [r for r in small_stay() if r["resourceType"] == "Patient"]
    other[0]["id"] = "p9"
    bundle = write_json(tmp_path / "b.json", as_collection(other))
    result = run_cli("generate", ndjson, bundle, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert "1 stay drafted" in result.stderr
    assert "2 patient records read (1 without a finished inpatient stay)" in result.stderr


def _summary_text(bundle: dict) -> str:
    import base64

    document = bundle["entry"][1]["resource"]
    return base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
