"""``fhirgen serve``, ``worker``, ``beat`` and ``subscribe``: starting the live system's parts.

The webhook and the workers run as child processes (gunicorn, celery) named by module path, so
``fhirgen/`` never imports Flask or Celery. The parent prepares what they share (the schema,
the broker URL, the metrics folder), forwards Ctrl-C/SIGTERM, and exits with the child's status.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from fhirgen.config import Settings
from fhirgen.files import keep_private, private_folder
from fhirgen.service.broker import redis_url
from fhirgen.service.subscriptions import rewrap_secrets
from fhirgen.service.vault import Vault
from fhirgen.store import Store

GPU_QUEUE = "gpu"


def prepare(settings: Settings) -> dict[str, str]:
    """Make the data folder private, migrate the store, resolve the broker, and return the
    environment children need."""
    keep_private()
    private_folder(settings.data_dir)
    store = Store.from_settings(settings)
    store.migrate()
    rewrapped = rewrap_secrets(store, Vault(settings))
    if rewrapped:
        click.echo(
            f"re-encrypted {rewrapped} stored subscription secret(s) under the current key",
            err=True,
        )
    store.dispose()  # no pooled connection may cross into forked children
    env = dict(os.environ)
    env["FHIRGEN_REDIS_URL"] = redis_url(settings)  # an embedded Redis is started here, once
    env["FHIRGEN_DATA_DIR"] = str(Path(settings.data_dir).resolve())
    env.setdefault("FHIRGEN_LOG_LEVEL", settings.log_level)
    return env


def run_child(command: Sequence[str], env: dict[str, str]) -> int:
    """Run a child process in the foreground, passing Ctrl-C and SIGTERM on to it."""
    child = subprocess.Popen(list(command), env=env)  # noqa: S603 - our own fixed commands

    def forward(signum: int, _frame: Any) -> None:
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def default_web_workers(settings: Settings) -> int:
    """gunicorn workers for ``fhirgen serve`` without ``--workers``: one per CPU on PostgreSQL
    (threaded workers, measured faster than 2 x CPUs + 1); one on SQLite, whose one writer the
    processes would take turns at through its busy handler (bench/ingest.py, c = 8: p99 133 ms
    with two workers, 36 ms with one, about 330 notifications/s either way)."""
    if settings.resolved_database_url.startswith("sqlite"):
        return 1
    return os.cpu_count() or 1


def gunicorn_command(
    host: str,
    port: int,
    workers: int,
    *,
    timeout: int = 30,
    app: str = "webhooks.asgi:create_app()",
) -> list[str]:
    """gunicorn for ``app`` (the benchmark serves its bare endpoint with the same settings).

    gunicorn's asyncio worker: it and ``webhooks.asgi`` read each request whole on the event
    loop, and Flask runs in a thread pool only on whole requests, so clients that trickle
    their headers or bodies hold no thread (the threaded worker gave each a thread until it
    had read the request; ten such clients took the webhook). Keep-alive spares the EHR a TCP
    connection per notification. As many workers as CPUs did better than 2 x CPUs + 1 on 2
    CPUs (docs/BENCHMARKS.md)."""
    return [
        sys.executable, "-m", "gunicorn", app,
        "--bind", f"{host}:{port}",
        "--config", "python:webhooks.gunicorn_conf",
        "--workers", str(workers),
        "--worker-class", "asgi",
        "--asgi-lifespan", "off",
        "--timeout", str(timeout),
        "--graceful-timeout", "20",
        "--keep-alive", "5",
    ]  # fmt: skip


def celery_worker_command(
    queues: Sequence[str],
    concurrency: int,
    pool: str,
    log_level: str,
    name: str,
    prefetch: int = 1,
) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "workers.main", "worker",
        "--queues", ",".join(queues),
        "--concurrency", str(concurrency),
        "--pool", pool,
        "--hostname", name,
        "--loglevel", log_level,
        "--prefetch-multiplier", str(prefetch),
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def celery_beat_command(schedule: Path, log_level: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "workers.main", "beat",
        "--schedule", str(schedule),
        "--loglevel", log_level,
    ]  # fmt: skip


def pool_for(queues: Sequence[str]) -> str:
    """CUDA does not survive fork: a worker serving only the gpu queue runs a solo pool."""
    return "solo" if list(queues) == [GPU_QUEUE] else "prefork"


def metrics_dir(settings: Settings) -> Path:
    """A fresh folder for gunicorn workers' Prometheus files (stale counts must not survive)."""
    folder = Path(settings.data_dir).resolve() / "prometheus"
    shutil.rmtree(folder, ignore_errors=True)
    return private_folder(folder)


def echo_registration(registration: Any) -> None:
    click.echo(f"subscription {registration.id} registered as Subscription/{registration.ehr_id}")
    click.echo(f"  kind: {registration.kind}  criteria: {registration.criteria}")
    click.echo(f"  endpoint: {registration.endpoint}  status: {registration.status}")
