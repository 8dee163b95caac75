"""The outside attack run, repeatable: a few thousand seeded mutations of valid notifications of
every shape, posted to the webhook through Flask's test client on a SQLite store.

What must hold whatever comes in: no answer is a 5xx (bad input is a 4xx OperationOutcome),
and no job exists but for an Encounter that a notification answered 200 really named (a
reference ``Encounter/<id>``, an Encounter resource's id, or the ``Encounter/<id>`` of a PUT's
path). The seed is fixed: a failure is rerun with the same requests; ``FHIRGEN_FUZZ_SEED`` and
``FHIRGEN_FUZZ_REQUESTS`` run other or more.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from fhirgen.cli.processes import free_port
from fhirgen.config import load_settings
from fhirgen.service.vault import Vault, token_hash
from webhooks import create_app

pytestmark = pytest.mark.usefixtures("clean_environment")

SEED = int(os.environ.get("FHIRGEN_FUZZ_SEED", "1414"))
REQUESTS = int(os.environ.get("FHIRGEN_FUZZ_REQUESTS", "3000"))
FHIR_JSON = "application/fhir+json"
TOKEN = "bearer-" + "f5Z8q2W7" * 5
HMAC_KEY = "hmac-" + "p1O9i8U7" * 5
BASE = "https://ehr.example.org/fhir"
TOPIC = "http://hl7.org/fhir/uv/subscriptions-backport/SubscriptionTopic/r4-encounter-complete"
STAMP = "2024-05-29T11:44:13.188-05:00"
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# What counts as naming an Encounter: a reference, relative or absolute, maybe versioned.
ENCOUNTER_REFERENCE = re.compile(
    r"(?:[^#]*/)?Encounter/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?/?"
)
LIMIT = 256 * 1024
SUBSCRIPTIONS = {"rest": "rest-hook", "signed": "rest-hook", "topic": "topic", "off": "rest-hook"}


def _encounter(eid: str = "enc-1", version: str = "3") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "meta": {"versionId": version, "lastUpdated": "2024-05-29T16:44:12.000Z"},
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/pat-1"},
        "period": {"start": "2024-05-25T08:00:00Z", "end": "2024-05-29T16:40:00Z"},
    }


def _r4_status(ntype: str, since: Any, events: list[tuple[Any, str | None]]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{BASE}/Subscription/s"}},
        {"name": "topic", "valueCanonical": TOPIC},
        {"name": "status", "valueCode": "active"},
        {"name": "type", "valueCode": ntype},
        {"name": "events-since-subscription-start", "valueString": str(since)},
    ]
    for number, focus in events:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(number)},
            {"name": "timestamp", "valueInstant": STAMP},
        ]
        if focus:
            parts.append({"name": "focus", "valueReference": {"reference": focus}})
        params.append({"name": "notification-event", "part": parts})
    return {"resourceType": "Parameters", "id": "status-1", "parameter": params}


def _bundle(status: dict[str, Any], *resources: dict[str, Any], btype: str = "history") -> Any:
    entries = [{"fullUrl": "urn:uuid:status-1", "resource": status}]
    for resource in resources:
        rtype, rid = resource["resourceType"], resource["id"]
        entries.append(
            {
                "fullUrl": f"{BASE}/{rtype}/{rid}",
                "resource": resource,
                "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
            }
        )
    return {"resourceType": "Bundle", "id": "n-1", "type": btype, "entry": entries}


def _r5_status(ntype: str, since: Any, events: list[tuple[Any, str]]) -> dict[str, Any]:
    return {
        "resourceType": "SubscriptionStatus",
        "status": "active",
        "type": ntype,
        "eventsSinceSubscriptionStart": since,
        "notificationEvent": [
            {"eventNumber": number, "timestamp": STAMP, "focus": {"reference": focus}}
            for number, focus in events
        ],
        "subscription": {"reference": "Subscription/s"},
        "topic": TOPIC,
    }


def _seeds() -> list[tuple[str, Any]]:
    """(shape, body) of valid notifications of every shape the webhook accepts."""
    e1, e2 = _encounter("enc-1"), _encounter("enc-2", "7")
    patient = {"resourceType": "Patient", "id": "pat-1", "name": [{"family": "Doe"}]}
    id_only = [(1, f"{BASE}/Encounter/enc-1"), (2, "Encounter/enc-2/_history/7")]
    r5_events = [(30, "urn:uuid:e"), (31, "Encounter/enc-2")]
    r5 = "subscription-notification"
    return [
        ("rest-hook", e1),
        ("rest-hook other type", patient),
        ("rest-hook deleted", {}),
        ("ping", None),
        ("id-only", _bundle(_r4_status("event-notification", 2, id_only))),
        ("full-resource", _bundle(_r4_status("event-notification", 1, id_only[:1]), e1)),
        ("empty", _bundle(_r4_status("event-notification", 3, [(3, None)]))),
        ("heartbeat", _bundle(_r4_status("heartbeat", 3, []))),
        ("handshake", _bundle(_r4_status("handshake", 0, []))),
        ("query-status", _bundle(_r4_status("query-status", 3, []))),
        ("r4b", _bundle(_r5_status("event-notification", "2", r5_events[1:]), btype=r5)),
        ("r5 full", _bundle(_r5_status("event-notification", 31, r5_events), e1, e2, btype=r5)),
        ("r5 heartbeat", _bundle(_r5_status("heartbeat", 40, []), btype=r5)),
    ]


# Values an attacker tries in place of any value of a valid notification.
EVIL_STRINGS = [
    "",
    " ",
    "\x00",
    "a\nb",
    "\x1b[2J",
    "\u202eevil",
    "\ud800",
    "é" * 50,
    "🏥" * 20,
    "x" * 70,
    "x" * 20000,
    "Encounter/",
    "Encounter/../../x",
    "Encounter/a b",
    "Encounter/" + "a" * 65,
    "Encounter/ok-id/_history/" + "9" * 80,
    "http://evil/Encounter/evil-1",
    "urn:uuid:nowhere",
    "Patient/pat-1",
    "encounter/lower",
    "Encounter/evil\n2",
    "#Encounter/contained",
    str(2**63),
    str(2**31),
    "-1",
    "1e3",
    "0x10",
    "١٢",  # Arabic-Indic digits: str.isdigit says yes
    "event-notification",
    "history",
    "Bundle",
    "SubscriptionStatus",
    "Parameters",
]
EVIL_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**31 - 1,
    2**31,
    2**63 - 1,
    2**63,
    2**64 - 1,
    1.5,
    1e308,
    [],
    {},
    [None],
    {"reference": "Encounter/ref-in-dict"},
    *EVIL_STRINGS,
]
CONTENT_TYPES = [
    FHIR_JSON,
    "application/json",
    "application/json+fhir; charset=utf-8",
    "APPLICATION/FHIR+JSON",
    "text/plain",
    "application/fhir+xml",
    "",
    "application/fhir+json; charset=\xe9",
    "multipart/form-data; boundary=x",
    "\x00",
    "a" * 500,
]


def _evil(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(EVIL_VALUES))  # a fresh one: never shared, never circular


def _walk(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _at(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


def _mutate_tree(rng: random.Random, doc: Any) -> Any:
    """One to four structural changes of a JSON document."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 4)):
        places = list(_walk(doc))
        path, node = rng.choice(places)
        action = rng.random()
        if not path:
            if action < 0.3:
                doc = _evil(rng)
                break
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        if action < 0.45:
            parent[key] = _evil(rng)
        elif action < 0.6:
            del parent[key]
        elif action < 0.7 and isinstance(parent, list):
            parent.extend([copy.deepcopy(node)] * rng.choice([1, 5, 60, 120]))
        elif action < 0.8 and isinstance(node, str):
            parent[key] = node + rng.choice(EVIL_STRINGS)
        elif action < 0.9 and isinstance(parent, dict):
            parent[rng.choice(["id", "resourceType", "type", "reference", "eventNumber"])] = _evil(
                rng
            )
        else:
            parent[key] = [node, node] if rng.random() < 0.5 else {"nested": node}
    return doc


