"""The ``openai`` backend: any OpenAI-compatible Chat Completions server (vLLM, TGI, llama.cpp).

One prompt is one ``POST {base_url}/chat/completions``; up to ``concurrency`` of them are in
flight at once over one pooled ``httpx.Client``, and the answers come back in prompt order.
With ``json_schema`` the request asks for output constrained to the sentences schema; a server
that refuses ``response_format`` (400 or 422; llama-cpp-python's server says 500) gets a plainer
request (``json_object``, then none), and that fallback is remembered for the generator's
lifetime.

Failures speak fhirgen's error tree: timeouts, connection errors, 408, 429 (after its
``Retry-After``) and 5xx are retried with exponential backoff and jitter, then raise
``TransientError``; any other 4xx raises ``PermanentError`` naming the status and the server's
trimmed message, with anything that quotes the prompt or looks like a key withheld. An answer
without content is not an error: its text is empty, and the verifier writes that section from
its template. Prompts, answers and keys are never logged.

Why not the ``openai`` SDK (measured with openai 3.57, issue 15 point 4): it keeps the injectable
transport (it accepts an ``httpx.Client``), but not what the tests check of its retries: it
retries every 500 (llama-cpp-python's refusal of ``response_format`` must fall back at once),
sleeps between attempts where a failed batch cannot stop it, starts backoff at a fixed 0.5 s, and
gives no ``Retry-After`` over two minutes back for the task's own retry. Run with
``max_retries=0``, it would replace only the answer and stream parsing (``_read_json`` to
``_count``, about 80 of these lines) and need its errors translated and its plain-text answers
handled instead; its status errors quote the server's body (keys, the prompt) in their message,
so our trimming stays. It costs a 16 MB wheel of 2,077 modules plus jiter, sniffio and a second
HTTP stack (httpx2, httpcore2, truststore) in the images, ``import openai`` takes about 545 ms
here against 120 ms for ``httpx``, and it sends the OS, CPU and Python version to the server
(``X-Stainless-*`` headers). So the client stays ours.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

import httpx

from fhirgen.drafting.generation.model import Completion, ModelBackend
from fhirgen.drafting.generation.prompts import SCHEMA, Prompt
from fhirgen.errors import ConfigError, PermanentError, TransientError
from fhirgen.fhir.client import retry_after_seconds

log = logging.getLogger(__name__)

# response_format modes, from most to least constrained.
_FORMATS = ("json_schema", "json_object", "none")
_MESSAGE_LIMIT = 200
_QUOTE_WINDOW = 16  # a server message sharing this many characters with the prompt quotes it
_MAX_BACKOFF = 30.0
_MAX_RETRY_AFTER = 120.0  # a longer Retry-After is handed to the caller's retry, not slept here
_KEYLIKE = re.compile(r"(?i)\b(?:sk|key|token|bearer)[-_: ]+[A-Za-z0-9_\-.*]{4,}")
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "grammar", "guided")


class _Retry(Exception):
    """One attempt failed in a way that a later attempt may not (internal)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _RejectedFormat(Exception):
    """The server refused the response_format we sent (internal)."""


class _Aborted(Exception):
    """Another prompt of the batch failed for good; stop this one (internal)."""


