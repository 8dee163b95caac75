"""The FHIR client and EHR authorization, against FHIR servers served from memory.

Each test plays the EHR with ``httpx.MockTransport`` and checks what fhirgen would see: the
resources, the error it maps a failure to, the requests it sent and what they carried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhirgen.errors import ConfigError, PermanentError, TransientError
from fhirgen.fhir.auth import (
    ASSERTION_TYPE,
    BearerAuth,
    SmartBackendAuth,
    make_auth,
)
from fhirgen.fhir.client import FhirClient, NotFoundError

BASE = "https://ehr.test/fhir"
TOKEN_URL = "https://ehr.test/oauth2/token"
PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Kowalczyk"}]}

Handler = Callable[[httpx.Request], httpx.Response]


def fhir(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=orjson.dumps(body),
        headers={"Content-Type": "application/fhir+json", **headers},
    )


def outcome(code: str, diagnostics: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def searchset(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def obs(n: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{n}", "status": "final"}


class Recorder:
    """A MockTransport handler that records every request it answers."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, **kwargs: Any) -> FhirClient:
        return FhirClient(BASE, transport=httpx.MockTransport(self), **kwargs)


# -- reading ---------------------------------------------------------------------------------


def test_read_returns_the_resource_and_speaks_fhir_json():
    ehr = Recorder(lambda request: fhir(PATIENT))
    with ehr.client() as client:
        assert client.read("Patient", "p1") == PATIENT
        assert client.round_trips == 1
    request = ehr.requests[0]
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/Patient/p1"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["User-Agent"].startswith("fhirgen/")


def test_read_refuses_an_id_that_is_not_a_fhir_id_without_sending_anything():
    ehr = Recorder(lambda request: fhir(PATIENT))
    with ehr.client() as client, pytest.raises(PermanentError, match="not a FHIR resource"):
        client.read("Patient", "../metadata")
    assert ehr.requests == []


def test_get_reaches_operations_and_searches_below_the_base():
    ehr = Recorder(lambda request: fhir({"resourceType": "Parameters"}))
    with ehr.client() as client:
        client.get("Subscription/s1/$status")
        client.get("Basic?code=SubscriptionTopic")
        client.get("metadata", params={"_summary": "true"})
    assert [str(r.url) for r in ehr.requests] == [
        f"{BASE}/Subscription/s1/$status",
        f"{BASE}/Basic?code=SubscriptionTopic",
        f"{BASE}/metadata?_summary=true",
    ]


# -- error mapping ---------------------------------------------------------------------------


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_timeouts_and_network_errors_are_transient(exc):
    with Recorder(raising(exc)).client() as client, pytest.raises(TransientError) as caught:
        client.read("Encounter", "e1")
    assert caught.value.retry_after is None
    assert "Encounter/e1" in str(caught.value)


def test_429_with_retry_after_seconds_is_transient_with_the_delay():
    ehr = Recorder(lambda r: fhir(outcome("throttled", "slow down"), 429, **{"Retry-After": "120"}))
    with ehr.client() as client, pytest.raises(TransientError) as caught:
        client.read("Encounter", "e1")
    assert caught.value.retry_after == 120


def test_429_with_retry_after_http_date_is_transient_with_the_delay():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    ehr = Recorder(lambda r: fhir(outcome("throttled", "slow down"), 429, **{"Retry-After": later}))
    with ehr.client() as client, pytest.raises(TransientError) as caught:
        client.read("Encounter", "e1")
    assert 80 <= caught.value.retry_after <= 90


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(status):
    ehr = Recorder(lambda r: fhir(outcome("exception", "database unavailable"), status))
    with ehr.client() as client, pytest.raises(TransientError) as caught:
        client.search("Observation", {"patient": "p1"})
    assert str(status) in str(caught.value)
    assert "database unavailable" in str(caught.value)


