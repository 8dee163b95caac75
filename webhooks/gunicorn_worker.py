"""gunicorn's threaded worker, with new connections shared out evenly among the workers.

All workers wait on the one listening socket and the first to wake takes what is there. When
an EHR (or a proxy) opens its keep-alive connections in a burst, one worker often took all of
them: its process, held to one core by the GIL, then served every notification while the other
cores idled (bench/ingest.py, 2 workers, 8 connections: 1,900-2,000 notifications/s with all 8
on one worker against 3,200-3,400 with both serving; the bare endpoint 2,900 against 7,600).

``BalancedThreadWorker`` is gthread with one rule: a worker that holds more connections than
the least loaded of its live siblings leaves a waiting connection to that sibling, pausing its
own accepting for ``PAUSE`` seconds, and takes it anyway after ``GRACE`` seconds (a sibling that
is busy or stuck never leaves a connection waiting longer). Workers publish what they hold on a
``Board`` in memory shared with the master, which gives each worker its place on it.
"""

from __future__ import annotations

import mmap
import os
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

__all__ = ["BalancedThreadWorker", "Board"]

PAUSE = 0.002  # seconds a busier worker stops accepting, leaving a connection to a sibling
GRACE = 0.02  # seconds after which it takes the connection anyway
STALE_MS = 2_000  # a worker that has not published for this long is not counted (gone, stuck)

# gthread's own methods this worker builds on (gunicorn 27); without them it is plain gthread.
_HOOKS = ("accept", "set_accept_enabled", "wait_for_and_dispatch_events")
BALANCING = all(callable(getattr(ThreadWorker, name, None)) for name in _HOOKS)


class Board:
    """One slot per worker in shared memory: its pid, the connections it holds (or -1 while
    it takes none) and when it last published, in milliseconds of ``time.monotonic``.

    Made in the master before it forks (so every worker sees the same memory); slots are
    handed out by the master (``assign``), one per live worker."""

    SLOTS = 256
    _FIELDS = 3

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, self.SLOTS * self._FIELDS * 8)  # anonymous: shared on fork
        self._cells = memoryview(self._memory).cast("q")
        self._owners: dict[int, Any] = {}  # master only: slot -> the worker given it

    def assign(self, worker: Any) -> int | None:
        """A free slot for a worker about to be forked (the master's call), or None if full."""
        for slot in range(self.SLOTS):
            owner = self._owners.get(slot)
            if owner is None or not _running(owner.pid):
                self._owners[slot] = worker
                self.publish(slot, 0, -1, 0)
                return slot
        return None

    def publish(self, slot: int, pid: int, connections: int, now_ms: int) -> None:
        base = slot * self._FIELDS
        self._cells[base] = pid
        self._cells[base + 1] = connections
        self._cells[base + 2] = now_ms

    def fewest_elsewhere(self, slot: int, now_ms: int) -> int | None:
        """The fewest connections a live worker other than ``slot``'s holds while accepting;
        None if there is no such worker."""
        fewest = None
        cells = self._cells
        for other in range(self.SLOTS):
            base = other * self._FIELDS
            if other == slot or not cells[base]:
                continue
            connections = cells[base + 1]
            if connections >= 0 and now_ms - cells[base + 2] < STALE_MS:
                fewest = connections if fewest is None else min(fewest, connections)
        return fewest


def _running(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # not forked yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


_BOARD: Board | None = None  # made on first use in the master, inherited by its workers


class BalancedThreadWorker(ThreadWorker):
    """gthread, leaving new connections to a sibling worker that holds fewer (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # in the master, before the fork
        global _BOARD  # one board per master
        self._slot: int | None = None
        if BALANCING and not self.cfg.reuse_port:  # own sockets: nobody to leave one to
            _BOARD = _BOARD or Board()
            self._slot = _BOARD.assign(self)
        self._board = _BOARD if self._slot is not None else None
        self._resume_at = 0.0  # accepting paused until then
        self._held_since: float | None = None  # when it first left the waiting connection

    def notify(self) -> None:
        super().notify()  # once per turn of the event loop
        self._publish()

    def _publish(self) -> None:
        if self._board is not None:
            accepting = self.alive and self.nr_conns < self.worker_connections
            connections = self.nr_conns if accepting else -1
            self._board.publish(self._slot, self.pid, connections, _now_ms())  # type: ignore[arg-type]

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self._board is not None:
                self._board.publish(self._slot, self.pid, -1, 0)  # type: ignore[arg-type]

    def accept(self, listener: Any) -> None:
        if self._board is not None and self._leave_to_sibling():
            return
        self._held_since = None
        super().accept(listener)
        self._publish()

    def _leave_to_sibling(self) -> bool:
        now = time.monotonic()
        if self._held_since is None or now - self._resume_at > PAUSE:
            self._held_since = now  # a new connection, not the one it left last time
        elif now - self._held_since > GRACE:
            return False
        fewest = self._board.fewest_elsewhere(self._slot, _now_ms())  # type: ignore[union-attr,arg-type]
        if fewest is None or self.nr_conns <= fewest:
            return False
        self._resume_at = now + PAUSE
        self.set_accept_enabled(False)
        return True

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and time.monotonic() < self._resume_at:
            enabled = False
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        pause = self._resume_at - time.monotonic()
        if pause > 0:
            timeout = min(timeout, pause)
        super().wait_for_and_dispatch_events(timeout)