class OpenAIGenerator(ModelBackend):
    """Drafts through an OpenAI-compatible Chat Completions endpoint."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 4,
        timeout: float = 120.0,
        max_tokens: int = 384,
        temperature: float = 0.0,
        seed: int | None = None,
        json_schema: bool = True,
        stream: bool = False,
        max_retries: int = 4,
        retry_backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base_url = (base_url or "").strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                "the openai backend needs an http(s) base URL, e.g. http://vllm:8000/v1"
            )
        if not model:
            raise ConfigError("the openai backend needs the model's name on the server")
        if concurrency < 1 or timeout <= 0 or max_tokens < 1 or max_retries < 0:
            raise ConfigError(
                "openai backend: concurrency and max_tokens must be at least 1, timeout above 0 "
                "and max_retries at least 0"
            )
        self.base_url = base_url
        self.model = model
        self.version = ""
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.stream = stream
        self.max_retries = max_retries
        self.retry_backoff = max(0.0, retry_backoff)
        self._api_key = api_key or None
        self._format = _FORMATS[0] if json_schema else _FORMATS[2]
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        headers = {"Accept": "application/json", "User-Agent": "fhirgen-openai"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers=headers,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Any) -> OpenAIGenerator:
        """Built from ``FHIRGEN_OPENAI_*`` (and the shared generation settings)."""
        base_url = getattr(settings, "openai_base_url", None)
        model = getattr(settings, "openai_model", None)
        if not base_url:
            raise ConfigError("the openai backend needs FHIRGEN_OPENAI_BASE_URL")
        if not model:
            raise ConfigError("the openai backend needs FHIRGEN_OPENAI_MODEL")
        key = getattr(settings, "openai_api_key", None)
        if key is not None and hasattr(key, "get_secret_value"):
            key = key.get_secret_value()
        return cls(
            base_url,
            model,
            api_key=key or None,
            concurrency=getattr(settings, "openai_concurrency", 4),
            timeout=getattr(settings, "openai_timeout", 120.0),
            max_tokens=getattr(settings, "max_new_tokens", 384),
            temperature=getattr(settings, "temperature", 0.0),
            seed=getattr(settings, "seed", None),
            json_schema=getattr(settings, "openai_json_schema", True),
            stream=getattr(settings, "openai_stream", False),
            max_retries=getattr(settings, "openai_max_retries", 4),
        )

    @property
    def response_format(self) -> str:
        """The response_format mode requests use now: json_schema, json_object or none."""
        return self._format

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> OpenAIGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIGenerator({self.base_url!r}, {self.model!r})"

    # -- completion ----------------------------------------------------------------------------

    def complete_many(self, prompts: Sequence[Prompt]) -> list[Completion]:
        """One completion per prompt, in order; at most ``concurrency`` requests in flight.

        The first prompt that fails for good fails the batch: the others stop at their next
        attempt or backoff, and its error is raised.
        """
        if not prompts:
            return []
        batch_size = min(self.concurrency, len(prompts))
        abort = threading.Event()
        if batch_size == 1:
            return [self._complete(p, batch_size, abort) for p in prompts]
        pool = ThreadPoolExecutor(max_workers=batch_size, thread_name_prefix="fhirgen-openai")
        try:
            futures = [pool.submit(self._complete_or_abort, p, batch_size, abort) for p in prompts]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f.done() and not f.cancelled() and f.exception()]
            if failed:
                abort.set()
                pool.shutdown(wait=True, cancel_futures=True)
                errors = [e for e in (f.exception() for f in failed) if e is not None]
                raise next((e for e in errors if not isinstance(e, _Aborted)), errors[0])
            return [f.result() for f in futures]
        except BaseException:
            abort.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _complete_or_abort(
        self, prompt: Prompt, batch_size: int, abort: threading.Event
    ) -> Completion:
        try:
            return self._complete(prompt, batch_size, abort)
        except _Aborted:
            raise
        except BaseException:
            abort.set()  # before this worker thread takes the next prompt
            raise

    def _complete(self, prompt: Prompt, batch_size: int, abort: threading.Event) -> Completion:
        started = time.perf_counter()
        failures = 0
        while True:
            if abort.is_set():
                raise _Aborted("batch aborted")
            mode = self._format
            try:
                with self._slots:
                    text, usage = self._attempt(prompt, mode)
            except _RejectedFormat:
                self._fall_back(mode)
                continue
            except _Retry as exc:
                failures += 1
                if failures > self.max_retries or (
                    exc.retry_after is not None and exc.retry_after > _MAX_RETRY_AFTER
                ):
                    raise TransientError(
                        f"{exc} (gave up after {failures} attempt(s))",
                        retry_after=exc.retry_after,
                    ) from None
                delay = self._backoff(failures, exc.retry_after)
                log.warning(
                    "openai: %s; retry %d/%d in %.2f s", exc, failures, self.max_retries, delay
                )
                if abort.wait(delay):
                    raise _Aborted("batch aborted") from None
                continue
            return Completion(
                text=text,
                prompt_tokens=usage[0],
                output_tokens=usage[1],
                seconds=time.perf_counter() - started,
                batch_size=batch_size,
            )

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        base = min(_MAX_BACKOFF, self.retry_backoff * 2 ** (failures - 1))
        delay = base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography
        return max(delay, retry_after or 0.0)

    def _fall_back(self, rejected: str) -> None:
        with self._lock:
            if self._format != rejected:
                return  # another request already fell back
            self._format = _FORMATS[_FORMATS.index(rejected) + 1]
            log.warning(
                "openai: the server rejected response_format %s; using %s from now on",
                rejected,
                self._format,
            )

    def _body(self, prompt: Prompt, mode: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": prompt.messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "sentences", "schema": SCHEMA, "strict": True},
            }
        elif mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _attempt(self, prompt: Prompt, mode: str) -> tuple[str, tuple[int, int]]:
        """One request: (text, (prompt tokens, output tokens)), or an internal exception."""
        url = f"{self.base_url}/chat/completions"
        body = self._body(prompt, mode)
        started = time.monotonic()
        try:
            accept = {"Accept": "text/event-stream"} if self.stream else None
            with self._http.stream("POST", url, json=body, headers=accept) as response:
                if not response.is_success:
                    response.read()
                    self._raise_for(response, prompt, mode)
                kind = response.headers.get("content-type", "")
                if self.stream and "text/event-stream" in kind:
                    text, usage, meta = _read_events(response, started + self.timeout)
                else:
                    text, usage, meta = _read_json(response.read())
        except httpx.TimeoutException as exc:
            raise _Retry(f"POST chat/completions timed out ({type(exc).__name__})") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentError(f"POST chat/completions: bad URL ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retry(f"POST chat/completions failed ({type(exc).__name__})") from None
        log.debug(
            "openai: POST chat/completions -> %s in %.0f ms",
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        fingerprint = meta.get("system_fingerprint")
        if not self.version and isinstance(fingerprint, str) and fingerprint:
            with self._lock:
                self.version = self.version or fingerprint[:64]
        return text, usage

    def _raise_for(self, response: httpx.Response, prompt: Prompt, mode: str) -> None:
        status = response.status_code
        error = _error_of(response.content)
        # llama-cpp-python's server answers 500 to a response_format type it does not know.
        if status in (400, 422, 500) and mode != "none" and _about_format(error):
            raise _RejectedFormat
        message = f"POST chat/completions answered {status}"
        detail = self._safe_detail(error, prompt)
        if detail:
            message += f": {detail}"
        if status in (408, 429) or status >= 500:
            raise _Retry(message, retry_after_seconds(response.headers.get("Retry-After")))
        raise PermanentError(message)

    def _safe_detail(self, error: Mapping[str, Any], prompt: Prompt) -> str:
        """The server's error message, one line, trimmed, with quotes of the prompt and anything
        key-like withheld."""
        text = error.get("message")
        if not isinstance(text, str):
            return ""
        text = " ".join(text.split())[:_MESSAGE_LIMIT]
        if self._api_key:
            text = text.replace(self._api_key, "[key]")
        text = _KEYLIKE.sub("[key]", text)
        chart = "\n".join(m["content"] for m in prompt.messages)
        flat = " ".join(chart.split())
        if any(
            text[i : i + _QUOTE_WINDOW] in chart or text[i : i + _QUOTE_WINDOW] in flat
            for i in range(max(0, len(text) - _QUOTE_WINDOW + 1))
        ):
            return "(message withheld: it quotes the prompt)"
        return text


def _error_of(content: bytes) -> dict[str, Any]:
    """``{"message", "param", "type"}`` from an OpenAI-style (or vLLM/TGI-style) error body."""
    try:
        data = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    error = data.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str):  # TGI: {"error": "...", "error_type": "..."}
        return {"message": error, "type": data.get("error_type")}
    for key in ("message", "detail"):
        if isinstance(data.get(key), str):
            return {"message": data[key]}
    return {}


def _about_format(error: Mapping[str, Any]) -> bool:
    """Whether an error is the server refusing response_format (the one place where we must read
    what the error says: the status alone cannot tell it from other bad requests)."""
    if error.get("param") == "response_format":
        return True
    text = str(error.get("message") or "").lower()
    return any(word in text for word in _FORMAT_WORDS)


def _read_json(content: bytes) -> tuple[str, tuple[int, int], dict[str, Any]]:
    """Text, usage and metadata of a non-streamed answer; malformed answers give empty text."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        log.warning("openai: the answer is not JSON; the section falls back to its template")
        return "", (0, 0), {}
    if not isinstance(data, dict):
        return "", (0, 0), {}
    text = ""
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            text = message["content"]
    if not text:
        log.warning("openai: the answer has no content; the section falls back to its template")
    return text, _usage(data.get("usage")), data


