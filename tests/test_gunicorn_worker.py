"""``fhirgen serve``'s gunicorn worker shares connections out among the workers."""

from __future__ import annotations

import os
import signal
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


@pytest.mark.skipif(not gunicorn_worker.BALANCING, reason="this gunicorn lacks gthread's hooks")
def test_a_stuck_worker_leaves_no_connection_waiting(tmp_path: Path) -> None:
    """A worker that stops taking connections (stuck, or stopped) still looks alive on the
    board for a while: its sibling must take every new connection all the same, at most the
    grace period late each."""
    port = free_port()
    command = gunicorn_command("127.0.0.1", port, 2, app="tests.test_gunicorn_worker:pid_app")
    with (tmp_path / "gunicorn.log").open("w") as log:
        server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    stuck = None
    try:
        wait_for(f"http://127.0.0.1:{port}/", timeout=30, process=server)
        _wait_for_workers(port, 2)
        held = socket.create_connection(("127.0.0.1", port))  # one of them holds one more
        holder = _ask_pid(held)
        workers = {int(pid) for pid in _worker_pids(server.pid)}
        stuck = next(pid for pid in workers if pid != int(holder))  # the one holding fewer
        os.kill(stuck, signal.SIGSTOP)
        started = time.monotonic()
        served = Counter(_pids_of_connections(port, 8))
        elapsed = time.monotonic() - started
        held.close()
        assert served == Counter({holder: 8})
        assert elapsed < 8 * 0.2, f"8 connections took {elapsed:.2f} s"
    finally:
        if stuck is not None:
            os.kill(stuck, signal.SIGCONT)
        server.terminate()
        server.wait(timeout=30)


def _worker_pids(master: int) -> list[str]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 2, children
    return children


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
        return [_ask_pid(connection) for connection in connections]
    finally:
        for connection in connections:
            connection.close()
        time.sleep(settle)  # the workers see the connections close before the next round


def _ask_pid(connection: socket.socket) -> str:
    """Which worker answers a request on this connection (the body of ``pid_app``)."""
    connection.settimeout(10)
    connection.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.split(b"\r\n\r\n", 1)[1]:
        chunk = connection.recv(4096)
        assert chunk, "the server closed the connection"
        answer += chunk
    return answer.split(b"\r\n\r\n", 1)[1].decode()
