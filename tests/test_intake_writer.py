"""The intake writer: the webhook's notifications recorded and enqueued by one process, with a
real store, a real Redis and the real Unix socket between them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhirgen.secrets import token_hash
from fhirgen.store import Received, Store
from tests import test_webhook_app as webhook_tests
from tests.test_webhook_app import BODY, TOKEN, Webhook, _assert_outcome, _send_to, _settings
from webhooks.intake_writer import Writer, WriterClients, socket_path
from workers.app import create_celery

# The webhook tests' Redis fixtures: one server for the module, and one a test stops and starts.
module_redis = webhook_tests.module_redis
redis_url = webhook_tests.redis_url
own_redis = webhook_tests.own_redis


class RunningWriter:
    """A ``Writer`` serving in a thread of the test process."""

    def __init__(self, settings: Any) -> None:
        self.store = Store.from_settings(settings)
        path = socket_path(self.store)
        assert path is not None
        self.writer = Writer(self.store, create_celery(settings), path)
        self.thread = threading.Thread(target=self.writer.run, kwargs={"poll": 0.05})
        self.thread.start()

    def stop(self) -> None:
        self.writer.stop()
        self.thread.join(10)
        self.store.dispose()


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def make(redis: str) -> tuple[Webhook, RunningWriter]:
        settings = _settings(tmp_path, redis)
        _send_to(settings, monkeypatch)
        writer = RunningWriter(settings)  # listening before the app looks for it
        hook = Webhook(settings)
        hook.store.add_subscription(
            id="sub-1",
            kind="rest-hook",
            criteria="x",
            status="active",
            token_hash=token_hash(TOKEN),
        )
        made.append((hook, writer))
        return hook, writer

    made: list[tuple[Webhook, RunningWriter]] = []
    yield make
    for hook, writer in made:
        writer.stop()
        hook.store.dispose()


def _body(encounter: str) -> bytes:
    return BODY.replace(b"enc-77", encounter.encode())


def test_notifications_go_through_the_writer_and_each_caller_gets_its_own_answer(setup, redis_url):
    hook, running = setup(redis_url)
    answers: dict[str, int] = {}

    def post(encounter: str) -> None:
        answers[encounter] = hook.post(body=_body(encounter)).status_code

    threads = [threading.Thread(target=post, args=(f"enc-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == {f"enc-{i}": 200 for i in range(6)}
    assert sum(running.writer.groups) == 6  # every one recorded by the writer
    jobs = {job.encounter_id: job.id for job in hook.store.jobs()}
    assert set(jobs) == {f"enc-{i}" for i in range(6)}
    queued = sorted(message["decoded"][0][0] for message in hook.queued("io"))
    assert queued == sorted(jobs.values())  # one message per job, ids only
    assert hook.post(body=_body("enc-3")).status_code == 200  # the EHR sends one again
    assert len(hook.store.jobs()) == 6
    assert len(hook.queued("io")) == 6


def test_broker_down_is_503_from_the_writer_and_the_retry_enqueues_the_job(setup, own_redis):
    hook, running = setup(own_redis.url)
    own_redis.stop()
    response = hook.post()
    assert _assert_outcome(response, 503)["code"] == "transient"
    (job,) = hook.store.jobs()  # recorded, and left for the retry to send
    assert (job.state, job.enqueued_at) == ("received", None)
    own_redis.start()
    assert hook.post().status_code == 200
    assert [j.id for j in hook.store.jobs()] == [job.id]
    (message,) = hook.queued("io")
    assert message["decoded"][0] == [job.id]
    assert sum(running.writer.groups) == 2


def test_a_store_error_in_the_writer_is_503_and_records_nothing(setup, redis_url):
    hook, _ = setup(redis_url)
    with hook.store.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER poison BEFORE INSERT ON notification_events"
            " BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        )
    response = hook.post()
    assert _assert_outcome(response, 503)["code"] == "transient"
    assert hook.store.jobs() == []
    assert hook.queued("io") == []


def test_when_the_writer_goes_the_webhook_records_for_itself(setup, redis_url):
    hook, running = setup(redis_url)
    assert hook.post(body=_body("enc-1")).status_code == 200
    running.stop()  # its connections close: the next answer cannot come from it
    lost = hook.post(body=_body("enc-2"))
    assert _assert_outcome(lost, 503)["code"] == "transient"  # unknown outcome: EHR retries
    assert hook.post(body=_body("enc-2")).status_code == 200  # recorded here, directly
    assert hook.post(body=_body("enc-3")).status_code == 200
    assert sorted(job.encounter_id for job in hook.store.jobs()) == ["enc-1", "enc-2", "enc-3"]
    assert len(hook.queued("io")) == 3
    assert sum(running.writer.groups) == 1


def test_a_frame_it_cannot_read_closes_that_connection_only(setup, redis_url):
    import socket
    import struct

    hook, running = setup(redis_url)
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bad.settimeout(5)
    bad.connect(running.writer.path)
    bad.sendall(struct.pack("!I", 7) + b"garbage")
    assert bad.recv(16) == b""  # closed on it
    bad.close()
    assert hook.post().status_code == 200
    assert len(hook.store.jobs()) == 1


def test_only_a_sqlite_file_with_a_short_path_gets_a_writer(tmp_path):
    short = Store(f"sqlite:///{tmp_path}/fhirgen.db")
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    long = Store(f"sqlite:///{deep}/fhirgen.db")
    memory = Store("sqlite://")
    postgres = Store("postgresql+psycopg://nobody@127.0.0.1:1/x")
    try:
        assert socket_path(short) == f"{tmp_path.resolve()}/fhirgen.db.intake.sock"
        assert socket_path(long) is None  # over what a Unix socket's path holds
        assert socket_path(memory) is None
        assert socket_path(postgres) is None
    finally:
        for store in (short, long, memory, postgres):
            store.dispose()


def test_an_unexpected_error_in_the_writer_is_503_and_it_serves_on(setup, redis_url, monkeypatch):
    hook, running = setup(redis_url)
    record = running.store.record_notifications
    monkeypatch.setattr(running.store, "record_notifications", lambda items: {}["a bug"])
    response = hook.post()
    assert _assert_outcome(response, 503)["code"] == "transient"
    monkeypatch.setattr(running.store, "record_notifications", record)
    assert hook.post().status_code == 200  # the same writer, still there
    assert len(hook.store.jobs()) == 1
    assert running.thread.is_alive()


def test_a_writer_that_stops_leaves_a_newer_writers_socket_alone(setup, redis_url):
    hook, old = setup(redis_url)
    newer = RunningWriter(hook.settings)  # takes the path over (a restart, a second server)
    try:
        old.stop()
        assert Path(newer.writer.path).exists()
        client = WriterClients(newer.writer.path).client()  # a worker connecting afresh
        assert client is not None
        (result,) = client.record([Received("sub-1", "rest-hook", ((None, "Encounter/e1"),))])
        assert len(result.jobs) == 1
        assert sum(newer.writer.groups) == 1
    finally:
        newer.stop()
