"""``fhirgen serve``'s gunicorn worker shares connections out among the workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fhirgen.processes import free_port, wait_for
from fhirgen.services import gunicorn_command
from webhooks import gunicorn_worker
from webhooks.gunicorn_worker import STALE_MS, Board

ROOT = Path(__file__).resolve().parents[1]


def pid_app(environ: dict, start_response: object) -> list[bytes]:
    """WSGI: answers with the pid of the worker process that served the request."""
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])  # type: ignore[operator]
    return [body]


class _Worker:
    def __init__(self, pid: object) -> None:
        self.pid = pid


def test_board_counts_live_accepting_workers_other_than_the_asker() -> None:
    board = Board()
    first, second, third = (board.assign(_Worker("[booting]")) for _ in range(3))
    assert (first, second, third) == (0, 1, 2)
    now = 10_000
    board.publish(first, 101, 3, now)
    assert board.fewest_elsewhere(first, now) is None  # the others have not started yet
    board.publish(second, 102, 1, now)
    board.publish(third, 103, -1, now)  # stopping, or full: takes no connections
    assert board.fewest_elsewhere(first, now) == 1
    assert board.fewest_elsewhere(second, now) == 3
    # A worker that stopped publishing (gone, or stuck) is not waited for.
    assert board.fewest_elsewhere(first, now + STALE_MS) is None


def test_board_gives_a_slot_again_once_its_worker_is_gone() -> None:
    board = Board()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert board.assign(_Worker(os.getpid())) == 0
    assert board.assign(_Worker(gone.pid)) == 1
    assert board.assign(_Worker("[booting]")) == 1  # slot 0's worker is alive: it keeps it


@pytest.mark.skipif(not gunicorn_worker.BALANCING, reason="this gunicorn lacks gthread's hooks")
def test_connections_opened_at_once_are_shared_between_the_workers(tmp_path: Path) -> None:
    port = free_port()
    command = gunicorn_command("127.0.0.1", port, 2, app="tests.test_gunicorn_worker:pid_app")
    with (tmp_path / "gunicorn.log").open("w") as log:
        server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    try:
        wait_for(f"http://127.0.0.1:{port}/", timeout=30, process=server)
        _wait_for_workers(port, 2)
        for _ in range(5):
            served = Counter(_pids_of_connections(port, 8))
            assert len(served) == 2, served
            assert max(served.values()) <= 5, served  # 4 each, one more where both took one
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_workers(port: int, count: int, timeout: float = 30) -> None:
    """Until ``count`` workers have answered (each answers once it has booted)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only {len(seen)} of {count} workers answered"
        seen.update(_pids_of_connections(port, 1, settle=0.05))


def _pids_of_connections(port: int, count: int, settle: float = 0.3) -> list[str]:
    """Open ``count`` keep-alive connections at once, then ask each which worker serves it."""
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    try:
        pids = []
        for connection in connections:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        for connection in connections:
            connection.settimeout(10)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.split(b"\r\n\r\n", 1)[1]:
                answer += connection.recv(4096)
            pids.append(answer.split(b"\r\n\r\n", 1)[1].decode())
        return pids
    finally:
        for connection in connections:
            connection.close()
        time.sleep(settle)  # the workers see the connections close before the next round