def _read_events(
    response: httpx.Response, deadline: float
) -> tuple[str, tuple[int, int], dict[str, Any]]:
    """Accumulate a streamed answer (Server-Sent Events) until ``data: [DONE]`` or the end."""
    parts: list[str] = []
    usage = (0, 0)
    meta: dict[str, Any] = {}
    for payload in _events(response.iter_lines()):
        if time.monotonic() > deadline:
            raise _Retry("POST chat/completions: the stream outlasted the request timeout")
        if payload == "[DONE]":
            break
        try:
            chunk = json.loads(payload)
        except ValueError:
            continue  # a garbled chunk: the parser copes with what the others hold
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            raise _Retry("the server reported an error mid-stream")
        if not meta and isinstance(chunk.get("system_fingerprint"), str):
            meta = {"system_fingerprint": chunk["system_fingerprint"]}
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            delta = choices[0].get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                parts.append(delta["content"])
        if isinstance(chunk.get("usage"), dict):
            usage = _usage(chunk["usage"])
    return "".join(parts), usage, meta


def _events(lines: Iterator[str]) -> Iterator[str]:
    """The data of each SSE event (its ``data:`` lines joined), skipping comments and fields
    other than data."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _usage(value: Any) -> tuple[int, int]:
    if not isinstance(value, dict):
        return 0, 0
    return _count(value.get("prompt_tokens")), _count(value.get("completion_tokens"))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
