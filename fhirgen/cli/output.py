"""Where the commands' lines go: above a live progress bar on a terminal, else plain
stdout/stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from fhirgen.fhir.problems import Problem


class _Output:
    """Where lines go: above a live progress bar on a terminal, else plain stdout/stderr."""

    def __init__(self, progress: bool | None) -> None:
        self.interactive = sys.stderr.isatty() if progress is None else progress
        self._progress: Any = None
        self._task: Any = None

    @contextmanager
    def bar(self, total: int, label: str) -> Iterator[None]:
        if not self.interactive:
            yield
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            self._progress = progress
            self._task = progress.add_task(label, total=total)
            try:
                yield
            finally:
                self._progress = None

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def problem(self, problem: Problem) -> None:
        self._err(str(problem))

    def info(self, line: str) -> None:
        """A per-item line: shown when no progress bar is drawn."""
        if not self.interactive:
            click.echo(line)

    def _err(self, line: str) -> None:
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            click.echo(line, err=True)