def test_a_stale_if_match_is_retried_after_reading_again():
    """412: the resource changed since it was read (a clinician signed the draft meanwhile);
    the write step's retry reads it again and decides anew."""
    ehr = Recorder(lambda r: fhir(outcome("conflict", "version mismatch"), 412))
    with ehr.client() as client, pytest.raises(TransientError) as caught:
        client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert "412" in str(caught.value)


def test_503_keeps_its_retry_after():
    ehr = Recorder(lambda r: httpx.Response(503, headers={"Retry-After": "7"}))
    with ehr.client() as client, pytest.raises(TransientError) as caught:
        client.read("Encounter", "e1")
    assert caught.value.retry_after == 7


@pytest.mark.parametrize("status", [404, 410])
def test_missing_and_deleted_resources_are_not_found(status):
    ehr = Recorder(lambda r: fhir(outcome("not-found", "Encounter/e1 not found"), status))
    with ehr.client() as client, pytest.raises(NotFoundError) as caught:
        client.read("Encounter", "e1")
    assert isinstance(caught.value, PermanentError)
    assert not isinstance(caught.value, TransientError)
    assert str(status) in str(caught.value)


def test_400_is_permanent_and_names_the_outcome_issues():
    ehr = Recorder(lambda r: fhir(outcome("invalid", "Unknown search parameter 'colour'"), 400))
    with ehr.client() as client, pytest.raises(PermanentError) as caught:
        client.search("Observation", {"colour": "red"})
    message = str(caught.value)
    assert not isinstance(caught.value, NotFoundError | TransientError)
    assert "400" in message
    assert "invalid" in message
    assert "Unknown search parameter 'colour'" in message
    assert "colour=red" not in message  # the query string stays out of messages


def test_long_diagnostics_are_trimmed():
    ehr = Recorder(lambda r: fhir(outcome("processing", "x" * 5000), 422))
    with ehr.client() as client, pytest.raises(PermanentError) as caught:
        client.create({"resourceType": "DocumentReference", "status": "current"})
    assert len(str(caught.value)) < 400


def test_a_failed_response_that_is_not_an_outcome_never_reaches_the_message():
    # Some servers echo the resource they refused: it holds patient data.
    ehr = Recorder(lambda r: fhir(PATIENT, 409))
    with ehr.client() as client, pytest.raises(PermanentError) as caught:
        client.update(PATIENT)
    assert "409" in str(caught.value)
    assert "Kowalczyk" not in str(caught.value)


def test_debug_log_names_method_path_status_only(caplog):
    ehr = Recorder(lambda r: fhir(searchset(PATIENT)))
    caplog.set_level(logging.DEBUG, logger="fhirgen.fhir.client")
    with ehr.client() as client:
        client.search("Patient", {"name": "Kowalczyk"})
    lines = [r.getMessage() for r in caplog.records if r.name == "fhirgen.fhir.client"]
    assert len(lines) == 1
    assert lines[0].startswith("GET Patient -> 200 in ")
    assert "Kowalczyk" not in caplog.text


# -- searching and paging --------------------------------------------------------------------


def test_search_follows_next_links_to_the_end():
    pages = {
        None: searchset(obs(1), obs(2), next_url=f"{BASE}/Observation?patient=p1&page=2"),
        "2": searchset(obs(3), next_url="Observation?patient=p1&page=3"),  # relative link
        "3": searchset(obs(4)),
    }
    ehr = Recorder(lambda r: fhir(pages[r.url.params.get("page")]))
    with ehr.client() as client:
        found = client.search("Observation", {"patient": "p1", "_count": "2"})
        assert client.round_trips == 3
    assert [r["id"] for r in found] == ["o1", "o2", "o3", "o4"]
    assert [r.url.params.get("page") for r in ehr.requests] == [None, "2", "3"]


