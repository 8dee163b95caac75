"""One sample record under construction (``Sample``): its resources, id style and local clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from tools.samples.datatypes import Resource
from tools.samples.times import us_utc_offset


class Sample:
    """One sample record under construction: its resources, id style and local clock."""

    def __init__(
        self,
        slug: str,
        new_id: Callable[[str], str],
        standard_utc_offset: int,
        id_prefixes: dict[str, str] | None = None,
    ) -> None:
        self.slug = slug
        self.new_id = new_id
        self.standard_utc_offset = standard_utc_offset
        self.id_prefixes = id_prefixes or {}
        self.resources: list[Resource] = []
        self._keys: set[str] = set()

    def add(self, rtype: str, key: str, body: dict[str, Any], kind: str = "") -> Resource:
        """Create a resource with an id derived from ``key``; ``kind`` picks an id prefix."""
        rid = self.id_prefixes.get(kind, "") + self.new_id(f"{self.slug}/{rtype}/{key}")
        full_key = f"{rtype}/{rid}"
        if full_key in self._keys:
            raise ValueError(f"{self.slug}: duplicate id {full_key} (key {key!r})")
        self._keys.add(full_key)
        resource: Resource = {"resourceType": rtype, "id": rid, **body}
        self.resources.append(resource)
        return resource

    def at(self, local: str) -> str:
        """'2026-03-02 14:05' (local wall-clock time) -> '2026-03-02T14:05:00-05:00'."""
        day_text, _, clock = local.partition(" ")
        day = date.fromisoformat(day_text)
        if clock.count(":") == 1:
            clock += ":00"
        offset = us_utc_offset(day, self.standard_utc_offset)
        sign = "-" if offset < 0 else "+"
        return f"{day_text}T{clock}{sign}{abs(offset):02d}:00"

    def of_type(self, rtype: str) -> list[Resource]:
        return [r for r in self.resources if r["resourceType"] == rtype]
