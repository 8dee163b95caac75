"""A real FHIR server for integration tests: sekmet-fhir, started as its own process.

``SekmetServer`` writes a settings file, starts ``sekmet serve`` on a free port and waits for
``/metadata``. Tests talk to it over HTTP exactly as fhirgen talks to a hospital's EHR.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from fhirgen.fhir.client import put_transaction

SEKMET = shutil.which("sekmet") or str(Path(sys.executable).with_name("sekmet"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, *, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers (any status below 500)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


class SekmetServer:
    """One sekmet-fhir process with its own data folder."""

    def __init__(
        self,
        folder: Path,
        *,
        smart_clients: list[dict[str, Any]] | None = None,
        notify_method: str = "put-resource",
        retries: int = 3,
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        auth: dict[str, Any] = {"types": ["none"]}
        if smart_clients:
            auth = {"types": ["smart"], "smart_clients": smart_clients, "enforce_scopes": True}
        settings = {
            "base_url": self.base_url,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(folder / "data"),
            "simulator": {"enabled": False},
            "validation": {"inbound": "warn"},
            "subscriptions": {"notify_method": notify_method, "retries": retries},
            "server_auth": auth,
            "log_inbound": False,
            "own_private_key_path": str(folder / "keys" / "sekmet_private.pem"),
        }
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "settings.yaml"
        # JSON is YAML: no need for a YAML writer here.
        self.config.write_text(json.dumps(settings, indent=2))
        self.log = folder / "sekmet.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> SekmetServer:
        env = {**os.environ, "SEKMET_CONFIG": str(self.config)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [SEKMET, "serve", "--config", str(self.config)],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_http(f"{self.base_url}/metadata", timeout=60, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    # -- helpers tests use as "the hospital" ---------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def put_all(self, resources: Iterable[dict[str, Any]]) -> None:
        """Load resources with their ids, in one transaction."""
        with self.client() as client:
            response = client.post("", json=put_transaction(resources))
            response.raise_for_status()

    def search(self, path: str, **params: str) -> list[dict[str, Any]]:
        with self.client() as client:
            response = client.get(path, params={**params, "_count": "1000"})
            response.raise_for_status()
            return [e["resource"] for e in response.json().get("entry", [])]