def _mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    choice = rng.random()
    if choice < 0.2 and body:
        return body[: rng.randrange(len(body))]
    if choice < 0.4 and body:
        at = rng.randrange(len(body))
        return body[:at] + bytes([rng.randrange(256)]) + body[at + 1 :]
    if choice < 0.5:
        return b"\xef\xbb\xbf" + body
    if choice < 0.6:
        return b"[" * 3000 + b"]" * 3000
    if choice < 0.7:
        return body.replace(b'"', b"'", 1)
    if choice < 0.8:
        return b"\xff\xfe" + body
    if choice < 0.9:
        return body + b" trailing"
    return body.replace(b"enc-1", b"enc-\xc3\xa9", 1)


def _evil_id(rng: random.Random) -> str:
    return rng.choice(
        [
            "a" * 65,
            "a" * 3000,
            "x%0Ay",
            "x%1B[31m",
            "x%00",
            "%C3%A9t%C3%A9",
            "x%20y",
            "..",
            "-",
            "off",
        ]
    )


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    content_type: str | None
    doc: Any = field(default=None)  # the JSON sent, when it is JSON
    put_path: str | None = None  # the Type/id after the endpoint
    environ: dict[str, str] = field(default_factory=dict)  # what the WSGI server says


def _request(rng: random.Random, seeds: list[tuple[str, Any]]) -> Request:
    _shape, base = rng.choice(seeds)
    doc: Any = base
    if base is not None and rng.random() < 0.85:
        doc = _mutate_tree(rng, base)
    text = "" if doc is None else json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    body = text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8
    if rng.random() < 0.15:
        body = _mutate_bytes(rng, body)
    sub = rng.choices(["rest", "signed", "topic", "off", "unknown"], [30, 15, 40, 5, 5])[0]
    if rng.random() < 0.04:
        sub = _evil_id(rng)
    if rng.random() < 0.02:  # over FHIRGEN_MAX_NOTIFICATION_BYTES
        body = body[:-1] + b', "padding": "' + b"x" * LIMIT + b'"}' if body else b" " * LIMIT * 2
    method = rng.choices(["POST", "PUT", "DELETE", "GET", "PATCH"], [80, 10, 4, 3, 3])[0]
    put_path = None
    path = f"/fhir/notify/{sub}"
    if method == "PUT" or rng.random() < 0.05:
        rtype = rng.choice(["Encounter", "Encounter", "Patient", "encounter", "Bundle"])
        rid = rng.choice(["enc-1", "enc-2", "enc-9", quote("a b"), "x" * 70, quote("\n")])
        put_path = f"{rtype}/{rid}"
        path += f"/{put_path}"
    if rng.random() < 0.03:  # paths no route serves
        path = rng.choice(
            [f"{path}/extra", f"/fhir/notify/{sub}/Encounter", "/fhir/notify/a%2Fb", "/fhir/"]
        )
    headers: dict[str, str] = {}
    auth = rng.random()
    if auth < 0.85:
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif auth < 0.9:
        headers["Authorization"] = f"Bearer {TOKEN}\xe9"
    elif auth < 0.95:
        headers["Authorization"] = rng.choice(["Basic x", "Bearer", "bearer  " + TOKEN, "\x00"])
    if sub == "signed":
        sign = rng.random()
        if sign < 0.8:
            headers["X-Signature"] = hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
        elif sign < 0.9:
            headers["X-Signature"] = rng.choice(["caf\xc3\xa9", "\xff" * 64, "00" * 32, " "])
    if rng.random() < 0.1:
        # Not \n or \r: neither a WSGI server nor the test client hands those over in a value.
        value = rng.choice([v for v in EVIL_STRINGS[:12] if "\n" not in v])
        headers[rng.choice(["X-Forwarded-For", "User-Agent", "X-Medplum-Subscription"])] = value
    content_type: str | None = FHIR_JSON if rng.random() < 0.85 else rng.choice(CONTENT_TYPES)
    if not body and rng.random() < 0.5:
        content_type = None
    environ = {}
    if rng.random() < 0.03:  # a Content-Length that is not the body's
        environ["CONTENT_LENGTH"] = rng.choice(["abc", "-1", "9" * 25, "", " 5", "0", "\xe9"])
    return Request(method, path, body, headers, content_type, _json(body), put_path, environ)