def test_search_keeps_matches_and_includes_and_drops_outcomes():
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": obs(1), "search": {"mode": "match"}},
            {
                "resource": {"resourceType": "DiagnosticReport", "id": "r1"},
                "search": {"mode": "include"},
            },
            {
                "resource": outcome("not-supported", "parameter ignored"),
                "search": {"mode": "outcome"},
            },
            {"resource": obs(2)},  # no search.mode: a match
        ],
    }
    with Recorder(lambda r: fhir(bundle)).client() as client:
        found = client.search("Observation", {"patient": "p1"})
    assert [f"{r['resourceType']}/{r['id']}" for r in found] == [
        "Observation/o1",
        "DiagnosticReport/r1",
        "Observation/o2",
    ]


def test_search_never_follows_a_next_link_to_another_host():
    ehr = Recorder(lambda r: fhir(searchset(obs(1), next_url="https://elsewhere.test/page2")))
    with ehr.client(auth=BearerAuth("secret")) as client, pytest.raises(PermanentError):
        client.search("Observation", {"patient": "p1"})
    assert [r.url.host for r in ehr.requests] == ["ehr.test"]


# -- batch -----------------------------------------------------------------------------------


def batch_response(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch-response", "entry": list(entries)}


def ok(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "response": {"status": "200 OK"}}


def failed(status: str, diagnostics: str, code: str = "processing") -> dict[str, Any]:
    return {"response": {"status": status, "outcome": outcome(code, diagnostics)}}


def test_batch_sends_one_bundle_and_returns_one_list_per_url_in_order():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return fhir(
                batch_response(
                    ok(PATIENT),
                    ok(searchset(obs(1), next_url=f"{BASE}/Observation?_page=2")),
                    failed("404 Not Found", "Condition/c9 not found", "not-found"),
                    ok(searchset()),
                )
            )
        assert str(request.url) == f"{BASE}/Observation?_page=2"
        return fhir(searchset(obs(2), next_url=f"{BASE}/Observation?_page=3"))

    pages = {"_page=3": searchset(obs(3))}

    def paged(request: httpx.Request) -> httpx.Response:
        query = request.url.query.decode()
        return fhir(pages[query]) if query in pages else handler(request)

    ehr = Recorder(paged)
    urls = ["Patient/p1", "Observation?patient=p1", "Condition/c9", "Goal?patient=p1"]
    with ehr.client() as client:
        results = client.batch(urls)
        assert client.round_trips == 3  # the batch, then two more pages of Observations
    assert results == [[PATIENT], [obs(1), obs(2), obs(3)], [], []]
    posted = orjson.loads(ehr.requests[0].content)
    assert ehr.requests[0].method == "POST"
    assert str(ehr.requests[0].url) == BASE
    assert ehr.requests[0].headers["Content-Type"] == "application/fhir+json"
    assert posted["type"] == "batch"
    assert [(e["request"]["method"], e["request"]["url"]) for e in posted["entry"]] == [
        ("GET", url) for url in urls
    ]


@pytest.mark.parametrize(
    ("status", "error"),
    [("500 Internal Server Error", TransientError), ("429 Too Many Requests", TransientError)],
)
def test_a_batch_entry_that_failed_on_the_server_side_is_transient(status, error):
    ehr = Recorder(lambda r: fhir(batch_response(ok(PATIENT), failed(status, "busy"))))
    with ehr.client() as client, pytest.raises(error):
        client.batch(["Patient/p1", "Observation?patient=p1"])


def test_a_refused_batch_entry_is_permanent_with_its_outcome():
    ehr = Recorder(
        lambda r: fhir(
            batch_response(failed("400 Bad Request", "Unknown parameter 'x'", "invalid"))
        )
    )
    with ehr.client() as client, pytest.raises(PermanentError) as caught:
        client.batch(["Observation?x=1"])
    assert not isinstance(caught.value, NotFoundError)
    assert "400" in str(caught.value)
    assert "Unknown parameter 'x'" in str(caught.value)


def test_a_batch_answer_with_missing_entries_is_refused():
    ehr = Recorder(lambda r: fhir(batch_response(ok(PATIENT))))
    with ehr.client() as client, pytest.raises(PermanentError, match="2 requests"):
        client.batch(["Patient/p1", "Encounter/e1"])


# -- writing ---------------------------------------------------------------------------------


def test_create_update_and_transaction_send_fhir_json_to_the_right_place():
    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        if body["resourceType"] == "Bundle":
            return fhir({"resourceType": "Bundle", "type": "transaction-response"})
        return fhir({**body, "id": body.get("id", "new1"), "meta": {"versionId": "1"}}, 201)

    ehr = Recorder(handler)
    note = {"resourceType": "DocumentReference", "status": "current"}
    with ehr.client() as client:
        created = client.create(note)
        updated = client.update({**note, "id": "d1"})
        answer = client.transaction({"resourceType": "Bundle", "type": "transaction"})
    assert created["id"] == "new1"
    assert updated["id"] == "d1"
    assert answer["type"] == "transaction-response"
    assert [(r.method, str(r.url)) for r in ehr.requests] == [
        ("POST", f"{BASE}/DocumentReference"),
        ("PUT", f"{BASE}/DocumentReference/d1"),
        ("POST", BASE),
    ]
    assert {r.headers["Content-Type"] for r in ehr.requests} == {"application/fhir+json"}


def test_update_needs_an_id():
    ehr = Recorder(lambda r: fhir(PATIENT))
    with ehr.client() as client, pytest.raises(PermanentError, match="no id"):
        client.update({"resourceType": "Patient"})
    assert ehr.requests == []


# -- authorization ---------------------------------------------------------------------------


def test_bearer_auth_sends_the_token():
    ehr = Recorder(lambda r: fhir(PATIENT))
    with ehr.client(auth=BearerAuth("s3cret")) as client:
        client.read("Patient", "p1")
    assert ehr.requests[0].headers["Authorization"] == "Bearer s3cret"


def write_key(folder: Path, alg: str) -> tuple[Path, Any]:
    if alg == "RS384":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP384R1())
    path = folder / f"{alg}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, key.public_key()


