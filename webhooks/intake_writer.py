"""One process per SQLite store that records and enqueues the notifications of every gunicorn
worker: one transaction and one Redis push for all that arrive together, whichever worker took
them.

With each worker writing for itself, the workers took turns on the store's intake lock with
groups of two or three notifications, and each paid its own commit (12 WAL frames) and Redis
round trip. The writer gathers what all of them have waiting while it works (``python -m
webhooks.intake_writer``; gunicorn's master starts it, ``webhooks/gunicorn_conf.py``).

Each request thread sends its notification as one frame on its own connection to a Unix socket
next to the database and waits for the answer; the writer answers only once the notification is
committed and its jobs are in Redis, or with the error the worker turns into a 503. Where the
writer is not running (PostgreSQL, the Flask development server, a writer that exited),
workers record and enqueue for themselves, under the same intake lock, as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from fhirgen.store import IntakeResult, Received, Store, StoreError

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
_MAX_PATH = 100  # AF_UNIX paths hold 107 bytes
RETRY_AFTER = 5.0  # seconds a worker records for itself after the writer could not be reached


class WriterError(Exception):
    """The writer could not be asked, or did not answer: whether it recorded is unknown."""


def socket_path(store: Store) -> str | None:
    """Where the writer for this store listens; None where there is none (not a SQLite file,
    or a path too long for a Unix socket)."""
    database = store.engine.url.database
    if store.engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    path = f"{Path(database).resolve()}.intake.sock"
    return path if len(path.encode()) <= _MAX_PATH else None


# -- the wire: a 4-byte length, then orjson -------------------------------------------------


def _frame(value: Any) -> bytes:
    body = orjson.dumps(value)
    return _LENGTH.pack(len(body)) + body


def _encode_request(items: Sequence[Received]) -> bytes:
    return _frame([list(item) for item in items])


def _decode_request(body: bytes) -> list[Received]:
    return [
        Received(sid, kind, tuple((number, focus) for number, focus in events), since, status)
        for sid, kind, events, since, status in orjson.loads(body)
    ]


def _encode_results(results: Sequence[IntakeResult]) -> bytes:
    return _frame({"ok": [[r.events, r.jobs, r.gap, r.reconcile, r.notes] for r in results]})


def _decode_results(body: bytes) -> list[IntakeResult]:
    answer = orjson.loads(body)
    if "ok" not in answer:
        raise _ERRORS.get(answer.get("error"), WriterError)(answer.get("error", "no answer"))
    return [
        IntakeResult(events, tuple(jobs), tuple(gap) if gap else None, reconcile, tuple(notes))
        for events, jobs, gap, reconcile, notes in answer["ok"]
    ]


class BrokerUnavailable(WriterError):
    """The writer recorded nothing it could not enqueue: the broker is down (503)."""


class StoreUnavailable(WriterError, StoreError):
    """The writer could not record: the store is down (503)."""


_ERRORS: dict[str | None, type[WriterError]] = {
    "store": StoreUnavailable,
    "broker": BrokerUnavailable,
}


# -- the worker's side ------------------------------------------------------------------------


class WriterClients:
    """A gunicorn worker's connections to the writer, one per thread: each request thread asks
    on its own, so the writer sees every notification waiting in every worker at once."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        self._retry_at = 0.0  # after a failure, threads record for themselves until then

    def client(self) -> WriterClient | None:
        """This thread's connection, made on first use; None while the writer is not there
        (a failed attempt is not repeated for ``RETRY_AFTER`` seconds)."""
        client: WriterClient | None = getattr(self._local, "client", None)
        if client is not None and client.pid == os.getpid():
            return client
        if time.monotonic() < self._retry_at:
            return None
        try:
            client = WriterClient(self.path, self.timeout, self)
        except OSError as exc:
            self.failed(exc)
            return None
        self._local.client = client
        return client

    def failed(self, exc: BaseException) -> None:
        """The writer could not be reached: this worker records for itself for a while."""
        from webhooks.metrics import INTAKE_WRITER_UNREACHABLE

        self._retry_at = time.monotonic() + RETRY_AFTER
        self._local.client = None
        INTAKE_WRITER_UNREACHABLE.inc()
        # No socket file: no writer runs here (the development server) or one is restarting.
        level = logging.DEBUG if isinstance(exc, FileNotFoundError) else logging.WARNING
        log.log(
            level,
            "intake writer unreachable (%s); this worker records for itself for %.0f s",
            type(exc).__name__,
            RETRY_AFTER,
        )


