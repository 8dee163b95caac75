"""The webhook as gunicorn's asyncio worker serves it: every request read whole on the event loop
before a thread runs Flask on it.

gunicorn's threaded worker gives a connection a thread from its first byte until the request has
been read, so ten clients that trickle their headers or bodies held every thread and health,
console and notifications timed out (issue 14). Here gunicorn's ``asgi`` worker parses headers
on its event loop; ``buffered`` then reads the body there too, within ``BODY_SECONDS`` and at
most one byte over the largest body any view accepts, and only a whole request reaches the
thread pool (``a2wsgi``) that runs the unchanged Flask app. A trickling client costs a coroutine
and a socket, never a thread. The buffering reverse proxy (deploy/nginx) still belongs in front.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

from a2wsgi import WSGIMiddleware

from fhirgen.config import Settings, load_settings
from webhooks.outcomes import FHIR_JSON, outcome_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The whole body must arrive within this: a notification is kilobytes, the largest accepted
# (8 MiB by default) takes under 30 s at 300 kB/s; gunicorn also drops a body idle for --timeout.
BODY_SECONDS = 60.0
THREADS = 4  # per worker process, as the threaded worker had


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The webhook (``webhooks.create_app``) for ``gunicorn -k asgi``."""
    from webhooks.app import create_app as create_wsgi_app

    settings = settings or load_settings()
    return buffered(create_wsgi_app(settings), limit=settings.max_notification_bytes)


def buffered(wsgi_app: Any, *, limit: int, threads: int = THREADS) -> ASGIApp:
    """``wsgi_app`` as an ASGI app that hands it only whole requests (see the module's doc).

    A body over ``limit`` is cut at ``limit + 1`` bytes and passed on with that length, so the
    view refuses it (413, as FHIR) as it always has; one not finished in ``BODY_SECONDS``
    is answered 408 and the connection closed."""
    # a2wsgi types ASGI messages as TypedDicts; gunicorn hands over plain mappings.
    threaded = cast(ASGIApp, WSGIMiddleware(wsgi_app, workers=threads))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # gunicorn runs with --asgi-lifespan off
            raise RuntimeError(f"unsupported ASGI scope {scope['type']!r}")
        try:
            body = await asyncio.wait_for(_read_body(receive, limit + 1), BODY_SECONDS)
        except TimeoutError:
            await _answer_timeout(send)
            return
        if body is None:  # the client left
            return
        await threaded(_with_length(scope, len(body)), _replay(body, receive), send)

    return app


async def _read_body(receive: Receive, most: int) -> bytes | None:
    """The request's body, up to ``most`` bytes; None when the client disconnects first."""
    chunks: list[bytes] = []
    size = 0
    while size < most:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)[:most]


def _with_length(scope: Scope, length: int) -> Scope:
    """The scope as if the body had come with a Content-Length (and no chunked encoding)."""
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    if length or scope["method"] not in ("GET", "HEAD"):
        headers.append((b"content-length", str(length).encode()))
    return {**scope, "headers": headers}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` once, then waits on the connection (for a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer_timeout(send: Send) -> None:
    body = outcome_body("timeout", f"request body not received within {BODY_SECONDS:.0f} s")
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", FHIR_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
