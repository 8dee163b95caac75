"""``InMemoryFhirStore``: a ``FhirStore`` held in a dict, for unit tests that need no server.

Resources are kept by ``Type/id`` with a version each. It answers exactly the searches fhirgen
sends (the stay reader's, the identifier checks', reconciliation's) and refuses any other
search parameter with ``UnsupportedSearch`` rather than ignoring it, as a lax server would.
Transactions do what our Bundles need: conditional creates (``ifNoneExist``), PUTs at an id,
and ``urn:uuid`` references rewritten to the ids given. No paging: every match in one page.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from fhirgen.errors import PermanentError
from fhirgen.fhir.client import NotFoundError, Params
from fhirgen.fhir.record import patient_of, reference_key
from fhirgen.fhir.values import parse_time, period_bounds

__all__ = ["InMemoryFhirStore", "UnsupportedSearch"]

Resource = dict[str, Any]
Span = tuple[datetime, datetime]  # [start, end): a value's whole precision


class UnsupportedSearch(PermanentError):
    """A search parameter (or modifier, or ``_revinclude``) the in-memory store cannot answer."""


def _field(*names: str) -> Callable[[Mapping[str, Any]], tuple[str | None, str | None]]:
    return lambda resource: period_bounds(resource, *names)


def _context_period(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    return period_bounds(resource.get("context") or {}, "period")


def _last_updated(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    return period_bounds(resource.get("meta") or {}, "lastUpdated")


# (type, parameter) -> where its date is; "*" for any type.
_DATES: dict[tuple[str, str], Callable[[Mapping[str, Any]], tuple[str | None, str | None]]] = {
    ("Observation", "date"): _field("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
    ("Procedure", "date"): _field("performedDateTime", "performedPeriod"),
    ("MedicationAdministration", "effective-time"): _field("effectiveDateTime", "effectivePeriod"),
    ("DiagnosticReport", "date"): _field("effectiveDateTime", "effectivePeriod"),
    ("DiagnosticReport", "issued"): _field("issued"),
    ("DocumentReference", "date"): _field("date"),
    ("DocumentReference", "period"): _context_period,
    ("ServiceRequest", "authored"): _field("authoredOn"),
    ("Appointment", "date"): _field("start"),
    ("*", "_lastUpdated"): _last_updated,
}
# (type, parameter) -> the reference field it matches.
_REFERENCES = {
    ("*", "encounter"): "encounter",
    ("MedicationAdministration", "context"): "context",
    ("DiagnosticReport", "result"): "result",
    ("Observation", "based-on"): "basedOn",
    ("DiagnosticReport", "based-on"): "basedOn",
}
# (type, parameter) -> the code field it matches (comma-separated values: any of them).
_TOKENS = {("*", "status"): "status", ("Goal", "lifecycle-status"): "lifecycleStatus"}


def _lookup(table: Mapping[tuple[str, str], Any], rtype: str, name: str) -> Any:
    return table.get((rtype, name), table.get(("*", name)))


class InMemoryFhirStore:
    """A FHIR server in a dict. ``resources`` are loaded as they are (ids kept, version 1).

    ``round_trips`` counts interactions, a ``batch`` or ``transaction`` being one.
    """

    def __init__(self, resources: Iterable[Mapping[str, Any]] = ()) -> None:
        self._resources: dict[str, Resource] = {}
        self._round_trips = 0
        for resource in resources:
            self._store(dict(resource))

    # -- bookkeeping -----------------------------------------------------------------------

    @property
    def round_trips(self) -> int:
        """Interactions answered so far."""
        return self._round_trips

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> InMemoryFhirStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resources(self, rtype: str) -> list[Resource]:
        """Every stored resource of ``rtype`` (copies), for a test to look at."""
        return [copy.deepcopy(r) for r in self._resources.values() if r["resourceType"] == rtype]

    # -- interactions ----------------------------------------------------------------------

    def read(self, rtype: str, rid: str) -> Resource:
        """The stored resource; ``NotFoundError`` when there is none."""
        self._round_trips += 1
        return copy.deepcopy(self._get(rtype, rid))

    def get(self, path: str, params: Params | None = None) -> Resource:
        """``metadata``, a ``Type/id`` read, or a ``Type`` search answered as a searchset."""
        path = path.strip("/")
        if path == "metadata":
            self._round_trips += 1
            return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                    "fhirVersion": "4.0.1", "format": ["json"]}  # fmt: skip
        rtype, _, rid = path.partition("/")
        if rid and "/" not in rid:
            return self.read(rtype, rid)
        if not rid:
            found = self.search(rtype, params)
            return {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                    "entry": [{"resource": r} for r in found]}  # fmt: skip
        raise PermanentError(f"InMemoryFhirStore does not answer GET {path.split('/$')[0]}/…")

    def search(self, rtype: str, params: Params | None = None) -> list[Resource]:
        """The matches, then what ``_revinclude`` brings."""
        self._round_trips += 1
        return self._search(rtype, _pairs(params))

    def batch(self, urls: Sequence[str]) -> list[list[Resource]]:
        """One list per url: a read's resource (empty when not found) or a search's matches."""
        self._round_trips += 1
        results: list[list[Resource]] = []
        for url in urls:
            rtype, _, query = url.partition("?")
            if query or "/" not in rtype:
                results.append(self._search(rtype, parse_qsl(query, keep_blank_values=True)))
                continue
            kind, _, rid = rtype.partition("/")
            found = self._resources.get(f"{kind}/{rid}")
            results.append([copy.deepcopy(found)] if found else [])
        return results

    def transaction(self, bundle: Mapping[str, Any]) -> Resource:
        """Conditional creates, creates and PUTs, all or nothing; ``urn:uuid`` references
        rewritten to the ids given. Answers each entry with its status, location and resource."""
        self._round_trips += 1
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            raise PermanentError("not a transaction Bundle")
        entries = list(bundle.get("entry") or [])
        plans: list[tuple[str, str, str]] = []  # (status, Type, id) per entry
        aliases: dict[str, str] = {}
        for entry in entries:
            plan = self._plan(entry)
            plans.append(plan)
            if entry.get("fullUrl"):
                aliases[str(entry["fullUrl"])] = f"{plan[1]}/{plan[2]}"
        answers = []
        for entry, (status, rtype, rid) in zip(entries, plans, strict=True):
            if status.startswith("200") and entry["request"]["method"] == "POST":
                stored = self._resources[f"{rtype}/{rid}"]  # found by ifNoneExist: left alone
            else:
                resource = _rewrite(copy.deepcopy(entry["resource"]), aliases)
                stored = self._store({**resource, "id": rid})
            answers.append({
                "response": {"status": status, "location": _location(stored)},
                "resource": copy.deepcopy(stored),
            })  # fmt: skip
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}

    def create(self, resource: Mapping[str, Any]) -> Resource:
        """Store ``resource`` under a new id."""
        self._round_trips += 1
        return copy.deepcopy(self._store({**resource, "id": str(uuid.uuid4())}))

    def update(self, resource: Mapping[str, Any]) -> Resource:
        """Store ``resource`` at its id, as its next version."""
        self._round_trips += 1
        if not isinstance(resource.get("id"), str):
            raise PermanentError(f"{resource.get('resourceType')} to update has no id")
        return copy.deepcopy(self._store(dict(resource)))

    # -- plumbing --------------------------------------------------------------------------

    def _get(self, rtype: str, rid: str) -> Resource:
        found = self._resources.get(f"{rtype}/{rid}")
        if found is None:
            raise NotFoundError(f"{rtype}/{rid} not found")
        return found

    def _store(self, resource: Resource) -> Resource:
        key = f"{resource['resourceType']}/{resource['id']}"
        previous = self._resources.get(key)
        version = int((previous or {}).get("meta", {}).get("versionId") or 0) + 1
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        meta = {**(resource.get("meta") or {}), "versionId": str(version)}
        if previous is not None or "lastUpdated" not in meta:
            meta["lastUpdated"] = now
        stored = {**copy.deepcopy(resource), "meta": meta}
        self._resources[key] = stored
        return stored

    def _plan(self, entry: Mapping[str, Any]) -> tuple[str, str, str]:
        """What one transaction entry will do: (status, Type, id), nothing stored yet."""
        request = entry.get("request") or {}
        resource = entry.get("resource") or {}
        method, url = request.get("method"), str(request.get("url") or "")
        rtype = str(resource.get("resourceType"))
        if method == "PUT" and "/" in url:
            kind, _, rid = url.partition("/")
            exists = f"{kind}/{rid}" in self._resources
            return ("200 OK" if exists else "201 Created"), kind, rid
        if method == "POST" and url == rtype:
            if request.get("ifNoneExist"):
                found = self._search(rtype, parse_qsl(str(request["ifNoneExist"])))
                if len(found) > 1:
                    raise PermanentError(f"412 conditional create of {rtype} matched {len(found)}")
                if found:
                    return "200 OK", rtype, str(found[0]["id"])
            return "201 Created", rtype, str(uuid.uuid4())
        raise PermanentError(f"InMemoryFhirStore does not do {method} {url} in a transaction")

    def _search(self, rtype: str, params: Sequence[tuple[str, str]]) -> list[Resource]:
        revinclude = [value for name, value in params if name == "_revinclude"]
        tests = [_test(rtype, name, value) for name, value in params if name not in _IGNORED]
        matches = [
            r
            for r in self._resources.values()
            if r["resourceType"] == rtype and all(test(r) for test in tests)
        ]
        keys = {f"{rtype}/{r['id']}" for r in matches}
        included: dict[str, Resource] = {}
        for value in revinclude:
            source, _, name = value.partition(":")
            field = _REFERENCES.get((source, name))
            if field is None:
                raise UnsupportedSearch(f"_revinclude={value} is not supported")
            for resource in self._of_type(source):
                if any(reference_key(ref) in keys for ref in _references(resource, field)):
                    included.setdefault(f"{source}/{resource['id']}", resource)
        return [copy.deepcopy(r) for r in [*matches, *included.values()]]

    def _of_type(self, rtype: str) -> Iterator[Resource]:
        return (r for r in self._resources.values() if r["resourceType"] == rtype)


# _count: every match is in the one page; _revinclude is applied after matching.
_IGNORED = frozenset({"_count", "_revinclude"})


def _test(rtype: str, name: str, value: str) -> Callable[[Resource], bool]:
    """The predicate one search parameter stands for, or ``UnsupportedSearch``."""
    base, _, modifier = name.partition(":")
    if base == "patient" and not modifier:
        wanted = value.removeprefix("Patient/")
        return lambda r: patient_of(r) == wanted
    if base == "_id" and not modifier:
        ids = set(value.split(","))
        return lambda r: r.get("id") in ids
    if base == "identifier" and not modifier:
        return lambda r: any(_token_matches(i, value) for i in r.get("identifier") or [])
    if (field := _lookup(_TOKENS, rtype, base)) and not modifier:
        codes = set(value.split(","))
        return lambda r: r.get(field) in codes
    if (field := _lookup(_REFERENCES, rtype, base)) and not modifier:
        return lambda r: any(reference_key(ref) == value for ref in _references(r, field))
    if getter := _lookup(_DATES, rtype, base):
        if modifier == "missing" and value in ("true", "false"):
            present = value == "false"
            return lambda r: (getter(r) != (None, None)) == present
        if not modifier:
            return _date_test(getter, value)
    raise UnsupportedSearch(f"search parameter {name}={value} on {rtype} is not supported")


def _token_matches(identifier: Mapping[str, Any], token: str) -> bool:
    system, bar, value = token.rpartition("|")
    if not bar:
        return identifier.get("value") == value
    return identifier.get("value") == value and (identifier.get("system") or "") == system


def _references(resource: Mapping[str, Any], field: str) -> list[Any]:
    value = resource.get(field)
    return value if isinstance(value, list) else [value] if value else []


def _date_test(
    getter: Callable[[Mapping[str, Any]], tuple[str | None, str | None]], value: str
) -> Callable[[Resource], bool]:
    """FHIR's date prefixes over ranges: ``ge``/``gt`` and ``le``/``lt`` compare the ends of the
    value's range with the bound's; ``eq`` (or none) wants the value inside the bound."""
    prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    bound = _span(text)
    if bound is None or prefix not in ("eq", "ge", "gt", "le", "lt"):
        raise UnsupportedSearch(f"date search value {value!r} is not supported")
    lo, hi = bound

    def test(resource: Resource) -> bool:
        start, end = getter(resource)
        first, last = _span(start), _span(end)
        if first is None and last is None:
            return False
        begins = (first or last)[0]  # type: ignore[index]
        ends = (last or first)[1]  # type: ignore[index]
        return {
            "ge": ends > lo,
            "gt": ends > hi,
            "le": begins < hi,
            "lt": begins < lo,
            "eq": begins >= lo and ends <= hi,
        }[prefix]

    return test


def _span(text: str | None) -> Span | None:
    """The moments a date, dateTime or instant covers, as [start, end)."""
    start = parse_time(text)
    if start is None or text is None:
        return None
    if len(text) == 4:
        return start, start.replace(year=start.year + 1)
    if len(text) == 7:
        month = start.month % 12 + 1
        return start, start.replace(year=start.year + (start.month == 12), month=month)
    if len(text) == 10:
        return start, start + timedelta(days=1)
    return start, start + timedelta(microseconds=1)


def _rewrite(value: Any, aliases: Mapping[str, str]) -> Any:
    """``value`` with each ``reference`` naming a Bundle entry's ``fullUrl`` given its id."""
    if isinstance(value, dict):
        return {
            k: aliases.get(v, v)
            if k == "reference" and isinstance(v, str)
            else _rewrite(v, aliases)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite(v, aliases) for v in value]
    return value


def _location(resource: Mapping[str, Any]) -> str:
    version = (resource.get("meta") or {}).get("versionId")
    return f"{resource['resourceType']}/{resource['id']}/_history/{version}"


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, list):
        return [(str(k), str(v)) for k, v in params]
    return [
        (k, v)
        for k, values in params.items()
        for v in ([values] if isinstance(values, str) else values)
    ]
