"""The live system: ``fhirgen demo`` (all of it on one machine, or ``--offline`` only the
samples drafted), ``serve``, ``worker`` and ``beat`` (its processes) and ``subscribe`` (our
Subscription on the EHR)."""

from __future__ import annotations

import base64
import os
import sys
from importlib.resources import files
from pathlib import Path

import click
import orjson

from fhirgen import __version__
from fhirgen.cli.offline import OfflineRun, write_bundle
from fhirgen.cli.options import EXIT_INPUT, EXIT_USAGE, _generator, _prepare, _settings
from fhirgen.cli.output import _Output


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
def beat() -> None:
    """Run the scheduler: reconciliation, subscription heartbeats, stalled jobs."""
    from fhirgen.cli.launchers import celery_beat_command, run_child

    settings = _settings()
    env = _prepare(settings)
    schedule = Path(settings.data_dir).resolve() / "celerybeat-schedule"
    sys.exit(run_child(celery_beat_command(schedule, settings.log_level), env))


@click.command()
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