class FakeEhr:
    """An EHR with a SMART Backend Services token endpoint that checks assertions for real."""

    def __init__(self, public_key: Any, alg: str, *, expires_in: int = 300) -> None:
        self.public_key = public_key
        self.alg = alg
        self.expires_in = expires_in
        self.discoveries = 0
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (header, claims)
        self.forms: list[dict[str, list[str]]] = []
        self.valid: set[str] = set()
        self.authorizations: list[str] = []  # the Authorization header of each FHIR request
        self.token_answer: httpx.Response | None = None  # overrides the token endpoint
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fhir/.well-known/smart-configuration":
            self.discoveries += 1
            return httpx.Response(200, json={"token_endpoint": TOKEN_URL})
        if str(request.url) == TOKEN_URL:
            return self.token(request)
        with self.lock:
            # Recorded as sent: the auth flow re-sends the same request object after a 401.
            self.authorizations.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in self.valid:
            return fhir(PATIENT)
        return fhir(outcome("login", "Invalid access token"), 401)

    def token(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        with self.lock:
            self.forms.append(form)
        if self.token_answer is not None:
            return self.token_answer
        assertion = form["client_assertion"][0]
        claims = jwt.decode(
            assertion,
            self.public_key,
            algorithms=[self.alg],
            audience=TOKEN_URL,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
        time.sleep(0.05)  # a slow token endpoint makes concurrent fetches overlap
        with self.lock:
            self.assertions.append((jwt.get_unverified_header(assertion), claims))
            token = f"token-{len(self.assertions)}"
            self.valid.add(token)
        return httpx.Response(
            200,
            json={"access_token": token, "token_type": "bearer", "expires_in": self.expires_in},
        )

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def smart(
    tmp_path: Path, alg: str = "RS384", *, kid: str | None = "key-1", **ehr_options: Any
) -> tuple[FakeEhr, SmartBackendAuth, FhirClient, Clock]:
    key_path, public_key = write_key(tmp_path, alg)
    ehr = FakeEhr(public_key, alg, **ehr_options)
    clock = Clock()
    auth = SmartBackendAuth(
        BASE,
        "fhirgen",
        key_path,
        alg=alg,
        kid=kid,
        scopes="system/Patient.rs",
        client=httpx.Client(transport=ehr.transport()),
        clock=clock,
    )
    client = FhirClient(BASE, auth=auth, transport=ehr.transport())
    return ehr, auth, client, clock


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_smart_backend_auth_discovers_the_token_url_and_signs_a_valid_assertion(tmp_path, alg):
    ehr, _, client, _ = smart(tmp_path, alg)
    with client:
        assert client.read("Patient", "p1") == PATIENT
    assert ehr.discoveries == 1
    ((header, claims),) = ehr.assertions
    assert header["alg"] == alg
    assert header["kid"] == "key-1"
    assert claims["iss"] == claims["sub"] == "fhirgen"
    assert claims["aud"] == TOKEN_URL
    assert claims["jti"]
    assert 0 < claims["exp"] - time.time() <= 300
    form = ehr.forms[0]
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    assert form["scope"] == ["system/Patient.rs"]
    assert ehr.authorizations == ["Bearer token-1"]


def test_no_kid_header_unless_one_is_configured(tmp_path):
    ehr, _, client, _ = smart(tmp_path, kid=None)
    with client:
        client.read("Patient", "p1")
    ((header, _),) = ehr.assertions
    assert "kid" not in header


def test_the_token_is_fetched_once_for_concurrent_requests_and_then_reused(tmp_path):
    ehr, _, client, _ = smart(tmp_path)
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        client.read("Patient", "p1")

    with client:
        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        client.read("Patient", "p1")
        client.read("Patient", "p1")
        assert client.round_trips == 10
    assert len(ehr.assertions) == 1
    assert ehr.authorizations == ["Bearer token-1"] * 10


def test_the_token_is_refreshed_shortly_before_it_expires(tmp_path):
    ehr, _, client, clock = smart(tmp_path, expires_in=300)
    with client:
        client.read("Patient", "p1")
        clock.now += 200  # well inside the token's life
        client.read("Patient", "p1")
        clock.now += 50  # 250 s: within a minute of expiry
        client.read("Patient", "p1")
    assert len(ehr.assertions) == 2
    assert ehr.assertions[0][1]["jti"] != ehr.assertions[1][1]["jti"]
    assert ehr.authorizations == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


def test_a_401_gets_one_new_token_and_one_retry(tmp_path):
    ehr, _, client, _ = smart(tmp_path)
    with client:
        client.read("Patient", "p1")
        ehr.valid.clear()  # the EHR revoked token-1
        assert client.read("Patient", "p1") == PATIENT
        assert client.round_trips == 3
    assert len(ehr.assertions) == 2
    assert ehr.authorizations == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


def test_a_second_401_is_permanent(tmp_path):
    ehr, _, client, _ = smart(tmp_path)

    class RefusesAll(set):
        def add(self, token: str) -> None:
            pass  # the EHR issues tokens and then refuses them all

    ehr.valid = RefusesAll()
    with client, pytest.raises(PermanentError) as caught:
        client.read("Patient", "p1")
    assert "401" in str(caught.value)
    assert len(ehr.assertions) == 2
    assert len(ehr.authorizations) == 2


@pytest.mark.parametrize(
    ("status", "error", "description"),
    [
        (400, "invalid_scope", "None of the requested scopes are allowed"),
        (401, "invalid_client", "client_assertion verification failed"),
    ],
)
def test_a_refused_token_request_is_permanent_and_keeps_secrets_out(
    tmp_path, status, error, description
):
    ehr, _, client, _ = smart(tmp_path)
    ehr.token_answer = httpx.Response(
        status, json={"error": error, "error_description": description}
    )
    with client, pytest.raises(PermanentError) as caught:
        client.read("Patient", "p1")
    message = str(caught.value)
    assert not isinstance(caught.value, TransientError)
    assert str(status) in message
    assert error in message
    assert description in message
    assert ehr.forms[0]["client_assertion"][0] not in message
    assert ehr.authorizations == []


def test_an_assertion_echoed_by_the_token_endpoint_is_not_repeated(tmp_path):
    ehr, _, client, _ = smart(tmp_path)

    def echo(request: httpx.Request) -> httpx.Response:
        assertion = parse_qs(request.content.decode())["client_assertion"][0]
        return httpx.Response(
            400, json={"error": "invalid_request", "error_description": f"bad: {assertion}"}
        )

    ehr.token = echo  # type: ignore[method-assign]
    with client, pytest.raises(PermanentError) as caught:
        client.read("Patient", "p1")
    assert "eyJ" not in str(caught.value)  # no JWT in the message


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, headers={"Retry-After": "30"}),
        httpx.Response(429, headers={"Retry-After": "30"}),
    ],
    ids=["503", "429"],
)
def test_an_unavailable_token_endpoint_is_transient(tmp_path, answer):
    ehr, _, client, _ = smart(tmp_path)
    ehr.token_answer = answer
    with client, pytest.raises(TransientError) as caught:
        client.read("Patient", "p1")
    assert caught.value.retry_after == 30


