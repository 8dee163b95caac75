"""The job store on SQLite (a file) and PostgreSQL (a schema of its own per test).

Every test runs on both backends; the PostgreSQL half skips, saying why, when no server answers
at ``FHIRGEN_TEST_POSTGRES_URL`` (default: the local server, trust auth).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from fhirgen.store import Store, as_utc, utcnow
from fhirgen.store.models import Base
from tests.databases import fresh_database

ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    *("subscriptions", "notification_events", "jobs", "drafts", "job_artifacts"),
    *("audit_log", "kv"),
}
SUB = "sub-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    store.add_subscription(id=SUB, kind="topic", criteria="http://example.org/encounter-complete")
    yield store
    store.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _race(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(index)`` in ``count`` threads released together; results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = call(index)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _job(store: Store, encounter: str = "enc-1") -> str:
    job_id, must_enqueue = store.create_job(encounter, source="manual")
    assert must_enqueue
    return job_id


# -- migrations -------------------------------------------------------------------------------


def test_migrate_creates_every_table_and_matches_the_models(database_url):
    store = Store(database_url)
    try:
        store.migrate()
        assert TABLES | {"alembic_version"} <= _tables(database_url)
        with store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        store.dispose()


def test_migrate_twice_is_harmless_and_keeps_the_data(database_url):
    store = Store(database_url)
    try:
        store.migrate()
        store.set_value("watermark", "2024-05-29")
        store.migrate()
        assert store.get_value("watermark") == "2024-05-29"
        with store.engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert len(versions) == 1
    finally:
        store.dispose()


_MIGRATE_WHEN_TOLD = """
import sys, time
from pathlib import Path
from fhirgen.store import Store
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
store = Store(sys.argv[1])
store.migrate()
store.dispose()
"""


def test_two_processes_migrating_a_fresh_database_at_once_both_succeed(database_url, tmp_path):
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_WHEN_TOLD, database_url, str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    time.sleep(1.5)  # both have imported fhirgen and wait for the signal
    go.touch()
    outcomes = [child.communicate(timeout=120) for child in children]
    for child, (_, stderr) in zip(children, outcomes, strict=True):
        assert child.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert _tables(database_url) >= TABLES


# -- the job state machine ----------------------------------------------------------------------


def test_a_job_walks_the_happy_path_to_done(store):
    job_id = _job(store)
    assert store.job(job_id).state == "received"
    for state in ("reading", "generating", "writing"):
        row = store.transition(job_id, state)
        assert (row.state, row.finished_at) == (state, None)
    row = store.transition(job_id, "done", document_reference="DocumentReference/d1")
    assert row.state == "done"
    assert row.finished_at is not None
    assert row.document_reference == "DocumentReference/d1"


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ((), "done"),  # received cannot skip the work
        ((), "writing"),
        (("reading",), "done"),
        (("reading", "generating"), "received"),  # back only to re-read a missing record
        (("reading", "generating", "writing"), "reading"),
        (("reading", "generating", "writing", "done"), "received"),  # done is final
        (("skipped",), "received"),
        (("failed",), "done"),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(store, path, refused):
    job_id = _job(store)
    for state in path:
        store.transition(job_id, state)
    before = store.job(job_id)
    with pytest.raises(ValueError, match="not allowed"):
        store.transition(job_id, refused)
    after = store.job(job_id)
    assert (after.state, after.updated_at) == (before.state, before.updated_at)


@pytest.mark.parametrize("stopped", ["failed", "cancelled"])
def test_a_failed_or_cancelled_job_can_be_retried(store, stopped):
    job_id = _job(store)
    store.transition(job_id, "reading")
    store.transition(job_id, stopped, reason="EHR said 404")
    assert store.job(job_id).reason == "EHR said 404"
    assert store.transition(job_id, "received").state == "received"


def test_transition_of_an_unknown_job_is_a_key_error(store):
    with pytest.raises(KeyError):
        store.transition("no-such-job", "reading")


def test_advance_moves_only_from_an_expected_state(store):
    job_id = _job(store)
    assert store.advance(job_id, ["received"], "reading", round_trips=3)
    row = store.job(job_id)
    assert (row.state, row.round_trips) == ("reading", 3)
    assert not store.advance(job_id, ["received"], "reading")  # a redelivered message
    assert store.job(job_id).state == "reading"
    with pytest.raises(ValueError, match="not allowed"):
        store.advance(job_id, ["reading"], "done")
    assert store.job(job_id).state == "reading"


def test_advance_to_a_final_state_records_when_it_finished(store):
    job_id = _job(store)
    assert store.advance(job_id, ["received", "reading"], "skipped", reason="not inpatient")
    row = store.job(job_id)
    assert (row.state, row.reason) == ("skipped", "not inpatient")
    assert row.finished_at is not None


def test_racing_advances_of_one_job_let_exactly_one_win(store):
    for round_ in range(3):
        job_id = _job(store, f"enc-race-{round_}")
        results = _race(8, lambda _, job_id=job_id: store.advance(job_id, ["received"], "reading"))
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert results.count(True) == 1, results
        assert store.job(job_id).state == "reading"


# -- intake --------------------------------------------------------------------------------------


def test_a_notification_makes_one_job_per_encounter(store):
    result = store.record_notification(
        SUB,
        "event-notification",
        events=[(1, "Encounter/enc-a"), (2, "Encounter/enc-b"), (3, "Patient/pat-1")],
    )
    assert (result.events, result.gap, result.reconcile) == (3, None, False)
    assert len(result.jobs) == 2
    jobs = {store.job(job_id).encounter_id: store.job(job_id) for job_id in result.jobs}
    assert set(jobs) == {"enc-a", "enc-b"}
    for job in jobs.values():
        assert (job.state, job.source, job.subscription_id) == ("received", "notification", SUB)
        assert job.enqueued_at is None  # committed unsent: the webhook sends it after the commit
    events = store.events(SUB)
    assert sorted((e.event_number, e.focus) for e in events) == [
        (1, "Encounter/enc-a"),
        (2, "Encounter/enc-b"),
        (3, "Patient/pat-1"),
    ]
    assert {e.focus: e.job_id for e in events}["Patient/pat-1"] is None
    subscription = store.subscription(SUB)
    assert (subscription.notifications, subscription.events_since) == (1, 3)


def test_a_second_notification_for_a_waiting_encounter_attaches_to_its_job(store):
    first = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/enc-1")])
    second = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/enc-1")])
    assert len(first.jobs) == 1
    assert second.jobs == ()  # already sent to the broker once
    assert len(store.jobs(encounter_id="enc-1")) == 1
    assert [e.job_id for e in store.events(SUB)] == [first.jobs[0], first.jobs[0]]
    assert store.subscription(SUB).notifications == 2


def test_an_encounter_whose_job_has_started_gets_a_new_job(store):
    (first,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/e")]).jobs
    assert store.advance(first, ["received"], "reading")
    (second,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/e")]).jobs
    assert second != first
    assert len(store.jobs(encounter_id="e")) == 2


def test_a_job_left_unsent_is_the_relays_to_send_not_the_next_deliverys(store):
    """The broker was down when the job was committed: a later delivery for the Encounter
    attaches to the waiting job and sends nothing; the outbox relay finds it unsent."""
    (job_id,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/e")]).jobs
    assert store.job(job_id).enqueued_at is None
    again = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/e")])
    assert again.jobs == ()
    assert len(store.jobs(encounter_id="e")) == 1
    assert store.unsent_jobs(utcnow() - timedelta(minutes=5)) == []  # its sender may be at it
    later = utcnow() + timedelta(seconds=1)
    assert store.unsent_jobs(later) == [job_id]
    store.mark_sent([job_id])
    assert store.job(job_id).enqueued_at is not None
    assert store.unsent_jobs(later) == []


def test_only_waiting_jobs_are_unsent_and_marking_sent_keeps_the_first_time(store):
    (waiting,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/s")]).jobs
    (started,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/t")]).jobs
    store.advance(started, ("received",), "reading")
    later = utcnow() + timedelta(seconds=1)
    assert store.unsent_jobs(later) == [waiting]
    first = utcnow()
    store.mark_sent([waiting], first)
    store.mark_sent([waiting], first + timedelta(minutes=1))  # a second send (the relay's)
    assert as_utc(store.job(waiting).enqueued_at) == first


def test_on_postgresql_the_intake_waits_for_the_flush_and_the_mark_sent_does_not(store):
    """A lost mark-sent costs a second send; a lost notification would cost a draft."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    (job_id,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/f")]).jobs
    store.mark_sent([job_id])
    assert store.job(job_id).enqueued_at is not None
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    with store._single.connect() as connection:  # the pool the mark-sent runs on
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        # the URL's own options (here the test's search_path) still hold
        path = connection.exec_driver_sql("SHOW search_path").scalar()
    assert path == store.engine.url.query["options"].split("=", 1)[1]


