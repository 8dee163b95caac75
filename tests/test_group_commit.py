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
