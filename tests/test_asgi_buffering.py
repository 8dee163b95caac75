"""webhooks.asgi.buffered: Flask sees only whole requests, with their length; a body too large is
refused by the view as before, one too slow gets 408, a client that leaves reaches no view."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import pytest
from flask import Flask, request

from webhooks import asgi

LIMIT = 1000


def echo_app(seen: list[dict[str, Any]]) -> Flask:
    app = Flask("echo")

    @app.post("/echo")
    def echo() -> Any:
        if request.content_length is not None and request.content_length > LIMIT:
            return {"refused": request.content_length}, 413
        body = request.get_data()
        seen.append({"length": request.content_length, "body": body})
        return {"size": len(body)}

    return app


def call(
    chunks: Iterable[bytes | None],
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    gap: float = 0.0,
    seen: list[dict[str, Any]] | None = None,
) -> tuple[int, bytes]:
    """Run one POST /echo through ``buffered``; ``None`` in ``chunks`` is the client leaving."""
    app = asgi.buffered(echo_app(seen if seen is not None else []), limit=LIMIT)
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if gap:
            await asyncio.sleep(gap)
        if not pending:
            await asyncio.sleep(3600)
        chunk = pending.pop(0)
        if chunk is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": headers or [(b"host", b"x"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    if not sent:
        return 0, b""
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def test_a_chunked_body_reaches_flask_whole_with_its_length() -> None:
    seen: list[dict[str, Any]] = []
    status, body = call([b'{"a":', b" 1", b"}"], seen=seen)
    assert status == 200 and json.loads(body) == {"size": 8}
    assert seen == [{"length": 8, "body": b'{"a": 1}'}]


def test_a_body_over_the_limit_is_refused_by_the_view_without_being_read_whole() -> None:
    seen: list[dict[str, Any]] = []
    status, body = call([b"x" * 600] * 100, seen=seen)  # 60 kB announced by no header
    assert status == 413 and json.loads(body) == {"refused": LIMIT + 1}
    assert seen == []


def test_a_body_that_does_not_arrive_in_time_gets_408_as_fhir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(asgi, "BODY_SECONDS", 0.5)
    seen: list[dict[str, Any]] = []
    status, body = call([b"x"] * 100, gap=0.05, seen=seen)  # one byte every 50 ms
    assert status == 408
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "timeout"
    assert seen == []


def test_a_client_that_leaves_mid_body_reaches_no_view() -> None:
    seen: list[dict[str, Any]] = []
    assert call([b"{", None], seen=seen) == (0, b"")
    assert seen == []


def test_an_empty_post_still_says_its_length() -> None:
    seen: list[dict[str, Any]] = []
    status, _ = call([b""], headers=[(b"host", b"x")], seen=seen)
    assert status == 200 and seen == [{"length": 0, "body": b""}]
