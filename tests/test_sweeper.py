"""The sweeper's choice of jobs to resume (``jobs.stalled_jobs``), on SQLite and PostgreSQL.

A job that sat in an active state past that state's timeout is resumed from the step it waits
for, once per timeout; a job whose step is still within its timeout (or just scheduled a retry)
is left alone, and so are jobs that may be waiting behind a backlog on their step's queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from fhirgen.config import load_settings
from fhirgen.service.jobs import GENERATE, READ, WRITE, stalled_jobs
from fhirgen.store import Store, utcnow
from fhirgen.store.models import Job
from tests.databases import fresh_database

SUB = "sub-1"
TIMEOUTS = {"reading_timeout": 60, "generating_timeout": 600, "writing_timeout": 120}
IDLE = {READ: 0, GENERATE: 0, WRITE: 0}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with fresh_database(request.param, tmp_path) as url:
        store = Store(url)
        store.migrate()
        store.add_subscription(id=SUB, kind="topic", criteria="http://example.org/x")
        yield store
        store.dispose()


@pytest.fixture
def services(store: Store) -> SimpleNamespace:
    return SimpleNamespace(store=store, settings=load_settings(requeue_after=300, **TIMEOUTS))


def _job(store: Store, encounter: str, state: str, *, idle: float) -> str:
    """A sent job moved to ``state`` that has not moved for ``idle`` seconds."""
    (job_id,) = store.record_notification(
        SUB, "rest-hook", events=[(None, f"Encounter/{encounter}")]
    ).jobs
    store.mark_sent([job_id])
    path = {"reading": ["reading"], "generating": ["reading", "generating"]}
    path["writing"] = [*path["generating"], "writing"]
    path["done"] = [*path["writing"], "done"]
    current = "received"
    for following in path.get(state, []):
        assert store.advance(job_id, (current,), following)
        current = following
    _idle(store, job_id, idle)
    return job_id


def _idle(store: Store, job_id: str, seconds: float) -> None:
    then: datetime = utcnow() - timedelta(seconds=seconds)
    with store.engine.begin() as connection:
        connection.execute(
            update(Job).where(Job.id == job_id).values(updated_at=then, enqueued_at=then)
        )


def test_each_active_state_past_its_timeout_is_resumed_from_its_step(store, services):
    stuck = {
        "received": _job(store, "a", "received", idle=301),
        "reading": _job(store, "b", "reading", idle=61),
        "generating": _job(store, "c", "generating", idle=601),
        "writing": _job(store, "d", "writing", idle=121),
    }
    _job(store, "e", "done", idle=10_000)  # finished: never resumed
    assert sorted(stalled_jobs(services, IDLE)) == sorted(
        [
            (READ, stuck["received"]),
            (READ, stuck["reading"]),
            (GENERATE, stuck["generating"]),
            (WRITE, stuck["writing"]),
        ]
    )
    # Claimed: the next sweep, a moment later, sends none of them again ...
    assert stalled_jobs(services, IDLE) == []
    # ... and the states did not change (the step that comes moves them).
    assert {state: store.job(job).state for state, job in stuck.items()} == {
        state: state for state in stuck
    }
    # One timeout later a job still stuck is resumed again.
    later = utcnow() + timedelta(seconds=61)
    assert stalled_jobs(services, IDLE, now=later) == [(READ, stuck["reading"])]


def test_a_step_within_its_timeout_is_left_alone(store, services):
    # Each state has its own timeout: 100 s is long for reading and writing, not generating.
    reading = _job(store, "a", "reading", idle=59)
    generating = _job(store, "b", "generating", idle=300)
    writing = _job(store, "c", "writing", idle=119)
    sent_recently = _job(store, "d", "received", idle=100)
    assert stalled_jobs(services, IDLE) == []
    # A retry scheduled restarts the clock of a job that had sat past its timeout.
    _idle(store, reading, 61)
    store.touch(reading)
    assert stalled_jobs(services, IDLE) == []
    assert [store.job(j).state for j in (reading, generating, writing, sent_recently)] == [
        "reading",
        "generating",
        "writing",
        "received",
    ]


def test_jobs_that_may_wait_behind_a_backlog_are_not_sent_again(store, services):
    first = _job(store, "a", "generating", idle=601)
    second = _job(store, "b", "generating", idle=601)
    # Two messages on the gpu queue: they may be these two jobs' (a backlog, not a loss).
    assert stalled_jobs(services, {**IDLE, GENERATE: 2}) == []
    # Fewer messages than stalled jobs: some are lost, and all of them are sent again.
    assert sorted(stalled_jobs(services, {**IDLE, GENERATE: 1})) == sorted(
        [(GENERATE, first), (GENERATE, second)]
    )


def test_two_sweepers_claim_a_stalled_job_once(store, services):
    job = _job(store, "a", "writing", idle=121)
    seen = store.stalled("writing", utcnow() - timedelta(seconds=120))
    assert [job_id for job_id, _ in seen] == [job]
    now = utcnow()
    assert store.reclaim_stalled("writing", seen, now) == [job]
    assert store.reclaim_stalled("writing", seen, now) == []  # the other sweeper's claim
    # A job that moved on since it was seen is not claimed either.
    other = _job(store, "b", "writing", idle=121)
    seen = store.stalled("writing", utcnow() - timedelta(seconds=120))
    assert store.advance(other, ("writing",), "done")
    assert store.reclaim_stalled("writing", seen, utcnow()) == []