def test_an_event_number_gap_is_detected_and_counted(store):
    first = store.record_notification(SUB, "event-notification", events=[(1, "Encounter/a")])
    assert first.gap is None
    later = store.record_notification(SUB, "event-notification", events=[(4, "Encounter/b")])
    assert later.gap == (2, 3)
    assert later.reconcile
    assert any("2-3" in note for note in later.notes)
    assert len(later.jobs) == 1  # event 4 itself is still drafted
    subscription = store.subscription(SUB)
    assert (subscription.gaps_detected, subscription.events_since) == (1, 4)
    store.count_recovery(SUB)
    assert store.subscription(SUB).gaps_recovered == 1


def test_a_gap_between_events_of_one_notification_is_detected(store):
    store.record_notification(SUB, "event-notification", events=[(1, "Encounter/a")])
    result = store.record_notification(
        SUB, "event-notification", events=[(2, "Encounter/b"), (5, "Encounter/c")]
    )
    assert result.gap == (3, 4)
    assert store.subscription(SUB).gaps_detected == 1


def test_a_heartbeat_counting_more_events_than_seen_is_a_gap(store):
    store.record_notification(SUB, "event-notification", events=[(1, "Encounter/a")])
    quiet = store.record_notification(SUB, "heartbeat", events_since=1)
    assert (quiet.gap, quiet.jobs, quiet.reconcile) == (None, (), False)
    heartbeat = store.record_notification(SUB, "heartbeat", events_since=3)
    assert heartbeat.gap == (2, 3)
    assert heartbeat.jobs == ()
    assert heartbeat.reconcile
    subscription = store.subscription(SUB)
    assert subscription.last_heartbeat_at is not None
    assert (subscription.gaps_detected, subscription.events_since) == (1, 3)


