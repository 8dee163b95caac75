"""A small OpenAI-compatible Chat Completions server for tests, driven by a script.

``OpenAIServer`` runs a stdlib ``ThreadingHTTPServer`` on a free loopback port (HTTP/1.1,
keep-alive) and serves ``POST /v1/chat/completions`` (JSON, or Server-Sent Events when the
request says ``stream: true``, with usage in a last chunk when ``stream_options.include_usage``)
and ``GET /v1/models``. Each request takes the first queued ``Behaviour`` whose ``when`` text is
in its user message; with none queued it answers ``cite()``: a JSON answer with one sentence per
``- [fact-id] text`` line of the prompt, citing that fact.

Every request is recorded (headers, JSON body, arrival time), and the server counts the most
requests it held at once. ``reject_formats`` names response_format types it refuses with 400.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "test-model"
FINGERPRINT = "fp-test-1"
_FACT_LINE = re.compile(r"^- \[([^\]]+)\] (.*)$", re.MULTILINE)
INVENTED = "Start warfarin 10 mg daily."


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request."""

    kind: str  # cite | invent | status | malformed | content
    when: str | None = None  # only a request whose user message contains this text
    delay: float = 0.0  # seconds before answering (the client may time out first)
    status: int = 200
    retry_after: str | None = None
    message: str = ""
    body: bytes = b""  # malformed: the raw body sent
    content: str = ""  # content: the message content sent as is


def cite(*, when: str | None = None, delay: float = 0.0) -> Behaviour:
    """A JSON answer: one sentence per fact in the prompt, citing it."""
    return Behaviour("cite", when=when, delay=delay)


def invent(*, when: str | None = None) -> Behaviour:
    """Like ``cite``, plus ``INVENTED`` citing the prompt's first fact."""
    return Behaviour("invent", when=when)


def error(
    status: int, *, retry_after: str | None = None, message: str = "", when: str | None = None
) -> Behaviour:
    """An OpenAI-style error body with this status (and Retry-After when given)."""
    return Behaviour(
        "status", when=when, status=status, retry_after=retry_after, message=message or "error"
    )


def delay(seconds: float, *, when: str | None = None) -> Behaviour:
    """``cite``, after ``seconds``."""
    return Behaviour("cite", when=when, delay=seconds)


def malformed(body: bytes = b'{"choices": [{"message": {"content": ', *, when: str | None = None):
    """A 200 whose body is not the protocol's answer (broken JSON by default)."""
    return Behaviour("malformed", when=when, body=body)


def content(text: str, *, when: str | None = None) -> Behaviour:
    """A well-formed answer whose message content is ``text``."""
    return Behaviour("content", when=when, content=text)


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival

    @property
    def user(self) -> str:
        return next(
            (m["content"] for m in self.body.get("messages", []) if m["role"] == "user"), ""
        )


def facts_in(prompt: str) -> list[tuple[str, str]]:
    """``(fact id, text)`` of each ``- [id] text`` line of a prompt."""
    return [(m.group(1), json.loads(f'"{m.group(2)}"')) for m in _FACT_LINE.finditer(prompt)]


def cited_sentence(text: str) -> str:
    """The sentence ``cite()`` writes for a fact's text."""
    return f"Chart review: {text.rstrip('.')}."


def answer_for(kind: str, prompt: str) -> str:
    facts = facts_in(prompt)
    sentences = [{"text": cited_sentence(text), "cites": [fid]} for fid, text in facts]
    if kind == "invent" and facts:
        sentences.append({"text": INVENTED, "cites": [facts[0][0]]})
    return json.dumps({"sentences": sentences})


@dataclass
class _State:
    script: list[Behaviour] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    reject_formats: set[str] = field(default_factory=set)
    reject_status: int = 400


