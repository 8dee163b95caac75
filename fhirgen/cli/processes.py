"""Starting and stopping the processes of a one-machine fhirgen (the demo, integration tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fhirgen.files import private_folder


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if nothing listens there, else any free port."""
    if preferred is not None:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    url: str, *, timeout: float, process: subprocess.Popen | None = None, ok: int = 500
) -> None:
    """Wait until ``url`` answers with a status below ``ok``; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code < ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


@dataclass
class Supervisor:
    """Children started with their output in ``logs/<name>.log``, stopped together."""

    folder: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    children: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(
        self, name: str, command: Sequence[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        logs = private_folder(self.folder / "logs")
        with (logs / f"{name}.log").open("ab") as log:
            child = subprocess.Popen(  # noqa: S603 - commands built by fhirgen itself
                list(command),
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                start_new_session=True,  # its own process group: stop() reaches grandchildren
            )
        self.children[name] = child
        return child

    def fhirgen(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``fhirgen ARGS`` with this interpreter."""
        return self.start(name, [sys.executable, "-m", "fhirgen", *args], env=env)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.folder / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(
        self, name: str | None = None, *, sig: int = signal.SIGTERM, timeout: float = 20
    ) -> None:
        """Stop one child (or all, newest first): ``sig``, then SIGKILL after ``timeout``."""
        names = [name] if name else list(reversed(self.children))
        for each in names:
            child = self.children.get(each)
            if child is None or child.poll() is not None:
                continue
            try:
                os.killpg(child.pid, sig)
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            except ProcessLookupError:
                pass

    def alive(self, name: str) -> bool:
        child = self.children.get(name)
        return child is not None and child.poll() is None
