"""The ``fhirgen`` command line.

Bad input gives one line per problem on stderr (``error: FILE[:LINE]: what``), never a traceback,
and a non-zero exit status; every other input is still processed.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import click
import orjson

from fhirgen import __version__
from fhirgen.cli.offline import OfflineRun, StayOutcome, write_bundle
from fhirgen.cli.users import users
from fhirgen.config import Settings, load_settings
from fhirgen.drafting.generation import backend_names, get_generator
from fhirgen.errors import FhirgenError
from fhirgen.fhir.problems import Problem
from fhirgen.fhir.values import parse_time

EXIT_INPUT = 1  # some input failed; the rest was processed
EXIT_USAGE = 2  # bad settings or options: nothing was processed


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``fhirgen`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="fhirgen")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fhirgen")
def cli() -> None:
    """Draft cited discharge summaries and care plans from FHIR records."""


class _Output:
    """Where lines go: above a live progress bar on a terminal, else plain stdout/stderr."""

    def __init__(self, progress: bool | None) -> None:
        self.interactive = sys.stderr.isatty() if progress is None else progress
        self._progress: Any = None
        self._task: Any = None

    @contextmanager
    def bar(self, total: int, label: str) -> Iterator[None]:
        if not self.interactive:
            yield
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            self._progress = progress
            self._task = progress.add_task(label, total=total)
            try:
                yield
            finally:
                self._progress = None

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def problem(self, problem: Problem) -> None:
        self._err(str(problem))

    def info(self, line: str) -> None:
        """A per-item line: shown when no progress bar is drawn."""
        if not self.interactive:
            click.echo(line)

    def _err(self, line: str) -> None:
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            click.echo(line, err=True)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _generator(settings: Settings) -> Any:
    try:
        return get_generator(settings.backend, settings)
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _prepare(settings: Settings) -> dict[str, str]:
    """What ``serve``, ``worker`` and ``beat`` start their child with; settings that cannot run
    (no Redis to reach or embed, say) end the command with one line."""
    from fhirgen.cli.launchers import prepare

    try:
        return prepare(settings)
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _batch(settings: Settings) -> int:
    """Stays drafted together: model backends batch their calls; the template has no need."""
    return 1 if settings.backend == "template" else settings.gpu_batch_size


def _timestamp(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "now":
        return datetime.now(UTC).isoformat(timespec="seconds")
    zoned = value.endswith("Z") or "+" in value[10:] or "-" in value[10:]
    if "T" not in value or parse_time(value) is None or not zoned:
        click.echo(f"error: --timestamp {value!r} is not an ISO date-time with a zone", err=True)
        sys.exit(EXIT_USAGE)
    return value


_inputs = click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=True)
)
_backend = click.option(
    "--backend", type=click.Choice(backend_names()), help="Generation backend (FHIRGEN_BACKEND)."
)
_model = click.option(
    "--model",
    "model",
    type=click.Path(path_type=Path, exists=True),
    help="Model folder or GGUF file for --backend transformers (FHIRGEN_MODEL_PATH).",
)
_encounter = click.option(
    "--encounter",
    "encounters",
    multiple=True,
    metavar="ID",
    help="Only this Encounter id (repeatable); any status or class.",
)
_progress = click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)


@cli.command()
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


@cli.command("eval")
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


@cli.command()
@click.option(
    "--offline",
    is_flag=True,
    help="Only draft the samples from files (no EHR, webhook or workers).",
)
@click.option("--once", is_flag=True, help="Exit when the drafts are in, instead of staying up.")
@click.option(
    "--out",
    "-o",
    default=Path("demo-out"),
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for the drafts.",
)
def demo(offline: bool, once: bool, out: Path) -> None:
    """Run the whole system on this machine with the sample stays, or (--offline) just draft them.

    Live: starts a sandbox EHR (sekmet-fhir), an embedded Redis, the webhook and an io and a gpu
    worker; registers the subscription; loads the sample stays over FHIR and discharges them;
    shows each draft as it lands in the EHR; stays up until Ctrl-C, then stops everything.
    """
    if not offline:
        from fhirgen.cli.demo import run_live_demo

        sys.exit(run_live_demo(once=once))
    samples = files("fhirgen") / "samples"
    inputs = [Path(str(samples / "stays")), Path(str(samples / "bulk"))]
    settings = _settings()
    generator = _generator(settings)
    output = _Output(progress=False)
    written: list[Path] = []
    with OfflineRun(settings, output.problem) as run:
        run.load(inputs)
        for outcome in run.stays(generator):
            if outcome.draft is not None:
                written.append(write_bundle(out, outcome.encounter_id, outcome.draft.bundle))
        summary = run.summary
    click.echo(f"fhirgen {__version__}: {summary.line()}")
    click.echo(f"Transaction Bundles (what the EHR would receive) are in {out.resolve()}/:")
    for path in written:
        click.echo(f"  {path.name}")
    if written:
        first = orjson.loads(written[0].read_bytes())
        document = first["entry"][1]["resource"]
        text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
        click.echo(f"\nThe discharge summary in {written[0].name}:\n")
        click.echo(text)
    sys.exit(0 if summary.ok else EXIT_INPUT)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers",
    default=None,
    type=int,
    help="gunicorn workers (default: one per CPU on PostgreSQL, one on SQLite).",
)
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn.")
def serve(host: str, port: int, workers: int | None, dev: bool) -> None:
    """Run the webhook (and health, metrics) under gunicorn."""
    from fhirgen.cli.launchers import default_web_workers, gunicorn_command, metrics_dir, run_child

    settings = _settings()
    env = _prepare(settings)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(settings))
    if dev:
        command = [sys.executable, "-m", "flask", "--app", "webhooks:create_app()", "run",
                   "--host", host, "--port", str(port)]  # fmt: skip
    else:
        command = gunicorn_command(host, port, workers or default_web_workers(settings))
    sys.exit(run_child(command, env))


@cli.command()
@click.option(
    "--queues", default="io,gpu", show_default=True, help="Comma-separated: io, gpu or both."
)
@click.option("--concurrency", default=None, type=int, help="Processes (gpu: always 1 per GPU).")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default=None)
def worker(queues: str, concurrency: int | None, pool: str | None) -> None:
    """Run a Celery worker for the io and/or gpu queue."""
    from fhirgen.cli.launchers import celery_worker_command, pool_for, run_child

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(names) - {"io", "gpu"}
    if not names or unknown:
        click.echo(
            f"error: --queues takes io and/or gpu, not {', '.join(sorted(unknown))}", err=True
        )
        sys.exit(EXIT_USAGE)
    settings = _settings()
    env = _prepare(settings)
    chosen = pool or pool_for(names)
    count = 1 if chosen == "solo" else (concurrency or os.cpu_count() or 1)
    name = f"{'-'.join(names)}@%h"
    # A gpu worker holds up to a batch of jobs at once, so it must be allowed to prefetch them.
    prefetch = settings.gpu_batch_size if "gpu" in names else 1
    command = celery_worker_command(names, count, chosen, settings.log_level, name, prefetch)
    sys.exit(run_child(command, env))


@cli.command()
def beat() -> None:
    """Run the scheduler: reconciliation, subscription heartbeats, stalled jobs."""
    from fhirgen.cli.launchers import celery_beat_command, run_child

    settings = _settings()
    env = _prepare(settings)
    schedule = Path(settings.data_dir).resolve() / "celerybeat-schedule"
    sys.exit(run_child(celery_beat_command(schedule, settings.log_level), env))


@cli.command()
@click.option(
    "--topic",
    default=None,
    metavar="URL|auto",
    help="Topic-based (Backport IG) subscription to this topic; 'auto' discovers it.",
)
@click.option(
    "--content",
    type=click.Choice(["empty", "id-only", "full-resource"]),
    default="id-only",
    show_default=True,
    help="Payload of topic notifications.",
)
@click.option("--heartbeat", type=int, default=None, help="Heartbeat period in seconds (topics).")
@click.option(
    "--criteria",
    default="Encounter?status=finished",
    show_default=True,
    help="Classic rest-hook criteria.",
)
@click.option(
    "--hmac",
    "use_hmac",
    is_flag=True,
    help="Also sign notifications (Medplum's subscription-secret, X-Signature).",
)
def subscribe(
    topic: str | None, content: str, heartbeat: int | None, criteria: str, use_hmac: bool
) -> None:
    """Register our Subscription on the EHR (classic rest-hook unless --topic)."""
    from fhirgen.cli.launchers import echo_registration
    from fhirgen.errors import FhirgenError
    from fhirgen.fhir.auth import auth_from_settings
    from fhirgen.fhir.client import FhirClient
    from fhirgen.service.subscriptions import discover_topics, pick_discharge_topic, register
    from fhirgen.store import Store

    settings = _settings()
    if not settings.ehr_base_url:
        click.echo("error: FHIRGEN_EHR_BASE_URL is not set", err=True)
        sys.exit(EXIT_USAGE)
    store = Store.from_settings(settings)
    store.migrate()
    try:
        auth = auth_from_settings(settings)
        with FhirClient(settings.ehr_base_url, auth=auth, timeout=settings.ehr_timeout) as client:
            if topic == "auto":
                offered = discover_topics(client)
                topic = pick_discharge_topic(offered)
                if topic is None:
                    listed = ", ".join(offered) or "none"
                    click.echo(
                        f"error: no encounter-complete topic on the EHR (offered: {listed})",
                        err=True,
                    )
                    sys.exit(EXIT_INPUT)
            registration = register(
                store,
                client,
                settings,
                topic=topic,
                content=content,
                heartbeat=heartbeat,
                use_hmac=use_hmac,
                criteria=criteria,
            )
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    echo_registration(registration)


cli.add_command(users)
