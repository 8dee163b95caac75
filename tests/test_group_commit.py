"""GroupCommit: concurrent submissions are processed together, each caller gets its own result."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from fhirgen.group_commit import GroupCommit


class Recorder:
    """A batch function that records its batches and can be held inside a batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.inside = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.inside.set()
        assert self.release.wait(10)
        if any(item < 0 for item in items):
            raise ValueError("negative item")
        return [item * 10 for item in items]


def _submit_all(group: GroupCommit, items: list[int]) -> tuple[dict[int, object], list]:
    results: dict[int, object] = {}
    threads = []
    for item in items:

        def run(item: int = item) -> None:
            try:
                results[item] = group.submit(item)
            except ValueError as exc:
                results[item] = exc

        thread = threading.Thread(target=run)
        thread.start()
        threads.append(thread)
    return results, threads


def _wait_queued(group: GroupCommit, count: int) -> None:
    for _ in range(1000):
        with group._lock:
            if len(group._queue) >= count:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{count} submissions never queued")


def test_a_lone_submission_runs_at_once_as_a_batch_of_one():
    recorder = Recorder()
    group = GroupCommit(recorder)
    assert group.submit(3) == 30
    assert group.submit(4) == 40
    assert recorder.batches == [[3], [4]]


def test_submissions_made_during_a_batch_go_together_in_the_next():
    recorder = Recorder()
    group = GroupCommit(recorder)
    recorder.release.clear()
    first, first_threads = _submit_all(group, [1])
    assert recorder.inside.wait(10)  # the first batch is running, holding [1]
    waiting, threads = _submit_all(group, [2, 3, 4, 5])
    _wait_queued(group, 4)
    recorder.release.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert recorder.batches[0] == [1]
    assert sorted(recorder.batches[1]) == [2, 3, 4, 5]  # one batch for all that waited
    assert len(recorder.batches) == 2
    assert first == {1: 10}
    assert waiting == {2: 20, 3: 30, 4: 40, 5: 50}  # each caller its own result


def test_a_failing_batch_fails_its_callers_only():
    recorder = Recorder()
    group = GroupCommit(recorder)
    recorder.release.clear()
    _, first_threads = _submit_all(group, [1])
    assert recorder.inside.wait(10)
    failing, threads = _submit_all(group, [6, -1])
    _wait_queued(group, 2)
    recorder.release.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert all(isinstance(value, ValueError) for value in failing.values())
    assert set(failing) == {6, -1}
    assert group.submit(7) == 70  # the next batch runs normally


def test_batches_hold_at_most_max_batch_items():
    recorder = Recorder()
    group = GroupCommit(recorder, max_batch=2)
    recorder.release.clear()
    _, first_threads = _submit_all(group, [1])
    assert recorder.inside.wait(10)
    results, threads = _submit_all(group, [2, 3, 4, 5, 6])
    _wait_queued(group, 5)
    recorder.release.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert all(len(batch) <= 2 for batch in recorder.batches)
    assert sorted(item for batch in recorder.batches for item in batch) == [1, 2, 3, 4, 5, 6]
    assert results == {n: n * 10 for n in [2, 3, 4, 5, 6]}


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(Recorder(), max_batch=0)


def test_submissions_made_while_the_leader_waits_at_the_gate_join_its_batch():
    """The webhook's gate is the store's intake lock, held by another process while it
    commits: what arrives meanwhile must go in this batch, not wait for the next one."""
    recorder = Recorder()
    gate = threading.Lock()
    group = GroupCommit(recorder, gate=lambda: gate)
    gate.acquire()  # another process is committing
    results, threads = _submit_all(group, [1])
    _wait_queued(group, 1)
    more, more_threads = _submit_all(group, [2, 3])
    _wait_queued(group, 3)
    gate.release()
    for thread in threads + more_threads:
        thread.join(10)
    assert [sorted(batch) for batch in recorder.batches] == [[1, 2, 3]]
    assert results | more == {1: 10, 2: 20, 3: 30}


def test_finish_runs_after_the_gate_is_released_and_its_error_reaches_every_caller():
    recorder = Recorder()
    gate = threading.Lock()
    finished: list[tuple[list[int], list[int], bool]] = []

    def finish(items: Sequence[int], results: Sequence[int]) -> None:
        finished.append((list(items), list(results), gate.locked()))
        if 99 in items:
            raise ValueError("broker down")

    group = GroupCommit(recorder, gate=lambda: gate, finish=finish)
    assert group.submit(4) == 40
    assert finished == [([4], [40], False)]
    with pytest.raises(ValueError, match="broker down"):
        group.submit(99)
    assert group.submit(5) == 50  # the next batch runs normally


def test_a_gate_that_cannot_be_taken_fails_the_batch_and_the_next_one_runs():
    recorder = Recorder()
    broken = [True]

    class Gate:
        def __enter__(self) -> None:
            if broken[0]:
                raise OSError("no lock")

        def __exit__(self, *_: object) -> None:
            pass

    group = GroupCommit(recorder, gate=Gate)
    with pytest.raises(OSError, match="no lock"):
        group.submit(1)
    assert recorder.batches == []  # nothing was processed outside the gate
    broken[0] = False
    assert group.submit(2) == 20
