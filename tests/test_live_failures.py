"""The EHR and the machinery failing: the draft is still written exactly once.

A fault-injecting proxy sits between fhirgen and the EHR (sekmet-fhir): 503s, a 429 with
Retry-After, a timeout, a slow write during which the worker is killed. Redis itself goes down
while notifications arrive (they are answered 200 and drafted when it returns), or loses an
acknowledged notification's message.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta

import pytest
import redis

from fhirgen.store import utcnow
from tests.ehr import SekmetServer
from tests.live import (
    Fault,
    FaultProxy,
    LiveSystem,
    RedisServer,
    admitted,
    complete_drafts,
    discharged,
    drafts_in_ehr,
    sample_stay,
    wait_until,
    worker_children,
)
from workers.app import create_celery

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def ehr(tmp_path_factory):
    server = SekmetServer(tmp_path_factory.mktemp("ehr"), retries=8).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(ehr):
    front = FaultProxy(ehr.base_url)
    yield front
    front.close()


@pytest.fixture(scope="module")
def system(proxy, tmp_path_factory):
    live = LiveSystem(
        tmp_path_factory.mktemp("fhirgen"),
        proxy.base_url,
        # A Retry-After is honoured up to the backoff cap: 5 s here, above the 429's 3 s.
        extra_env={
            "FHIRGEN_EHR_TIMEOUT": "2",
            "FHIRGEN_VISIBILITY_TIMEOUT": "6",
            "FHIRGEN_RETRY_BACKOFF_MAX": "5",
        },
    ).start()
    live.subscribe()
    yield live
    live.stop()


def _discharge(ehr, name):
    stay = sample_stay(name)
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    return encounter["id"]


def _jobs_settled(system, encounter_id):
    """Every job of the stay finished, and a moment more for anything written twice to land."""
    wait_until(
        lambda: all(
            j.state in ("done", "skipped") for j in system.store.jobs(encounter_id=encounter_id)
        ),
        timeout=60,
        what="the jobs to settle",
    )
    time.sleep(1)


def _settled(ehr, system, encounter_id):
    wait_until(
        lambda: drafts_in_ehr(ehr, encounter_id)["Provenance"], timeout=120, what="the draft"
    )
    _jobs_settled(system, encounter_id)
    return drafts_in_ehr(ehr, encounter_id)


def _exactly_one_of_each(found):
    return {k: len(v) for k, v in found.items()} == {
        "DocumentReference": 1,
        "PatientInstructions": 1,
        "CarePlan": 1,
        "Provenance": 1,
    }


def _retries(system, job_id):
    return [
        e.detail
        for e in system.store.audit_entries(500)
        if e.job_id == job_id and e.action == "retry"
    ]


def test_503_twice_then_success(ehr, proxy, system):
    encounter_id = discharged(sample_stay("heart-failure"))["id"]
    proxy.add(Fault("GET", f"/Encounter/{encounter_id}", times=2, status=503))
    _discharge(ehr, "heart-failure")
    assert _exactly_one_of_each(_settled(ehr, system, encounter_id))
    (job,) = [j for j in system.store.jobs(encounter_id=encounter_id) if j.state == "done"]
    details = _retries(system, job.id)
    assert len(details) == 2 and all("TransientError" in d for d in details)


def test_429_with_retry_after_is_honoured(ehr, proxy, system):
    encounter_id = discharged(sample_stay("pneumonia"))["id"]
    proxy.add(
        Fault(
            "POST",
            "",
            times=1,
            status=429,
            headers={"Retry-After": "3"},
            body_contains=b'"transaction"',
        )
    )
    _discharge(ehr, "pneumonia")
    assert _exactly_one_of_each(_settled(ehr, system, encounter_id))
    (job,) = [j for j in system.store.jobs(encounter_id=encounter_id) if j.state == "done"]
    (detail,) = _retries(system, job.id)
    wait = float(detail.rsplit(" in ", 1)[1].removesuffix("s"))
    assert wait >= 3.0, detail


def test_a_timeout_is_retried(ehr, proxy, system):
    encounter_id = discharged(sample_stay("chest-pain-observation"))["id"]
    proxy.add(Fault("GET", f"/Encounter/{encounter_id}", times=1, delay=3.0))
    _discharge(ehr, "chest-pain-observation")
    assert _exactly_one_of_each(_settled(ehr, system, encounter_id))
    (job,) = [j for j in system.store.jobs(encounter_id=encounter_id) if j.state == "done"]
    assert len(_retries(system, job.id)) == 1


def test_a_worker_process_killed_mid_job_loses_nothing(ehr, proxy, system):
    encounter_id = discharged(sample_stay("hip-fracture"))["id"]
    proxy.add(Fault("POST", "", times=1, delay=4.0, body_contains=b'"transaction"'))
    started = len(proxy.started)
    _discharge(ehr, "hip-fracture")
    wait_until(lambda: len(proxy.started) > started, timeout=60, what="the slow write to begin")
    for pid in worker_children(system):
        os.kill(pid, signal.SIGKILL)  # the process running the write dies; the message survives
    found = _settled(ehr, system, encounter_id)
    assert _exactly_one_of_each(found)


def test_a_whole_worker_killed_mid_job_is_redelivered(ehr, proxy, system):
    stay = sample_stay("heart-failure")
    other = json.loads(json.dumps(discharged(stay)))
    # A second stay: the heart-failure patient's record again under new ids would be heavy;
    # instead re-admit and re-discharge the same Encounter as a new version, with a corrected
    # disposition (a version whose facts are unchanged is not drafted again).
    other["hospitalization"]["dischargeDisposition"]["text"] = "Home with services (corrected)"
    encounter_id = other["id"]
    proxy.add(Fault("GET", f"/Encounter/{encounter_id}", times=1, delay=4.0))
    started = len(proxy.started)
    ehr.put_all(admitted(stay))
    ehr.put_all([other])
    wait_until(lambda: len(proxy.started) > started, timeout=60, what="the slow read to begin")
    system.supervisor.stop("worker", sig=signal.SIGKILL, timeout=5)
    system.start_worker()  # a fresh worker: the unacknowledged message comes back after 6 s
    wait_until(
        lambda: len(drafts_in_ehr(ehr, encounter_id)["DocumentReference"]) == 2,
        timeout=120,
        what="the new version's draft",
    )
    _jobs_settled(system, encounter_id)
    assert len(drafts_in_ehr(ehr, encounter_id)["DocumentReference"]) == 2


def test_redis_down_the_ehrs_notification_is_answered_200_and_drafted_when_redis_returns(tmp_path):
    """The job row is the outbox: the EHR's notification while Redis is down is recorded and
    answered 200 (no 503, so the EHR does not retry); once Redis is back the relay (beat)
    sends the job, and the stay is drafted once."""
    ehr = SekmetServer(tmp_path / "ehr", retries=8).start()
    redis_server = RedisServer(tmp_path / "redis").start()
    live = LiveSystem(tmp_path / "fhirgen", ehr.base_url, redis_url=redis_server.url).start(
        beat=True
    )
    try:
        live.subscribe()
        stay = sample_stay("pneumonia")
        encounter = discharged(stay)
        ehr.put_all(admitted(stay))
        time.sleep(2)  # the notifications of loading the record (its clinic visit) settle
        redis_server.stop()
        ehr.put_all([encounter])
        (job,) = wait_until(
            lambda: live.store.jobs(encounter_id=encounter["id"]), what="the recorded job"
        )
        assert job.enqueued_at is None  # committed, not sent
        wait_until(lambda: "the relay sends it" in live.logs(), what="the webhook's warning")
        assert "answered 503" not in live.logs()
        assert not drafts_in_ehr(ehr, encounter["id"])["DocumentReference"]
        redis_server.start()
        found = wait_until(
            lambda: complete_drafts(ehr, encounter["id"]),
            timeout=120,
            what="the draft after Redis returned",
        )
        assert _exactly_one_of_each(found)
        jobs = live.store.jobs(encounter_id=encounter["id"])
        assert [j.state for j in jobs] == ["done"], "one job, recorded once"
        assert "outbox relay: sent 1 job(s)" in live.logs()
    finally:
        live.stop()
        redis_server.stop()
        ehr.stop()


def test_redis_stopped_mid_run_every_notification_is_answered_200_and_drafted_once(tmp_path):
    """Redis (the test's own) stops in the middle of a run: every notification sent meanwhile,
    repeats included, is answered 200; after Redis restarts every stay is drafted exactly once
    (one DocumentReference per stay in the EHR)."""
    ehr = SekmetServer(tmp_path / "ehr").start()
    redis_server = RedisServer(tmp_path / "redis").start()
    live = LiveSystem(tmp_path / "fhirgen", ehr.base_url, redis_url=redis_server.url).start(
        beat=True
    )
    try:
        registration = live.local_subscription("rest-hook")  # we deliver, the EHR holds stays
        encounters = {}
        for name in ("heart-failure", "pneumonia", "hip-fracture", "chest-pain-observation"):
            stay = sample_stay(name)
            ehr.put_all(admitted(stay))
            encounters[name] = discharged(stay)
            ehr.put_all([encounters[name]])
        first, *others = encounters.values()
        assert live.notify(registration, first).status_code == 200
        wait_until(lambda: complete_drafts(ehr, first["id"]), timeout=120, what="the first draft")
        redis_server.stop()
        answers = [live.notify(registration, encounter).status_code for encounter in others]
        answers += [live.notify(registration, others[0]).status_code]  # the EHR sends it again
        answers += [live.notify(registration, first).status_code]  # an update after drafting
        assert answers == [200] * len(answers)
        assert len(live.store.unsent_jobs(utcnow() + timedelta(seconds=1))) == len(others) + 1
        redis_server.start()
        for encounter in encounters.values():
            found = wait_until(
                lambda encounter=encounter: complete_drafts(ehr, encounter["id"]),
                timeout=180,
                what=f"the draft of {encounter['id']}",
            )
            _jobs_settled(live, encounter["id"])
            assert len(drafts_in_ehr(ehr, encounter["id"])["DocumentReference"]) == 1
            assert _exactly_one_of_each(found)
        assert live.store.unsent_jobs(utcnow() + timedelta(seconds=1)) == []
        assert "answered 503" not in live.logs()
    finally:
        live.stop()
        redis_server.stop()
        ehr.stop()


def test_a_message_lost_by_redis_is_sent_again_and_drafted_once(tmp_path):
    """Redis restarts without its data after a notification was acknowledged and enqueued."""
    ehr = SekmetServer(tmp_path / "ehr").start()
    redis_server = RedisServer(tmp_path / "redis").start()
    live = LiveSystem(
        tmp_path / "fhirgen",
        ehr.base_url,
        redis_url=redis_server.url,
        extra_env={"FHIRGEN_REQUEUE_AFTER": "1"},
    ).start(worker=None)  # nobody takes the message before Redis loses it
    try:
        live.subscribe()
        stay = sample_stay("pneumonia")
        encounter = discharged(stay)
        ehr.put_all(admitted(stay))
        ehr.put_all([encounter])
        (job,) = wait_until(
            lambda: live.store.jobs(encounter_id=encounter["id"]), what="the recorded job"
        )
        broker = redis.Redis.from_url(redis_server.url)
        wait_until(lambda: broker.llen("io"), what="the job's message")
        broker.flushall()  # what a restart without persistence leaves
        time.sleep(1.5)  # older than FHIRGEN_REQUEUE_AFTER
        live.start_worker()
        # What beat runs every minute, now.
        create_celery(live.settings).send_task("fhirgen.requeue_stalled")
        found = wait_until(
            lambda: complete_drafts(ehr, encounter["id"]),
            timeout=120,
            what="the draft of the job sent again",
        )
        assert _exactly_one_of_each(found)
        assert [j.state for j in live.store.jobs(encounter_id=encounter["id"])] == ["done"]
        assert job.state == "received"
        assert "sent again" in live.logs()
    finally:
        live.stop()
        redis_server.stop()
        ehr.stop()