def test_an_unreachable_token_endpoint_is_transient(tmp_path):
    key_path, _ = write_key(tmp_path, "RS384")
    auth = SmartBackendAuth(
        BASE,
        "fhirgen",
        key_path,
        token_url=TOKEN_URL,
        client=httpx.Client(transport=httpx.MockTransport(raising(httpx.ConnectError("down")))),
    )
    ehr = Recorder(lambda r: fhir(PATIENT))
    with ehr.client(auth=auth) as client, pytest.raises(TransientError):
        client.read("Patient", "p1")
    assert ehr.requests == []


def test_a_server_without_smart_configuration_is_a_permanent_error(tmp_path):
    key_path, _ = write_key(tmp_path, "RS384")
    ehr = Recorder(lambda r: fhir(outcome("not-found", "no such page"), 404))
    auth = SmartBackendAuth(
        BASE, "fhirgen", key_path, client=httpx.Client(transport=httpx.MockTransport(ehr))
    )
    with pytest.raises(PermanentError, match="smart-configuration"):
        auth.access_token()


# -- building auth from settings ------------------------------------------------------------


def test_make_auth_builds_each_kind(tmp_path):
    key_path, _ = write_key(tmp_path, "ES384")
    assert make_auth("none", base_url=BASE) is None
    assert isinstance(make_auth("bearer", base_url=BASE, token="t"), BearerAuth)
    auth = make_auth(
        "smart-backend", base_url=BASE, client_id="fhirgen", private_key_path=key_path, alg="ES384"
    )
    assert isinstance(auth, SmartBackendAuth)
    assert "ES384" in repr(auth)


@pytest.mark.parametrize(
    ("kind", "options", "complaint"),
    [
        ("bearer", {}, "token"),
        ("smart-backend", {"private_key_path": "k.pem"}, "client id"),
        ("smart-backend", {"client_id": "fhirgen"}, "private key path"),
        ("basic", {}, "unknown FHIR auth kind"),
    ],
)
def test_make_auth_says_what_is_missing(kind, options, complaint):
    with pytest.raises(ConfigError, match=complaint):
        make_auth(kind, base_url=BASE, **options)


def test_a_key_that_does_not_fit_the_algorithm_is_a_config_error(tmp_path):
    ec_key, _ = write_key(tmp_path, "ES384")
    with pytest.raises(ConfigError, match="RS384 needs an RSA key"):
        SmartBackendAuth(BASE, "fhirgen", ec_key, alg="RS384")
    with pytest.raises(ConfigError, match="cannot read"):
        SmartBackendAuth(BASE, "fhirgen", tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="RS384 or ES384"):
        SmartBackendAuth(BASE, "fhirgen", ec_key, alg="HS256")
