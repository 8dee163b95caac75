"""The step tasks' retries are Celery's own (autoretry), with Retry-After as the countdown.

Run eagerly (``Task.apply``): Celery re-runs a retried task at once, so the retries and the
give-up are seen without a broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from fhirgen.config import load_settings
from fhirgen.errors import StoreUnavailable, TransientError
from fhirgen.store import Store
from workers import tasks

SUB = "sub-1"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    store.add_subscription(id=SUB, kind="topic", criteria="http://example.org/x")
    services = SimpleNamespace(store=store, settings=load_settings())
    monkeypatch.setattr(tasks, "services", lambda: services)
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(tasks, "enqueue_step", lambda step, job_id: sent.append((step, job_id)))
    services.sent = sent
    yield services
    store.dispose()


def _job(store: Store) -> str:
    (job_id,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/e")]).jobs
    return job_id


@pytest.mark.parametrize("task", [tasks.read_stay, tasks.write_back])
def test_steps_retry_transient_errors_with_celerys_backoff(task):
    settings = load_settings()
    assert task.autoretry_for == (TransientError,)
    assert task.retry_backoff and task.retry_jitter
    assert task.retry_backoff_max == settings.retry_backoff_max
    assert task.max_retries == settings.task_max_retries  # bounded
    assert task.acks_late and task.reject_on_worker_lost


def test_retry_after_is_the_countdown_up_to_the_backoff_cap():
    assert tasks.retry_countdown(TransientError("429", retry_after=3.0), 0.4, 600) == 3.0
    assert tasks.retry_countdown(TransientError("429", retry_after=3600), 0.4, 600) == 600
    assert tasks.retry_countdown(TransientError("503"), 0.4, 600) == 0.4  # Celery's backoff
    assert tasks.retry_countdown(StoreUnavailable("down"), 1.5, 600) == 1.5


def test_a_store_error_in_a_step_is_retried_until_the_step_runs(env, monkeypatch):
    job_id = _job(env.store)
    calls: list[str] = []

    def read(services, job):
        calls.append(job)
        if len(calls) <= 2:
            raise StoreUnavailable("store unavailable (OperationalError)", retry_after=2.0)
        return "generate"

    monkeypatch.setattr(tasks.jobs, "read", read)
    result = tasks.read_stay.apply(args=[job_id])
    assert result.successful(), result.traceback
    assert calls == [job_id] * 3
    assert env.sent == [("generate", job_id)]
    retries = [e.detail for e in env.store.audit_entries() if e.action == "retry"]
    assert len(retries) == 2
    assert all("StoreUnavailable" in d and d.endswith(" in 2.0s") for d in retries)


def test_a_job_whose_retries_run_out_is_marked_failed(env, monkeypatch):
    job_id = _job(env.store)
    env.store.advance(job_id, ("received",), "reading")

    def read(services, job):
        raise TransientError("GET Encounter/e answered 503")

    monkeypatch.setattr(tasks.jobs, "read", read)
    monkeypatch.setattr(tasks.read_stay, "max_retries", 2)
    result = tasks.read_stay.apply(args=[job_id])
    assert result.failed()
    job = env.store.job(job_id)
    assert job.state == "failed"
    assert job.reason == "gave up after 2 retries: GET Encounter/e answered 503"
    assert env.sent == []
