"""The EHR and the machinery failing: the draft is still written exactly once.

A fault-injecting proxy sits between fhirgen and the EHR (sekmet-fhir): 503s, a 429 with
Retry-After, a timeout, a slow write during which the worker is killed. Redis itself goes down
while a notification arrives, or loses an acknowledged notification's message.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.ehr import SekmetServer
from tests.live import (
    Fault,
    FaultProxy,
    LiveSystem,
    RedisServer,
    admitted,
    complete_drafts,
    descendants,
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
        extra_env={"FHIRGEN_EHR_TIMEOUT": "2", "FHIRGEN_VISIBILITY_TIMEOUT": "6"},
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
    other = {**discharged(stay)}
    # A second stay: the heart-failure patient's record again under new ids would be heavy;
    # instead re-admit and re-discharge the same Encounter as a new version.
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


def test_redis_down_gets_503_and_the_ehr_retry_completes(tmp_path):
    ehr = SekmetServer(tmp_path / "ehr", retries=8).start()  # retries over ~25 s
    redis_server = RedisServer(tmp_path / "redis").start()
    live = LiveSystem(tmp_path / "fhirgen", ehr.base_url, redis_url=redis_server.url).start()
    try:
        live.subscribe()
        stay = sample_stay("pneumonia")
        encounter = discharged(stay)
        ehr.put_all(admitted(stay))
        time.sleep(2)  # the notifications of loading the record (its clinic visit) settle
        redis_server.stop()
        ehr.put_all([encounter])
        wait_until(
            lambda: "answered 503" in live.logs(), timeout=30, what="a 503 while Redis is down"
        )
        assert not drafts_in_ehr(ehr, encounter["id"])["DocumentReference"]
        redis_server.start()
        found = wait_until(
            lambda: complete_drafts(ehr, encounter["id"]),
            timeout=120,
            what="the draft after Redis returned",
        )
        assert _exactly_one_of_each(found)
        jobs = live.store.jobs(encounter_id=encounter["id"])
        assert [j.state for j in jobs] == ["done"], "one job, recorded once, sent once"
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


def _intake_writers(system: LiveSystem) -> list[int]:
    """Pids of the intake writer processes under the web server (not their supervisor)."""
    writers = []
    for pid in descendants(system.supervisor.children["web"].pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"webhooks.intake_writer" in command and b"--supervise" not in command:
            writers.append(pid)
    return writers


def test_the_intake_writer_killed_loses_nothing_and_is_started_again(tmp_path):
    live = LiveSystem(tmp_path / "fhirgen", "http://127.0.0.1:9").start(worker=None)
    try:
        registration = live.local_subscription("rest-hook")
        (writer,) = _intake_writers(live)

        def notify(encounter: str) -> int:
            body = {"resourceType": "Encounter", "id": encounter, "status": "finished"}
            return live.notify(registration, body).status_code

        assert notify("before") == 200
        os.kill(writer, signal.SIGKILL)
        answers = [notify(f"during-{i}") for i in range(5)]
        assert set(answers) <= {200, 503} and answers[-1] == 200  # the webhook records itself
        retried = [f"during-{i}" for i, status in enumerate(answers) if status == 503]
        for encounter in retried:  # what the EHR does with a 503
            assert notify(encounter) == 200
        (restarted,) = wait_until(lambda: _intake_writers(live), timeout=30, what="a new writer")
        assert restarted != writer
        time.sleep(6)  # past the pause after which the workers ask the writer again
        assert notify("after") == 200
        wanted = {"before", "after", *(f"during-{i}" for i in range(5))}
        assert {job.encounter_id for job in live.store.jobs()} == wanted
        assert "intake writer exited" in live.logs()
        assert "intake writer unreachable" in live.logs()  # the workers said so
        metrics = httpx.get(f"{live.public_url}/metrics", timeout=10).text
        (count,) = re.findall(r"^fhirgen_intake_writer_unreachable_total (\S+)$", metrics, re.M)
        assert float(count) >= 1
    finally:
        live.stop()
