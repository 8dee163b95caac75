"""Group commit: work that arrives from several threads at once is done as one batch.

A thread that submits while no batch is running leads: it runs the batch function on what is
queued (its own item first, then whatever arrived meanwhile) and hands each caller its result.
Threads that submit while a batch runs wait; when the batch ends, the first of them leads the
next batch, with everything that queued up behind it. Nobody waits for a timer: alone, a
caller runs its item at once; under load, batches grow by themselves to what arrives during
one batch, so one commit and one broker round trip serve many requests.

With a ``gate`` (a lock shared with other processes, such as the store's intake lock) the
leader takes the gate first and collects its batch only then: what arrives while another
process holds the gate joins this batch instead of waiting for the next. ``finish`` then runs
on the batch and its results after the gate is released (the broker round trip, which needs
no lock).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("error", "finished", "item", "lead", "result", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.wake = threading.Event()
        self.lead = False
        self.finished = False
        self.result: R | None = None
        self.error: BaseException | None = None

    def finish(self, result: R | None, error: BaseException | None) -> None:
        self.result, self.error, self.finished = result, error, True
        self.wake.set()


class GroupCommit(Generic[T, R]):
    """Runs ``process(items) -> results`` (one result per item, in order) on batches of the
    items that threads ``submit`` concurrently, inside ``gate()`` if given, then
    ``finish(items, results)`` outside it. If either raises, every caller in that batch gets
    the exception; a batch holds at most ``max_batch`` items."""

    def __init__(
        self,
        process: Callable[[Sequence[T]], Sequence[R]],
        max_batch: int = 64,
        *,
        gate: Callable[[], AbstractContextManager[Any]] | None = None,
        finish: Callable[[Sequence[T], Sequence[R]], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._process = process
        self._gate = gate or contextlib.nullcontext
        self._finish = finish
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._running = False  # a leader is running a batch, or has been chosen to

    def submit(self, item: T) -> R:
        """Do ``item`` as part of a batch; returns its result or raises the batch's error."""
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            slot.lead = not self._running
            self._running = True
        if not slot.lead:
            slot.wake.wait()
        if not slot.finished:  # chosen to lead (at once, or by the batch before)
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _take(self) -> list[_Slot[T, R]]:
        """The next batch: the leader's own item (first in the queue) and those behind it."""
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        return batch

    def _lead(self) -> None:
        batch: list[_Slot[T, R]] = []
        try:
            with self._gate():
                batch = self._take()
                items = [slot.item for slot in batch]
                results = self._process(items)
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            if self._finish is not None:
                self._finish(items, results)
        except BaseException as exc:  # noqa: BLE001  # every caller in the batch gets it
            batch = batch or self._take()  # the gate failed: the batch fails with it
            for slot in batch:
                slot.finish(None, exc)
        else:
            for slot, result in zip(batch, results, strict=True):
                slot.finish(result, None)
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].wake.set()
                else:
                    self._running = False