def _json(body: bytes) -> Any:
    """What the body holds, read by the standard library (not the webhook's parser)."""
    try:
        return json.loads(body.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, RecursionError):  # RecursionError: 3,000 nested arrays
        return None


def _named_encounters(request: Request) -> set[str]:
    """The Encounter ids a request names by itself, found without the webhook's parser."""
    named: set[str] = set()
    if request.put_path and request.put_path.startswith("Encounter/"):
        named.add(request.put_path.removeprefix("Encounter/"))
    for _path, node in _walk(request.doc):
        if isinstance(node, str) and (match := ENCOUNTER_REFERENCE.fullmatch(node)):
            named.add(match[1])
        if isinstance(node, dict) and node.get("resourceType") == "Encounter":
            named.add(str(node.get("id")))
    return named


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    settings = load_settings(
        data_dir=tmp_path / "data",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # down: jobs are recorded, unsent
        max_notification_bytes=LIMIT,
    )
    app = create_app(settings)
    store = app.extensions["fhirgen"].store
    for sub, kind in SUBSCRIPTIONS.items():
        store.add_subscription(
            id=sub, kind=kind, criteria="x", status="paused" if sub == "off" else "active",
            token_hash=token_hash(TOKEN),
            hmac_secret=Vault(settings).encrypt(HMAC_KEY) if sub == "signed" else None,
            events_since=0, notifications=0, gaps_detected=0, gaps_recovered=0,
        )  # fmt: skip
    yield app
    store.dispose()


