"""Clients that trickle their headers or bodies do not take the webhook, straight at
``fhirgen serve`` or behind the shipped proxy.

``fhirgen serve`` runs 4 threads per worker; gunicorn's threaded worker gave a connection one
until the request had been read, so ten trickling clients took them all. Here 24 connections
trickle (half their headers, half a body they announced) while the EHR's notifications and
/healthz are sent the same way: each is answered at once, and every notification is recorded.
Once straight at the server (webhooks/asgi.py reads requests whole before a thread sees them),
once through nginx with deploy/nginx/fhirgen.conf; that one needs nginx on PATH (`make
.venv/.dev` installs Debian's where it can) and skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhirgen.cli.processes import free_port, wait_for
from tests.live import LiveSystem

pytestmark = pytest.mark.live
SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "fhirgen.conf"
TRICKLERS = 24


def nginx_config(folder: Path, listen: int, upstream: int) -> Path:
    """The shipped configuration with this test's ports, in an nginx.conf of the test's own."""
    shipped = SHIPPED.read_text()
    assert "server 127.0.0.1:8000;" in shipped and "listen 8080;" in shipped
    site = folder / "fhirgen.conf"
    site.write_text(
        shipped.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};").replace(
            "listen 8080;", f"listen 127.0.0.1:{listen};"
        )
    )
    temp = folder / "temp"
    temp.mkdir()
    main = folder / "nginx.conf"
    main.write_text(
        f"""{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""
    )
    return main


@pytest.fixture(params=["direct", "proxied"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveSystem, str]]:
    """The webhook's base URL: ``fhirgen serve`` itself, or nginx in front of it."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if request.param == "proxied" and nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    system = LiveSystem(tmp_path / "system", ehr_url="http://127.0.0.1:9/fhir").start(worker=None)
    if request.param == "direct" or nginx is None:
        try:
            yield system, f"http://127.0.0.1:{system.web_port}"
        finally:
            system.stop()
        return
    port = free_port()
    config = nginx_config(tmp_path, port, system.web_port)
    proxy = subprocess.Popen([nginx, "-c", str(config), "-p", str(tmp_path)])
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", timeout=30, process=proxy, ok=300)
        yield system, f"http://127.0.0.1:{port}"
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        system.stop()


def trickle(address: tuple[str, int], head: bytes, drip: bytes, stop: threading.Event) -> None:
    """Send ``head``, then one byte of ``drip`` every half second until ``stop``."""
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(head)
        for byte in drip:
            if stop.wait(0.5):
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return  # the server or proxy gave up on it: that is its job


def encounter(encounter_id: str) -> bytes:
    return json.dumps(
        {
            "resourceType": "Encounter",
            "id": encounter_id,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
        }
    ).encode()


def test_trickling_clients_leave_health_and_notifications_answered(
    served: tuple[LiveSystem, str],
) -> None:
    system, base = served
    registration = system.local_subscription("rest-hook")
    path = f"/fhir/notify/{registration.id}"
    address = ("127.0.0.1", int(base.rsplit(":", 1)[1]))
    slow_headers = f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode()
    slow_body = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {registration.token}\r\n"
        "Content-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n{"
    ).encode()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=trickle,
            args=(address, slow_headers if i % 2 else slow_body, b"X-Slow: " + b"a" * 200, stop),
            daemon=True,
        )
        for i in range(TRICKLERS)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)  # every trickler connected and holding its request open
        answers = []
        for n in range(20):  # a connection each, as separate deliveries come
            health = httpx.get(f"{base}/healthz", timeout=5)
            notified = httpx.post(
                f"{base}{path}",
                content=encounter(f"slow-{n}"),
                headers={
                    "Authorization": f"Bearer {registration.token}",
                    "Content-Type": "application/fhir+json",
                },
                timeout=5,
            )
            answers.append((health.status_code, notified.status_code))
        assert answers == [(200, 200)] * 20
        assert all(t.is_alive() for t in threads[: TRICKLERS // 2]), "tricklers ended early"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    events = system.store.subscription(registration.id).notifications
    assert events == 20