class WriterClient:
    """One thread's connection to the writer."""

    def __init__(self, path: str, timeout: float, clients: WriterClients) -> None:
        self.pid = os.getpid()  # made before a fork, it is the parent's: never used there
        self.clients = clients
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.socket.settimeout(timeout)
            self.socket.connect(path)
        except OSError:
            self.socket.close()
            raise
        weakref.finalize(self, self.socket.close)  # the thread that had it has ended

    def record(self, items: Sequence[Received]) -> list[IntakeResult]:
        """Have the writer record and enqueue ``items``; raises ``StoreUnavailable``,
        ``BrokerUnavailable``, or ``WriterError`` when the writer could not be asked or did not
        answer (then nobody knows whether it recorded them; the EHR's retry is deduplicated)."""
        try:
            self.socket.sendall(_encode_request(items))
            (length,) = _LENGTH.unpack(_receive(self.socket, _LENGTH.size))
            body = _receive(self.socket, length)
        except OSError as exc:
            self.socket.close()
            self.clients.failed(exc)
            raise WriterError(f"intake writer: {type(exc).__name__}") from None
        return _decode_results(body)


def _receive(connection: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the writer closed the connection")
        data += chunk
    return bytes(data)


# -- the writer ------------------------------------------------------------------------------


class Writer:
    """The writer's loop: read every frame the workers have sent, record and enqueue them all
    as one group, answer each worker; repeat."""

    def __init__(self, store: Store, celery: Any, path: str) -> None:
        self.store = store
        self.celery = celery
        self.path = path
        self.selector = selectors.DefaultSelector()
        self.buffers: dict[socket.socket, bytearray] = {}
        self.stopping = False
        self.groups: list[int] = []  # the size of each group recorded (tests, debugging)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        Path(path).unlink(missing_ok=True)  # left by a writer that did not stop cleanly
        umask = os.umask(0o077)  # only this user may connect, from the moment it exists
        try:
            self.listener.bind(path)
        finally:
            os.umask(umask)
        self._inode = Path(path).stat().st_ino
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)

    def run(self, parent: int | None = None, poll: float = 1.0) -> None:
        """Serve until ``stop`` (or until ``parent``, its supervisor, is gone)."""
        try:
            while not self.stopping and (parent is None or os.getppid() == parent):
                self.turn(timeout=poll)
        finally:
            self.close()

    def stop(self, *_args: Any) -> None:
        self.stopping = True

    def turn(self, timeout: float) -> None:
        """One turn: wait for frames, then record and answer all that have arrived."""
        waiting: list[tuple[socket.socket, list[Received]]] = []
        for key, _ in self.selector.select(timeout):
            if key.fileobj is self.listener:
                self._accept()
            else:
                self._read(key.fileobj, waiting)  # type: ignore[arg-type]
        if waiting:
            self._answer(waiting)

    def _accept(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except BlockingIOError:
            return
        connection.setblocking(False)
        self.buffers[connection] = bytearray()
        self.selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection: socket.socket, waiting: list[Any]) -> None:
        buffer = self.buffers[connection]
        try:
            chunk = connection.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._forget(connection)
            return
        buffer += chunk
        while len(buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer)
            if len(buffer) < _LENGTH.size + length:
                break
            body = bytes(buffer[_LENGTH.size : _LENGTH.size + length])
            del buffer[: _LENGTH.size + length]
            try:
                waiting.append((connection, _decode_request(body)))
            except (ValueError, TypeError):
                log.error("intake writer: a frame it cannot read; connection closed")
                self._forget(connection)
                return

    def _answer(self, waiting: list[tuple[socket.socket, list[Received]]]) -> None:
        items = [item for _, group in waiting for item in group]
        try:
            answers = self._record(items)
        except Exception as exc:  # noqa: BLE001  # every sender gets a 503, the writer goes on
            name = type(exc).__name__  # never its message: it could quote what was recorded
            log.error("intake writer: %s recording %d notification(s)", name, len(items))
            answers = _frame({"error": "internal"})
        self.groups.append(len(items))
        del self.groups[:-1000]
        start = 0
        for connection, group in waiting:
            if isinstance(answers, bytes):
                frame = answers
            else:
                frame = _encode_results(answers[start : start + len(group)])
            start += len(group)
            try:
                connection.settimeout(2.0)  # its thread is waiting for just this answer
                connection.sendall(frame)
                connection.setblocking(False)
            except OSError:
                self._forget(connection)

    def _record(self, items: list[Received]) -> list[IntakeResult] | bytes:
        """Record and enqueue: the results, or the error frame every sender gets."""
        from kombu.exceptions import OperationalError as BrokerError
        from redis.exceptions import RedisError

        from workers.enqueue import send_intake

        try:
            results = self.store.record_notifications(items)
        except StoreError:
            log.warning("intake writer: store unavailable, %d notification(s) refused", len(items))
            return _frame({"error": "store"})
        try:
            send_intake(self.store, [item.subscription_id for item in items], results, self.celery)
        except (BrokerError, RedisError, OSError):
            log.warning("intake writer: broker unavailable, %d notification(s) refused", len(items))
            return _frame({"error": "broker"})
        return results

    def _forget(self, connection: socket.socket) -> None:
        self.buffers.pop(connection, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(connection)
        connection.close()

    def close(self) -> None:
        for connection in list(self.buffers):
            self._forget(connection)
        self.selector.close()
        self.listener.close()
        with contextlib.suppress(OSError):  # a newer writer may have taken the path since
            if Path(self.path).stat().st_ino == self._inode:
                Path(self.path).unlink()


def supervise() -> None:
    """``python -m webhooks.intake_writer --supervise`` (what gunicorn's master starts): run
    the writer, start it again if it exits, stop with the master."""
    logging.basicConfig(format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    master = os.getppid()
    stopping = False
    arguments = [a for a in sys.argv[1:] if a != "--supervise"]

    def stop(*_args: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and os.getppid() == master:
        command = [sys.executable, "-m", "webhooks.intake_writer", *arguments]
        child = subprocess.Popen(command)  # noqa: S603  # our own, with the socket path it was given
        while child.poll() is None and not stopping and os.getppid() == master:
            time.sleep(0.5)
        if child.poll() is None:
            child.terminate()
            child.wait(30)
        elif not stopping:
            log.warning("intake writer exited with %s; starting it again", child.returncode)
            time.sleep(1)


def main() -> None:
    """``python -m webhooks.intake_writer [SOCKET]``: serve the store the settings name. The
    socket's path, if given, must be the store's (it names the store in ``ps``)."""
    from fhirgen.config import load_settings
    from workers.app import create_celery

    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
    )
    store = Store.from_settings(settings, background_checkpoints=True)
    path = socket_path(store)
    if path is None:
        raise SystemExit("intake writer: the store is not a SQLite file (or its path is too long)")
    named = [a for a in sys.argv[1:] if not a.startswith("-")]
    if named and named[0] != path:
        raise SystemExit(f"intake writer: the settings' store listens on {path}, not {named[0]}")
    writer = Writer(store, create_celery(settings), path)
    signal.signal(signal.SIGTERM, writer.stop)
    signal.signal(signal.SIGINT, writer.stop)
    log.info("intake writer: listening on %s", path)
    writer.run(parent=os.getppid())
    store.dispose()


if __name__ == "__main__":
    supervise() if "--supervise" in sys.argv[1:] else main()
