"""A small FHIR R4 REST client over one ``httpx.Client``, speaking fhirgen's error tree.

Every HTTP failure is translated here, once, by exception type and status code:
timeouts, network errors, 429 and 5xx become ``TransientError`` (with ``retry_after`` when the
server sent ``Retry-After``); 404 and 410 become ``NotFoundError``; any other 4xx becomes
``PermanentError`` naming the status and the OperationOutcome's issues. Response bodies are
never put in messages or logs, apart from OperationOutcome diagnostics.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn, cast
from urllib.parse import urljoin

import httpx
import orjson

from fhirgen.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_MESSAGE_LIMIT = 300

Params = Mapping[str, str | Sequence[str]] | list[tuple[str, str]]


class NotFoundError(PermanentError):
    """The server answered 404 Not Found or 410 Gone."""


@cache
def _version() -> str:
    try:
        return version("fhirgen")
    except PackageNotFoundError:
        return "0"


def put_transaction(resources: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle that PUTs each resource at its own id (loading a record as is)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }


class FhirClient:
    """FHIR REST interactions against one base URL, with connection pooling and timeouts.

    ``transport`` lets tests serve answers from memory (``httpx.MockTransport``).
    ``round_trips`` counts the HTTP requests sent to the FHIR server (auth retries included).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(httpx.URL(self.base_url))
        self._lock = threading.Lock()
        self._round_trips = 0
        self._http = httpx.Client(
            auth=auth,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={
                "Accept": FHIR_JSON,
                "User-Agent": user_agent or f"fhirgen/{_version()}",
            },
            event_hooks={"request": [self._count]},
        )

    # -- bookkeeping -----------------------------------------------------------------------

    @property
    def round_trips(self) -> int:
        """HTTP requests sent so far."""
        return self._round_trips

    def _count(self, request: httpx.Request) -> None:
        with self._lock:
            self._round_trips += 1

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- interactions ----------------------------------------------------------------------

    def read(self, rtype: str, rid: str) -> dict[str, Any]:
        """``GET [base]/Type/id``."""
        return self.get(_instance_path(rtype, rid))

    def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        """Any GET below the base URL that answers JSON (``metadata``, ``Subscription/x/$status``,
        ``Basic?code=…``)."""
        return self._json("GET", self._url(path), params=params)

    def search(self, rtype: str, params: Params | None = None) -> list[dict[str, Any]]:
        """``GET [base]/Type?params``, following ``next`` links to the end; the matched and
        included resources, without OperationOutcomes."""
        if not _TYPE.match(rtype):
            raise PermanentError(f"not a FHIR resource type: {rtype!r}")
        first = self._json("GET", self._url(rtype), params=params)
        return list(self._pages(first))

    def batch(self, urls: Sequence[str]) -> list[list[dict[str, Any]]]:
        """One ``batch`` Bundle of GETs (``Type/id`` reads or ``Type?…`` searches).

        Returns one resource list per url, in order, each search followed to its last page.
        An entry answered 404 or 410 gives an empty list; any other failed entry raises.
        """
        if not urls:
            return []
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
        }
        answer = self._json("POST", self.base_url, body=bundle)
        entries = answer.get("entry") or []
        if answer.get("resourceType") != "Bundle" or len(entries) != len(urls):
            raise PermanentError(
                f"batch of {len(urls)} requests answered with {len(entries)} entries"
            )
        results: list[list[dict[str, Any]]] = []
        for url, entry in zip(urls, entries, strict=True):
            response = (entry or {}).get("response") or {}
            status = _entry_status(response.get("status"))
            if status in (404, 410):
                results.append([])
                continue
            what = f"batch entry GET {_strip_query(url)}"
            if status is None:
                raise PermanentError(f"{what} has no response status")
            if status >= 300:
                _raise_for(status, what, response.get("outcome"))
            resource = (entry or {}).get("resource")
            if not isinstance(resource, dict) or resource.get("resourceType") == "OperationOutcome":
                results.append([])
            elif resource.get("resourceType") == "Bundle" and resource.get("type") == "searchset":
                results.append(list(self._pages(resource)))
            else:
                results.append([resource])
        return results

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """``POST [base]`` a transaction Bundle; returns the transaction-response Bundle."""
        return self._json("POST", self.base_url, body=bundle, prefer_body=True)

    def create(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """``POST [base]/Type``; returns the stored resource."""
        rtype = str(resource.get("resourceType"))
        if not _TYPE.match(rtype):
            raise PermanentError(f"not a FHIR resource type: {rtype!r}")
        return self._json("POST", self._url(rtype), body=resource, prefer_body=True)

    def update(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT [base]/Type/id``; returns the stored resource."""
        rid = resource.get("id")
        if not isinstance(rid, str):
            raise PermanentError(f"{resource.get('resourceType')} to update has no id")
        path = _instance_path(str(resource.get("resourceType")), rid)
        return self._json("PUT", self._url(path), body=resource, prefer_body=True)

    # -- plumbing --------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _pages(self, bundle: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        while True:
            for entry in bundle.get("entry") or []:
                resource = (entry or {}).get("resource")
                mode = ((entry or {}).get("search") or {}).get("mode", "match")
                if (
                    isinstance(resource, dict)
                    and mode in ("match", "include")
                    and resource.get("resourceType") != "OperationOutcome"
                ):
                    yield resource
            link = _next_link(bundle)
            if link is None:
                return
            url = urljoin(self.base_url + "/", link)
            if url in seen:
                raise PermanentError("search paging loops: a next link repeats")
            seen.add(url)
            if _origin(httpx.URL(url)) != self._origin:
                # Credentials go to the EHR only, never to a host a Bundle names.
                raise PermanentError("search next link points outside the FHIR server")
            bundle = self._json("GET", url)

    def _json(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        body: Mapping[str, Any] | None = None,
        prefer_body: bool = False,
    ) -> dict[str, Any]:
        headers = {"Prefer": "return=representation"} if prefer_body else {}
        response = self._send(method, url, params=params, body=body, headers=headers)
        if not response.content:
            return {}
        where = f"{method} {_path_of(url, self.base_url)}"
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise PermanentError(
                f"{where} answered {response.status_code} with a body that is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise PermanentError(f"{where} answered JSON that is not a FHIR resource")
        return data

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
        content = orjson.dumps(dict(body)) if body is not None else None
        path = _path_of(url, self.base_url)
        started = time.monotonic()
        try:
            # httpx types its parameter lists invariantly; ours are lists of (str, str) pairs.
            query = cast(Any, params)
            response = self._http.request(
                method, url, params=query, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"{method} {path} timed out ({type(exc).__name__})") from exc
        except httpx.UnsupportedProtocol as exc:
            raise PermanentError(f"{method} {path}: unsupported URL scheme") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{method} {path} failed ({type(exc).__name__})") from exc
        log.debug(
            "%s %s -> %s in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        if response.is_success:
            return response
        outcome = None
        if response.status_code >= 400:
            try:
                outcome = orjson.loads(response.content) if response.content else None
            except orjson.JSONDecodeError:
                outcome = None
        _raise_for(
            response.status_code,
            f"{method} {path}",
            outcome,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _raise_for(
    status: int, what: str, outcome: Any, *, retry_after: float | None = None
) -> NoReturn:
    """Raise the error a failed status maps to (by status, never by message text)."""
    detail = _outcome_summary(outcome)
    message = f"{what} answered {status}" + (f": {detail}" if detail else "")
    # 412: a conditional update (If-Match) found a newer version; read again and retry.
    if status in (412, 429) or status >= 500:
        raise TransientError(message, retry_after=retry_after)
    if status in (404, 410):
        raise NotFoundError(message)
    raise PermanentError(message)


def _outcome_summary(outcome: Any) -> str:
    """Issue codes and diagnostics of an OperationOutcome, trimmed; other bodies say nothing."""
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, Mapping):
            continue
        text = str(issue.get("code") or "")
        diagnostics = issue.get("diagnostics")
        if isinstance(diagnostics, str) and diagnostics:
            text = f"{text} ({diagnostics})" if text else diagnostics
        if text:
            parts.append(text)
    summary = "; ".join(parts)
    if len(summary) > _MESSAGE_LIMIT:
        summary = summary[: _MESSAGE_LIMIT - 1] + "…"
    return summary


def _entry_status(value: Any) -> int | None:
    """``"404 Not Found"`` → 404."""
    if isinstance(value, str):
        head = value.strip().split(" ", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, Mapping) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _instance_path(rtype: str, rid: str) -> str:
    if not _TYPE.match(rtype) or not _ID.match(rid):
        raise PermanentError(f"not a FHIR resource reference: {rtype!r}/{rid!r}")
    return f"{rtype}/{rid}"


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


def _path_of(url: str, base_url: str) -> str:
    """The request path below the base URL, without its query string (safe to log)."""
    path = _strip_query(url)
    if path.startswith(base_url):
        path = path[len(base_url) :]
    return path.lstrip("/") or "[base]"
