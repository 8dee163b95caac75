"""The pipeline over FHIR files: ``fhirgen generate`` (transaction Bundles into a folder) and
``fhirgen eval`` (the quality gauge, with its failure lines and summary table)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from fhirgen.cli.offline import OfflineRun, StayOutcome, write_bundle
from fhirgen.cli.options import (
    EXIT_INPUT,
    _backend,
    _batch,
    _encounter,
    _generator,
    _inputs,
    _model,
    _progress,
    _settings,
    _timestamp,
)
from fhirgen.cli.output import _Output


@click.command()
@_inputs
@click.option(
    "--out",
    "-o",
    "out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for <encounter-id>.json transaction Bundles.",
)
@_encounter
@_backend
@_model
@click.option(
    "--timestamp",
    metavar="ISO|now",
    help="Date the drafts (default: the discharge time, so output is reproducible).",
)
@_progress
def generate(
    inputs: tuple[Path, ...],
    out: Path,
    encounters: tuple[str, ...],
    backend: str | None,
    model: Path | None,
    timestamp: str | None,
    progress: bool | None,
) -> None:
    """Draft every finished inpatient stay in INPUT... (Bundles, NDJSON, Bulk export folders).

    Writes OUT/<encounter-id>.json: the transaction Bundle the live system would POST.
    Exit status 1 if any input or stay failed (the rest is still written), 0 otherwise.
    """
    settings = _settings(backend=backend, model_path=model)
    stamp = _timestamp(timestamp)
    generator = _generator(settings)
    output = _Output(progress)
    with OfflineRun(settings, output.problem) as run:
        run.load(list(inputs))
        with output.bar(run.count_stays(encounters), "drafting"):
            batch = _batch(settings)
            for outcome in run.stays(
                generator, encounters=encounters, generated_at=stamp, batch=batch
            ):
                output.advance()
                _announce_written(outcome, out, output)
        click.echo(run.summary.line(), err=True)
        if run.summary.stays_drafted:
            click.echo(f"drafts in {out}", err=True)
        sys.exit(0 if run.summary.ok else EXIT_INPUT)


def _announce_written(outcome: StayOutcome, out: Path, output: _Output) -> None:
    if outcome.draft is None:
        return
    path = write_bundle(out, outcome.encounter_id, outcome.draft.bundle)
    sentences = sum(len(list(d.sentences())) for d in outcome.draft.drafts.values())
    ms = sum(outcome.draft.timings.values())
    output.info(
        f"drafted Encounter/{outcome.encounter_id} -> {path} "
        f"({len(outcome.draft.facts)} facts, {sentences} sentences, {ms:.1f} ms)"
    )


@click.command("eval")
@_inputs
@_encounter
@_backend
@_model
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@_progress
def evaluate(
    inputs: tuple[Path, ...],
    encounters: tuple[str, ...],
    backend: str | None,
    model: Path | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Run the pipeline on INPUT... and check its output.

    Reports per stay and overall: FHIR validity, sections present, uncited sentences, citations
    to unknown facts, whether each diagnosis, discharge medication, procedure and allergy is
    named in the text, body length, sentences said twice, raw codes or units in the text, trend
    words the numbers contradict and the reading ease of the patient instructions. Exit status
    0 only when every stay passes every check and the run's body length is within its limits.
    """
    from fhirgen.cli.evaluation import EvaluationTotals, evaluate_stay

    settings = _settings(backend=backend, model_path=model)
    generator = _generator(settings)
    output = _Output(progress if not as_json else False)
    totals = EvaluationTotals()
    per_stay = []
    with OfflineRun(settings, output.problem) as run:
        run.load(list(inputs))
        with output.bar(run.count_stays(encounters), "evaluating"):
            for outcome in run.stays(
                generator, encounters=encounters, validate=False, batch=_batch(settings)
            ):
                output.advance()
                if outcome.draft is None:
                    totals.failed_stays += 1
                    continue
                result = evaluate_stay(outcome.draft)
                totals.add(result)
                per_stay.append(result)
                if not as_json and not result.passed:
                    click.echo(_failure_line(result))
    summary = totals.as_dict()
    if as_json:
        report = {"overall": summary, "stays": [r.as_dict() for r in per_stay]}
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        for failure in summary["run_failures"]:
            click.echo(f"FAIL run: {failure}")
        _print_summary(summary)
    sys.exit(0 if totals.ok and run.summary.errors == 0 else EXIT_INPUT)


def _failure_line(result: Any) -> str:
    reasons = []
    if not result.valid:
        reasons.append(f"invalid FHIR ({result.validation_errors[0]})")
    if result.sections_missing:
        reasons.append(f"missing sections: {', '.join(result.sections_missing)}")
    if result.uncited_sentences:
        reasons.append(f"{result.uncited_sentences} uncited sentences")
    if result.unknown_citations:
        reasons.append(f"{result.unknown_citations} citations to unknown facts")
    for family, coverage in result.coverage.items():
        if coverage.missing:
            reasons.append(f"{family} not mentioned: {'; '.join(coverage.missing)}")
    if result.repeated_sentences:
        said = "; ".join(f"{r.sentence!r} x{r.times}" for r in result.repeated_sentences[:3])
        reasons.append(f"sentences said twice: {len(result.repeated_sentences)} ({said})")
    if result.artefacts:
        tokens = ", ".join(dict.fromkeys(a.token for a in result.artefacts))
        reasons.append(f"raw codes or units: {result.raw_codes} ({tokens})")
    if result.trend_contradictions:
        first = result.trend_contradictions[0]
        reasons.append(
            f"trend words the numbers contradict: {len(result.trend_contradictions)} "
            f"({first.fact}: {first.reason})"
        )
    if not result.readable:
        reasons.append(f"patient text reading ease {_or_na(result.reading_ease)}")
    return f"FAIL Encounter/{result.encounter_id}: {' | '.join(reasons)}"


def _or_na(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fhirgen eval", show_header=True)
    table.add_column("check")
    table.add_column("result", justify="right")
    table.add_row("stays evaluated", str(summary["stays"]))
    table.add_row("stays that failed to draft", str(summary["stays_failed_to_draft"]))
    table.add_row("stays passing every check", str(summary["passed"]))
    table.add_row("valid FHIR R4 output", f"{summary['valid_fhir_percent']}%")
    table.add_row("sentences", str(summary["sentences"]))
    table.add_row("sentences without citations", str(summary["uncited_sentences"]))
    table.add_row("citations to unknown facts", str(summary["unknown_citations"]))
    table.add_row("sections missing", str(summary["sections_missing"]))
    for family, (mentioned, expected) in summary["mentioned"].items():
        table.add_row(f"{family.replace('_', ' ')} mentioned", f"{mentioned}/{expected}")
    words = f"{_or_na(summary['body_words_median'])} / {_or_na(summary['body_words_p95'])}"
    table.add_row("body words (median / p95)", words)
    table.add_row("sentences said twice", str(summary["repeated_sentences"]))
    table.add_row("raw codes or units in text", str(summary["raw_codes"]))
    table.add_row("trend words the numbers contradict", str(summary["trend_contradictions"]))
    ease = f"{_or_na(summary['reading_ease_min'])} / {_or_na(summary['reading_ease_median'])}"
    table.add_row("patient text reading ease (min / median)", ease)
    timing = f"{_or_na(summary['ms_per_stay_mean'])} / {_or_na(summary['ms_per_stay_p95'])}"
    table.add_row("ms per stay (mean / p95)", timing)
    Console().print(table)