def test_an_event_number_already_seen_is_noted_and_makes_no_job(store):
    (job_id,) = store.record_notification(
        SUB, "event-notification", events=[(1, "Encounter/a")]
    ).jobs
    assert store.advance(job_id, ["received"], "reading")  # so only the number can dedupe
    again = store.record_notification(SUB, "event-notification", events=[(1, "Encounter/a")])
    assert again.jobs == ()
    assert again.gap is None
    assert any("event 1 already received" in note for note in again.notes)
    latest = store.events(SUB)[0]
    assert latest.job_id is None
    assert "already received" in latest.note
    assert len(store.jobs(encounter_id="a")) == 1


def test_a_late_event_that_fills_a_gap_is_drafted(store):
    store.record_notification(SUB, "event-notification", events=[(1, "Encounter/a")])
    assert store.record_notification(SUB, "event-notification", events=[(3, "Encounter/c")]).gap
    late = store.record_notification(SUB, "event-notification", events=[(2, "Encounter/b")])
    assert len(late.jobs) == 1
    assert store.job(late.jobs[0]).encounter_id == "b"


def test_racing_deliveries_for_one_encounter_make_one_job(store):
    for round_ in range(3):
        focus = f"Encounter/race-{round_}"
        results = _race(
            6,
            lambda _, focus=focus: store.record_notification(
                SUB, "rest-hook", events=[(None, focus)]
            ),
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        sent = [job for result in results for job in result.jobs]
        assert len(sent) == 1  # enqueued once
        assert len(store.jobs(encounter_id=focus.removeprefix("Encounter/"))) == 1


class _WriteBlocker:
    """Another session holding the subscription's row (PostgreSQL) or the write lock (SQLite),
    so that notifications recorded meanwhile queue up behind it in a known order."""

    def __init__(self, store: Store, subscription: str) -> None:
        self.store = store
        self.postgres = store.engine.dialect.name == "postgresql"
        self.connection = store.engine.raw_connection()
        cursor = self.connection.cursor()
        if self.postgres:
            cursor.execute("SELECT pg_backend_pid()")
            self.pid = cursor.fetchone()[0]
            cursor.execute("SELECT 1 FROM subscriptions WHERE id = %s FOR UPDATE", (subscription,))
        else:
            self.connection.driver_connection.isolation_level = None
            cursor.execute("BEGIN IMMEDIATE")
        cursor.close()

    def wait_for_waiters(self, count: int) -> None:
        """Until ``count`` sessions wait behind us (SQLite cannot tell: give them time)."""
        if not self.postgres:
            time.sleep(0.6 if count == 1 else 0.02)
            return
        deadline = time.monotonic() + 20
        query = sa.text(
            "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        )
        with self.store.engine.connect() as connection:
            while time.monotonic() < deadline:
                blocked = {pid: by for pid, by in connection.execute(query)}
                behind_us = {self.pid}  # waiting on us, or on someone waiting on us
                while grown := {p for p, by in blocked.items() if behind_us & set(by)} - behind_us:
                    behind_us |= grown
                if len(behind_us) - 1 >= count:
                    return
                time.sleep(0.01)
        raise TimeoutError(f"{count} waiters never queued up")

    def release(self) -> None:
        self.connection.rollback()
        if not self.postgres:
            self.connection.driver_connection.isolation_level = ""
        self.connection.close()


def test_racing_notifications_keep_the_highest_event_number(store):
    for round_ in range(4):
        subscription = f"racing-{round_}"
        store.add_subscription(id=subscription, kind="topic", criteria="http://example.org/t")

        def deliver(index: int, subscription: str = subscription) -> Any:
            return store.record_notification(
                subscription, "event-notification", events=[(index + 1, f"Encounter/e{index}")]
            )

        results = _race(8, deliver)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert store.subscription(subscription).events_since == 8
        assert len(store.events(subscription)) == 8


def test_a_notification_waiting_on_another_sees_its_event_numbers(store):
    """Event 2's notification commits while event 1's waits: events_since must stay 2.

    (Reading ``events_since`` before taking the row let event 1 write back a stale 1.)

    PostgreSQL grants the row to waiters in order, so event 2 queues first; SQLite's busy
    handler polls the newest waiter most often, so event 1 waits first and event 2 joins late.
    """
    first, second = (2, 1) if store.engine.dialect.name == "postgresql" else (1, 2)
    for round_ in range(6):
        subscription = f"race-{round_}"
        store.add_subscription(id=subscription, kind="topic", criteria="http://example.org/t")
        blocker = _WriteBlocker(store, subscription)
        results: dict[int, Any] = {}

        def deliver(number: int, subscription: str = subscription, results=results) -> None:
            try:
                results[number] = store.record_notification(
                    subscription, "event-notification", events=[(number, f"Encounter/e{number}")]
                )
            except Exception as exc:  # noqa: BLE001 - the test asserts on it
                results[number] = exc

        threads = []
        try:
            for waiters, number in enumerate((first, second), start=1):
                threads.append(threading.Thread(target=deliver, args=(number,)))
                threads[-1].start()
                blocker.wait_for_waiters(waiters)
        finally:
            blocker.release()
            for thread in threads:
                thread.join(timeout=60)
        assert not [r for r in results.values() if isinstance(r, BaseException)], results
        assert store.subscription(subscription).events_since == 2


def test_a_ping_or_an_empty_event_asks_for_reconciliation(store):
    ping = store.record_notification(SUB, "ping")
    assert (ping.jobs, ping.reconcile, ping.events) == ((), True, 1)
    empty = store.record_notification(SUB, "event-notification", events=[(1, None)])
    assert (empty.jobs, empty.reconcile, empty.gap) == ((), True, None)


def test_jobs_whose_message_was_lost_are_sent_again_only_when_messages_are_missing(store):
    from fhirgen.config import load_settings
    from fhirgen.service.jobs import lost_jobs

    runtime = SimpleNamespace(store=store, settings=load_settings(requeue_after=60))
    (old,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/o")]).jobs
    (started,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/p")]).jobs
    store.mark_sent([old, started])
    store.advance(started, ("received",), "reading")
    later = utcnow() + timedelta(seconds=61)
    assert lost_jobs(runtime, queued=0, now=utcnow()) == []  # not waiting long enough
    assert lost_jobs(runtime, queued=1, now=later) == []  # its message may still be queued
    assert lost_jobs(runtime, queued=0, now=later) == [old]  # the broker lost it
    assert store.job(old).enqueued_at is not None
    assert lost_jobs(runtime, queued=0, now=later) == []  # once per requeue_after, not each run
    assert store.job(started).state == "reading"


def test_a_lost_job_is_reclaimed_by_one_sweeper_only(store):
    (job,) = store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/q")]).jobs
    store.mark_sent([job])
    seen = store.waiting_since(utcnow() + timedelta(seconds=1))
    assert [job_id for job_id, _ in seen] == [job]
    assert store.count_waiting_since(utcnow() + timedelta(seconds=1)) == 1
    assert store.count_waiting_since(utcnow() - timedelta(seconds=60)) == 0
    now = utcnow()
    assert store.reclaim_enqueue(seen, now) == [job]
    assert store.reclaim_enqueue(seen, now) == []


def test_a_discharge_time_with_an_offset_is_kept_as_the_same_instant(store):
    from datetime import datetime, timezone

    job = _job(store, "enc-tz")
    eastern = datetime(2026, 11, 28, 12, 25, tzinfo=timezone(timedelta(hours=-5)))
    store.advance(job, ("received",), "reading")
    store.advance(job, ("reading",), "generating", discharged_at=eastern)
    assert as_utc(store.job(job).discharged_at) == eastern  # 17:25 UTC, not 12:25 UTC


# -- draft claims ---------------------------------------------------------------------------------


def test_a_draft_claim_goes_to_one_job_per_encounter_version(store):
    first = _job(store, "enc-1")
    second, _ = store.create_job("enc-1", source="manual", regeneration=1)
    assert store.claim_draft(first, "enc-1", "3") is None
    assert store.claim_draft(second, "enc-1", "3") == first
    assert store.claim_draft(first, "enc-1", "3") is None  # the holder may ask again
    assert store.claim_draft(second, "enc-1", "4") is None  # another version is free
    assert store.drafted_versions(["enc-1", "enc-2"]) == {"enc-1": {"3", "4"}}


def test_racing_draft_claims_grant_exactly_one(store):
    jobs = [store.create_job("enc-1", source="manual", regeneration=i + 1)[0] for i in range(6)]

    def claim(index: int) -> tuple[str, str | None]:
        return jobs[index], store.claim_draft(jobs[index], "enc-1", "7")

    results = _race(len(jobs), claim)
    assert [r for r in results if isinstance(r, BaseException)] == []
    winners = [job_id for job_id, holder in results if holder is None]
    assert len(winners) == 1
    assert {holder for _, holder in results if holder is not None} == set(winners)


def test_a_released_claim_can_be_taken_but_a_written_one_cannot(store):
    failed, retry, third = (_job(store, f"e{i}") for i in range(3))
    assert store.claim_draft(failed, "enc-1", "3") is None
    store.release_draft(failed)
    assert store.claim_draft(retry, "enc-1", "3") is None
    store.record_written(retry, "DocumentReference/d1")
    store.release_draft(retry)  # written drafts stay claimed
    assert store.claim_draft(third, "enc-1", "3") == retry


def test_latest_written_is_the_newest_document_of_other_jobs(store):
    old, new, current = (_job(store, f"e{i}") for i in range(3))
    assert store.latest_written("enc-1", other_than=current) is None
    store.claim_draft(old, "enc-1", "1")
    store.record_written(old, "DocumentReference/old")
    time.sleep(0.01)
    store.claim_draft(new, "enc-1", "2")
    store.record_written(new, "DocumentReference/new")
    store.claim_draft(current, "enc-1", "3")  # claimed, not written yet
    assert store.latest_written("enc-1", other_than=current) == "DocumentReference/new"
    assert store.latest_written("enc-1", other_than=new) == "DocumentReference/old"
    assert store.latest_written("enc-2", other_than=current) is None


def test_the_latest_written_draft_keeps_the_facts_fingerprint_its_job_read(store):
    written, skipped, current = (_job(store, f"f{i}") for i in range(3))
    store.claim_draft(written, "enc-1", "1", fingerprint="a" * 64)
    store.record_written(written, "DocumentReference/d1")
    time.sleep(0.01)
    store.claim_draft(skipped, "enc-1", "2", fingerprint="a" * 64)  # claimed, never written
    store.claim_draft(current, "enc-1", "3", fingerprint="b" * 64)
    latest = store.latest_written_draft("enc-1", other_than=current)
    assert latest == (written, "DocumentReference/d1", "a" * 64)
    assert store.latest_written_draft("enc-2", other_than=current) is None


# -- artifacts, audit, values ---------------------------------------------------------------------


def test_artifacts_are_stored_replaced_and_dropped(store):
    job_id = _job(store)
    assert store.artifact(job_id, "facts") is None
    binary = bytes(range(256))
    store.put_artifact(job_id, "facts", b'{"facts": 1}')
    store.put_artifact(job_id, "bundle", binary)
    store.put_artifact(job_id, "facts", b'{"facts": 2}')
    assert store.artifact(job_id, "facts") == b'{"facts": 2}'
    assert store.artifact(job_id, "bundle") == binary
    store.drop_artifacts(job_id, ["bundle", "absent"])
    assert store.artifact(job_id, "bundle") is None
    assert store.artifact(job_id, "facts") == b'{"facts": 2}'


def test_audit_entries_are_kept_newest_first(store):
    job_id = _job(store)
    store.audit("alice@example.org", "view-draft", job_id=job_id, detail="console")
    store.audit("system", "reconcile")
    entries = store.audit_entries()
    assert [(e.actor, e.action, e.job_id, e.detail) for e in entries] == [
        ("system", "reconcile", None, None),
        ("alice@example.org", "view-draft", job_id, "console"),
    ]
    assert all(e.at is not None for e in entries)
    assert len(store.audit_entries(limit=1)) == 1


def test_small_values_are_set_and_overwritten(store):
    assert store.get_value("reconcile.watermark") is None
    store.set_value("reconcile.watermark", "2024-05-29T00:00:00Z")
    store.set_value("reconcile.watermark", "2024-05-30T00:00:00Z")
    store.set_value("other", "x")
    assert store.get_value("reconcile.watermark") == "2024-05-30T00:00:00Z"
    assert store.get_value("other") == "x"


def test_state_counts_and_ping(store):
    a, b = _job(store, "a"), _job(store, "b")
    store.transition(a, "reading")
    store.ping()
    assert store.state_counts() == {"received": 1, "reading": 1}
    assert store.active_job_encounters(["a", "b", "c"]) == {"a", "b"}
    store.transition(b, "skipped")
    assert store.active_job_encounters(["a", "b", "c"]) == {"a"}


def _random_notifications(seed: int, count: int) -> list[Any]:
    """Notifications as EHRs send them, at random: rest-hooks, numbered events (duplicates,
    gaps, late arrivals, some without a focus), heartbeats, pings, across two subscriptions."""
    import random

    from fhirgen.store import Received

    rng = random.Random(seed)
    sent = {SUB: 0, "sub-2": 0}
    found = []
    for _ in range(count):
        sub = rng.choice([SUB, "sub-2"])
        kind = rng.choice(["rest-hook", "event-notification", "event-notification", "heartbeat"])
        if kind == "rest-hook":
            found.append(Received(sub, kind, ((None, f"Encounter/e{rng.randrange(6)}"),)))
        elif kind == "heartbeat":
            found.append(Received(sub, kind, (), rng.choice([None, sent[sub], sent[sub] + 2])))
        else:
            events = []
            for _ in range(rng.randrange(1, 4)):
                sent[sub] += rng.choice([1, 1, 1, 2])  # sometimes one goes missing
                number = rng.choice([sent[sub], sent[sub], max(1, sent[sub] - 2)])  # or late
                focus = rng.choice([f"Encounter/e{rng.randrange(6)}", None, "Patient/p1"])
                events.append((number, focus))
            found.append(Received(sub, kind, tuple(events), sent[sub]))
        if rng.random() < 0.1:
            found.append(Received(sub, "ping", ((None, None),)))
        if rng.random() < 0.3:  # the EHR reports an error, or a handshake makes it active
            status = rng.choice(["active", "error"])
            kind = "handshake" if status == "active" else "heartbeat"
            found.append(Received(sub, kind, (), None, status))
    return found


def _what_was_recorded(store: Store, results: list[Any]) -> Any:
    """Results and rows with job ids replaced by the order they were first seen in."""
    from fhirgen.store.models import Job, NotificationEvent, Subscription

    names: dict[str, int] = {}

    def name(job_id: str | None) -> int | None:
        return None if job_id is None else names.setdefault(job_id, len(names))

    outcomes = [
        (r.events, tuple(name(j) for j in r.jobs), r.gap, r.reconcile, r.notes) for r in results
    ]
    with store.engine.connect() as connection:
        subs = connection.execute(
            sa.select(
                Subscription.id,
                Subscription.notifications,
                Subscription.events_since,
                Subscription.gaps_detected,
                Subscription.status,
                Subscription.error,
            ).order_by(Subscription.id)
        ).all()
        events = connection.execute(
            sa.select(
                NotificationEvent.subscription_id,
                NotificationEvent.kind,
                NotificationEvent.event_number,
                NotificationEvent.focus,
                NotificationEvent.note,
                NotificationEvent.job_id,
            ).order_by(NotificationEvent.subscription_id, NotificationEvent.id)
        ).all()
        jobs = connection.execute(sa.select(Job.id, Job.encounter_id, Job.state)).all()
    return (
        outcomes,
        [tuple(row) for row in subs],
        [(*row[:5], name(row[5])) for row in events],
        sorted((name(job.id), job.encounter_id, job.state) for job in jobs),
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_group_of_notifications_is_recorded_as_if_one_at_a_time(database_url, tmp_path, seed):
    """Notifications recorded in one transaction: results, counters, events and jobs must be
    those of recording them one by one in the same order. Between groups, as in life, workers
    start waiting jobs and the webhook marks some sent."""
    import random

    from fhirgen.store.models import Job

    notifications = _random_notifications(seed, 80)
    rng = random.Random(seed)
    groups, start = [], 0
    while start < len(notifications):
        size = rng.randrange(1, 9)
        groups.append(notifications[start : start + size])
        start += size
    alone_url = f"sqlite:///{tmp_path / 'alone.db'}"
    recorded = []
    for url, grouped in [(alone_url, False), (database_url, True)]:
        store = Store(url)
        store.migrate()
        for sub in (SUB, "sub-2"):
            store.add_subscription(id=sub, kind="topic", criteria="x", events_since=0)
        try:
            results = []
            for number, group in enumerate(groups):
                if grouped:
                    results.extend(store.record_notifications(group))
                else:
                    for received in group:
                        results.extend(store.record_notifications([received]))
                waiting = [job.id for job in store.jobs() if job.state == "received"]
                if number % 3 == 2:  # a worker starts them: the next notification makes anew
                    with store.engine.begin() as connection:
                        connection.execute(
                            sa.update(Job).where(Job.id.in_(waiting)).values(state="reading")
                        )
                elif number % 4 == 3:  # the broker took them
                    store.mark_sent(waiting)
            recorded.append(_what_was_recorded(store, results))
        finally:
            store.dispose()
    alone, grouped_ = recorded
    assert grouped_[0] == alone[0]  # what each notification's sender was told
    assert grouped_[1:] == alone[1:]  # what the store holds
    assert any(outcome[2] for outcome in alone[0])  # the sample has gaps,
    assert any("already received" in note for o in alone[0] for note in o[4])  # duplicates,
    assert any(len(set(o[1])) < o[0] for o in alone[0] if o[1])  # and shared jobs
    assert any(n.status == "error" for n in notifications)  # and status changes


def test_a_failed_intake_leaves_nothing_behind_and_the_next_one_records(tmp_path):
    """A group that fails half way is rolled back, not committed with the next group."""
    from fhirgen.store import Received, StoreError

    store = Store(f"sqlite:///{tmp_path}/fhirgen.db")
    store.migrate()
    store.add_subscription(id=SUB, kind="rest-hook", criteria="x", status="active")
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER poison BEFORE INSERT ON notification_events"
            " WHEN NEW.focus = 'Encounter/poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        )

    def received(encounter: str) -> Received:
        return Received(SUB, "rest-hook", ((None, f"Encounter/{encounter}"),))

    try:
        with pytest.raises(StoreError):
            store.record_notifications([received("before-poison"), received("poison")])
        (result,) = store.record_notifications([received("after")])
        assert len(result.jobs) == 1
        assert [job.encounter_id for job in store.jobs()] == ["after"]
        assert store.subscription(SUB).notifications == 1
    finally:
        store.dispose()


def test_partial_indexes_still_serve_the_queries_that_need_them(tmp_path):
    """Indexes the intake no longer writes for a new job or a rest-hook event (migration 0007)
    must still be the ones SQLite picks for the lookups and console filters they exist for."""
    from fhirgen.store.console import JobFilter
    from fhirgen.store.intake import _SEEN_EVENTS
    from fhirgen.store.models import Job, NotificationEvent

    store = Store(f"sqlite:///{tmp_path}/fhirgen.db")
    store.migrate()
    jobs, events = Job.__table__, NotificationEvent.__table__
    since = utcnow() - timedelta(hours=24)
    try:
        with store.engine.connect() as connection:
            queries = {
                "ix_events_subscription_number": _SEEN_EVENTS.params(sid=SUB, number=3),
                "ix_events_job": sa.select(events).where(events.c.job_id == "j1"),
                "ix_jobs_backend_created": sa.select(jobs.c.id)
                .where(*JobFilter(backend="template").conditions(connection))
                .order_by(jobs.c.created_at.desc()),
                "ix_jobs_finished": sa.select(jobs.c.id).where(jobs.c.finished_at >= since),
            }
            for index, query in queries.items():
                compiled = query.compile(
                    dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
                )
                plan = connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {compiled.string}",
                    tuple(compiled.construct_params()[name] for name in compiled.positiontup),
                ).all()
                assert any(index in row[-1] for row in plan), (index, plan)
    finally:
        store.dispose()


def test_a_store_that_cannot_be_reached_raises_store_unavailable():
    """SQLAlchemy's connection errors come out as the tree's ``StoreUnavailable``."""
    from fhirgen.errors import StoreUnavailable, TransientError

    store = Store("postgresql+psycopg://nobody@127.0.0.1:1/x")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            store.ping()
        assert isinstance(raised.value, TransientError)
        with pytest.raises(StoreUnavailable):
            store.record_notification(SUB, "rest-hook", events=[(None, "Encounter/e")])
    finally:
        store.dispose()


def test_a_locked_sqlite_file_is_store_unavailable_and_integrity_errors_are_not(tmp_path):
    from fhirgen.errors import StoreUnavailable
    from fhirgen.store import StoreError

    store = Store(f"sqlite:///{tmp_path}/fhirgen.db")
    store.migrate()
    store.add_subscription(id=SUB, kind="rest-hook", criteria="x", status="active")
    blocker = sa.create_engine(f"sqlite:///{tmp_path}/fhirgen.db")
    try:
        with pytest.raises(StoreError) as duplicate:
            store.add_subscription(id=SUB, kind="rest-hook", criteria="x")
        assert not isinstance(duplicate.value, StoreUnavailable)
        with blocker.connect() as holding:
            holding.exec_driver_sql("BEGIN EXCLUSIVE")
            slow = Store(f"sqlite:///{tmp_path}/fhirgen.db")
            sa.event.listen(
                slow.engine,
                "connect",
                lambda dbapi, _r: dbapi.execute("PRAGMA busy_timeout=50"),
            )
            try:
                with pytest.raises(StoreUnavailable):
                    slow.record_notification(SUB, "rest-hook", events=[(None, "Encounter/e")])
            finally:
                slow.dispose()
            holding.exec_driver_sql("ROLLBACK")
    finally:
        blocker.dispose()
        store.dispose()
