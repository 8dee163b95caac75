"""The job store failing under a running step, or a step's message lost: the job still
finishes, drafted once.

On PostgreSQL (the production store), the worker's connection is killed by the server
(``pg_terminate_backend``) while the read step is inside a statement: the step sees
``StoreUnavailable``, Celery retries the task, and the job reaches ``done`` with one draft in
the EHR (that test skips, saying why, when no PostgreSQL answers at
``FHIRGEN_TEST_POSTGRES_URL``). A job left in ``generating`` without a message past its
timeout is resumed by the sweeper.
"""

from __future__ import annotations

import time

import pytest
import redis
import sqlalchemy as sa

from tests.databases import fresh_database
from tests.ehr import SekmetServer
from tests.live import (
    Fault,
    FaultProxy,
    LiveSystem,
    admitted,
    complete_drafts,
    discharged,
    drafts_in_ehr,
    sample_stay,
    wait_until,
)
from workers.app import create_celery

pytestmark = pytest.mark.live

# The worker's claim on the stay, blocked on the test's lock of the drafts table.
_BLOCKED_CLAIM = sa.text(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
    " AND query ILIKE 'INSERT INTO drafts%'"
)


def _blocked_claims(admin: sa.Engine) -> list[int]:
    # A transaction of its own each time: pg_stat_activity is a snapshot per transaction.
    with admin.connect() as connection:
        return list(connection.execute(_BLOCKED_CLAIM).scalars())


def test_the_store_connection_killed_mid_step_the_job_finishes_drafted_once(tmp_path):
    with fresh_database("postgresql", tmp_path) as url:
        ehr = SekmetServer(tmp_path / "ehr", retries=8).start()
        proxy = FaultProxy(ehr.base_url)
        live = LiveSystem(
            tmp_path / "fhirgen",
            proxy.base_url,
            extra_env={"FHIRGEN_DATABASE_URL": url, "FHIRGEN_SECRET_KEY": "live-test-secret"},
        )
        admin = sa.create_engine(url)
        try:
            live.start()
            live.subscribe()
            stay = sample_stay("pneumonia")
            encounter_id = discharged(stay)["id"]
            # The read is slow at its start: time for the test to lock the drafts table.
            proxy.add(Fault("GET", f"/Encounter/{encounter_id}", times=1, delay=3.0))
            ehr.put_all(admitted(stay))
            ehr.put_all([discharged(stay)])
            wait_until(lambda: proxy.started, timeout=60, what="the read step to begin")
            with admin.connect() as locker:
                locker.execute(sa.text("LOCK TABLE drafts IN SHARE MODE"))  # writes wait
                (pid,) = wait_until(
                    lambda: _blocked_claims(admin), timeout=60, what="the claim to wait on the lock"
                )
                with admin.begin() as killer:
                    killer.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                locker.rollback()
            found = wait_until(
                lambda: complete_drafts(ehr, encounter_id), timeout=120, what="the draft"
            )
            (job,) = wait_until(
                lambda: [
                    j for j in live.store.jobs(encounter_id=encounter_id) if j.state == "done"
                ],
                timeout=60,
                what="the job to finish",
            )
            assert {k: len(v) for k, v in found.items()} == {
                "DocumentReference": 1,
                "PatientInstructions": 1,
                "CarePlan": 1,
                "Provenance": 1,
            }
            assert [j.state for j in live.store.jobs(encounter_id=encounter_id)] == ["done"]
            retries = [
                e.detail
                for e in live.store.audit_entries(500)
                if e.job_id == job.id and e.action == "retry"
            ]
            assert retries and "StoreUnavailable" in retries[0], retries
            assert len(drafts_in_ehr(ehr, encounter_id)["DocumentReference"]) == 1
        finally:
            live.stop()
            admin.dispose()
            proxy.close()
            ehr.stop()


def test_a_job_whose_step_was_lost_mid_job_is_resumed_by_the_sweeper(tmp_path):
    """A job in ``generating`` whose message Redis lost (no gpu worker took it yet) sits there
    past FHIRGEN_GENERATING_TIMEOUT; the sweeper (what beat runs every minute, sent now)
    sends its generate step again, and the job finishes, drafted once."""
    ehr = SekmetServer(tmp_path / "ehr").start()
    live = LiveSystem(
        tmp_path / "fhirgen", ehr.base_url, extra_env={"FHIRGEN_GENERATING_TIMEOUT": "1"}
    ).start(worker="io")  # reads and writes; nobody drafts yet
    try:
        live.subscribe()
        stay = sample_stay("heart-failure")
        encounter_id = discharged(stay)["id"]
        ehr.put_all(admitted(stay))
        ehr.put_all([discharged(stay)])
        (job,) = wait_until(
            lambda: [
                j for j in live.store.jobs(encounter_id=encounter_id) if j.state == "generating"
            ],
            what="the job to be read",
        )
        broker = redis.Redis.from_url(live.redis_url)
        wait_until(lambda: broker.llen("gpu"), what="the generate step's message")
        broker.delete("gpu")  # lost, as in a Redis restart without its data
        time.sleep(1.5)  # past FHIRGEN_GENERATING_TIMEOUT
        live.start_worker("gpu", name="gpu")
        create_celery(live.settings).send_task("fhirgen.requeue_stalled")
        found = wait_until(
            lambda: complete_drafts(ehr, encounter_id), timeout=120, what="the resumed draft"
        )
        wait_until(lambda: live.store.job(job.id).state == "done", what="the job to finish")
        assert {k: len(v) for k, v in found.items()} == {
            "DocumentReference": 1,
            "PatientInstructions": 1,
            "CarePlan": 1,
            "Provenance": 1,
        }
        assert [j.state for j in live.store.jobs(encounter_id=encounter_id)] == ["done"]
        assert "sat in generating over 1 s: step generate sent again" in live.logs()
    finally:
        live.stop()
        ehr.stop()
