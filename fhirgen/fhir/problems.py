"""Problems found in input: one line each, naming where (file, line or entry) and what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One problem with the input. Errors make a run exit non-zero; warnings do not."""

    where: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.severity}: {where}{self.message}"