def _send(client: Any, request: Request) -> Any:
    send: Callable[..., Any] = getattr(client, request.method.lower())
    return send(
        request.path,
        data=request.body,
        headers=request.headers,
        content_type=request.content_type,
        environ_overrides=request.environ,
    )


def test_mutated_notifications_never_get_a_5xx_nor_make_a_job_for_what_is_no_encounter(app):
    rng = random.Random(SEED)
    seeds = _seeds()
    client = app.test_client()
    store = app.extensions["fhirgen"].store
    named: set[str] = set()
    statuses: dict[int, int] = {}
    started = time.monotonic()
    for number in range(REQUESTS):
        request = _request(rng, seeds)
        response = _send(client, request)
        status = response.status_code
        statuses[status] = statuses.get(status, 0) + 1
        where = f"request {number} (seed {SEED}): {request.method} {request.path[:100]}"
        assert status < 500, f"{where} answered {status}: {response.get_data()[:300]!r}"
        if status >= 400:
            outcome = json.loads(response.get_data())
            assert outcome["resourceType"] == "OperationOutcome", where
            assert response.mimetype == FHIR_JSON, where
        if status == 200:
            named |= _named_encounters(request)
    elapsed = time.monotonic() - started
    jobs = store.jobs(limit=100_000)
    made = {job.encounter_id for job in jobs}
    assert made, "no mutation got as far as a job: the fuzzing is too blunt"
    assert all(ID.fullmatch(encounter) for encounter in made), made
    assert made <= named, made - named
    for event in store.events(limit=100_000):
        if event.job_id is not None:
            assert event.focus and event.focus.startswith("Encounter/"), event
    # Every kind of answer was exercised, or the run proves little.
    assert {200, 401, 404, 413, 415, 400, 422, 405} <= set(statuses), statuses
    assert elapsed < 120, f"{REQUESTS} requests took {elapsed:.0f} s"