class OpenAIServer:
    """The server; use as a context manager (``with OpenAIServer() as server``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self.stopping = threading.Event()
        self._httpd = _Quiet(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- script and records ----------------------------------------------------------------

    def queue(self, *behaviours: Behaviour) -> None:
        """Append behaviours to the script."""
        with self._lock:
            self._state.script.extend(behaviours)

    def reject(self, *formats: str, status: int = 400) -> None:
        """Refuse requests whose response_format type is one of ``formats`` with ``status``
        (llama-cpp-python's server says 500, with a pydantic message naming the field)."""
        with self._lock:
            self._state.reject_formats = set(formats)
            self._state.reject_status = status

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._state.requests)

    @property
    def completions(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def max_concurrent(self) -> int:
        with self._lock:
            return self._state.max_active

    @property
    def pending(self) -> list[Behaviour]:
        with self._lock:
            return list(self._state.script)

    # -- used by the handler ---------------------------------------------------------------

    def _arrive(self, request: Request) -> tuple[Behaviour, bool]:
        with self._lock:
            state = self._state
            state.requests.append(request)
            state.active += 1
            state.max_active = max(state.max_active, state.active)
            fmt = (request.body.get("response_format") or {}).get("type")
            if fmt in state.reject_formats:
                return Behaviour("status", status=state.reject_status), True
            for index, behaviour in enumerate(state.script):
                if behaviour.when is None or behaviour.when in request.user:
                    return state.script.pop(index), False
            return cite(), False

    def _leave(self) -> None:
        with self._lock:
            self._state.active -= 1


class _Quiet(ThreadingHTTPServer):
    """Clients that hang up (a timed-out request, a closed pool) are not errors here."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            else:
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._json(400, {"error": {"message": "body is not JSON", "type": "bad_request"}})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = Request(self.path, headers, body, time.monotonic())
            behaviour, rejected = server._arrive(request)
            try:
                self._answer(request, behaviour, rejected)
            except OSError:
                self.close_connection = True  # the client gave up (timeout): nothing to do
            finally:
                server._leave()

        def _answer(self, request: Request, behaviour: Behaviour, rejected: bool) -> None:
            if rejected:
                fmt = request.body["response_format"]["type"]
                if behaviour.status == 400:  # OpenAI / vLLM style
                    payload = {
                        "message": f"response_format type {fmt!r} is not supported",
                        "type": "invalid_request_error",
                        "param": "response_format",
                    }
                else:  # llama-cpp-python's server: a pydantic error, answered 500
                    payload = {
                        "message": "1 validation error: {'type': 'literal_error', 'loc': "
                        f"('body', 'response_format', 'type'), 'input': {fmt!r}}}",
                        "type": "internal_server_error",
                    }
                self._json(behaviour.status, {"error": payload})
                return
            if behaviour.delay and server.stopping.wait(behaviour.delay):
                return
            if behaviour.kind == "status":
                headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
                payload = {"error": {"message": behaviour.message, "type": "server_error"}}
                self._json(behaviour.status, payload, headers)
                return
            if behaviour.kind == "malformed":
                self._send(200, behaviour.body, "application/json")
                return
            text = (
                behaviour.content
                if behaviour.kind == "content"
                else answer_for(behaviour.kind, request.user)
            )
            usage = {
                "prompt_tokens": len(request.user.split()),
                "completion_tokens": len(text.split()),
                "total_tokens": len(request.user.split()) + len(text.split()),
            }
            if request.body.get("stream"):
                include = (request.body.get("stream_options") or {}).get("include_usage")
                self._stream(text, usage if include else None)
                return
            self._json(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": MODEL,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )

        def _stream(self, text: str, usage: dict[str, int] | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in _events(text, usage):
                data = f"data: {event}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json", headers)

        def _send(
            self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

    return Handler


def _events(text: str, usage: dict[str, int] | None) -> Iterator[str]:
    """The SSE data of a streamed answer: role, content in small pieces, finish, usage, DONE."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else []
        return json.dumps(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": MODEL,
                "system_fingerprint": FINGERPRINT,
                "choices": choices,
                **extra,
            }
        )

    yield chunk({"role": "assistant", "content": ""})
    for start in range(0, len(text), 7):
        yield chunk({"content": text[start : start + 7]})
    yield chunk({}, "stop")
    if usage is not None:
        yield chunk({}, None, usage=usage)
    yield "[DONE]"
