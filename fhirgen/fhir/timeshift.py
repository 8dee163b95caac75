"""Moving a patient's record in time: every date by the same amount, intervals kept.

The live demo uses it so that the sample stays end now (their drafts are dated today, and the
console's discharge-to-draft latency means what it says) without editing the shipped files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from fhirgen.fhir.record import patient_of
from fhirgen.fhir.values import parse_time

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


def shift(value: Any, delta: timedelta) -> Any:
    """``value`` (any JSON) with every full date moved by whole days and every dateTime or
    instant by ``delta``, each in its own precision and offset; everything else unchanged."""
    if isinstance(value, dict):
        return {key: shift(item, delta) for key, item in value.items()}
    if isinstance(value, list):
        return [shift(item, delta) for item in value]
    if isinstance(value, str):
        if _DATE.match(value):
            moved = datetime.strptime(value, "%Y-%m-%d") + timedelta(days=delta.days)
            return moved.strftime("%Y-%m-%d")
        match = _DATE_TIME.match(value)
        if match:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
            fraction = match.group(2) or ""
            precision = "seconds" if not fraction else "milliseconds"
            if len(fraction) > 4:
                precision = "microseconds"
            elif not match.group(1):
                precision = "minutes"
            text = moment.isoformat(timespec=precision)
            return text.replace("+00:00", "Z") if value.endswith("Z") else text
    return value


def ending_at(
    resources: Iterable[dict[str, Any]], ends: dict[str, str], now: datetime
) -> list[dict[str, Any]]:
    """Each patient's resources moved so that the moment ``ends[patient id]`` becomes ``now``
    (to the second); resources of no patient in ``ends`` are left as they are."""
    deltas: dict[str, timedelta] = {}
    for patient, end in ends.items():
        moment = parse_time(end)
        if moment is not None:
            deltas[patient] = (now - moment) // timedelta(seconds=1) * timedelta(seconds=1)
    moved = []
    for resource in resources:
        delta = deltas.get(patient_of(resource) or "")
        moved.append(shift(resource, delta) if delta else resource)
    return moved
