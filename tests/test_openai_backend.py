"""The openai backend over real HTTP, against the scripted server in ``tests/openai_server.py``.

The pipeline drafts a stay through an ``OpenAIGenerator``; the server answers with sentences
citing the prompt's facts (and, when told, an invented drug, errors, delays, broken answers).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fhirgen.clinical.facts import extract_facts
from fhirgen.clinical.stay import build_context
from fhirgen.config import load_settings
from fhirgen.drafting.documents import care_plan, discharge_summary, patient_instructions
from fhirgen.drafting.generation import get_generator
from fhirgen.drafting.generation.openai_backend import OpenAIGenerator
from fhirgen.drafting.generation.parsing import parse_sentences
from fhirgen.drafting.generation.prompts import SCHEMA, draft_prompts
from fhirgen.drafting.pipeline import KINDS, StayDraft, draft_stay
from fhirgen.errors import ConfigError, PermanentError, TransientError
from fhirgen.fhir.record import PatientRecord
from fhirgen.fhir.validation import written_bundle_errors
from tests.openai_server import (
    FINGERPRINT,
    INVENTED,
    MODEL,
    OpenAIServer,
    cited_sentence,
    delay,
    error,
    facts_in,
    invent,
    malformed,
)
from tests.records import small_stay

KEY = "sk-test-SECRET-0123456789"
REASON = "Section: Reason for admission."
INSTRUCTIONS = "Section: Your medicines."  # of the patient instructions


def prompts_of(record: PatientRecord) -> list:
    """Every prompt a stay's drafts make: one per model-written section, and one per problem
    of the hospital course."""
    facts = extract_facts(build_context(record, record.get("Encounter/e1")))
    return [p for kind in KINDS for p in draft_prompts(0, kind, facts)]


_SMALL_STAY = PatientRecord("p1", small_stay())
PROMPTS = len(prompts_of(_SMALL_STAY))
SUMMARY_PROMPTS = sum(
    1 for p in prompts_of(_SMALL_STAY) if "Document: Discharge summary." in p.user
)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def record() -> PatientRecord:
    return PatientRecord("p1", small_stay())


@pytest.fixture
def generator(server: OpenAIServer) -> Iterator[Callable[..., OpenAIGenerator]]:
    """Build generators pointed at the server (fast retries); all are closed afterwards."""
    made: list[OpenAIGenerator] = []

    def make(**options: Any) -> OpenAIGenerator:
        options = {"api_key": KEY, "timeout": 5.0, "retry_backoff": 0.01, **options}
        made.append(OpenAIGenerator(server.base_url, MODEL, **options))
        return made[-1]

    yield make
    for gen in made:
        gen.close()


def draft(record: PatientRecord, gen: OpenAIGenerator) -> StayDraft:
    return draft_stay(record, record.get("Encounter/e1"), gen, identifier_system="urn:test:draft")


def document_text(result: StayDraft, loinc: str = discharge_summary.LOINC_CODE) -> str:
    """The plain text of the discharge summary DocumentReference (or another type), decoded."""
    document = next(
        e["resource"]
        for e in result.bundle["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
        and e["resource"]["type"]["coding"][0]["code"] == loinc
    )
    return base64.b64decode(document["content"][0]["attachment"]["data"]).decode()


def sections(result: StayDraft) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    return {
        f"{kind}/{section.key}": [(s.text, s.cites) for s in section.sentences]
        for kind, d in result.drafts.items()
        for section in d.sections
    }


# -- end to end ---------------------------------------------------------------------------------


def test_a_stay_drafted_over_http_keeps_cited_sentences_and_drops_an_invented_drug(
    server, record, generator
):
    server.queue(invent(when=INSTRUCTIONS))
    gen = generator()
    result = draft(record, gen)

    assert written_bundle_errors(result.bundle) == []
    text = document_text(result)
    for prompt in prompts_of(record)[:SUMMARY_PROMPTS]:
        for _, fact_text in facts_in(prompt.user):
            assert cited_sentence(fact_text) in text, fact_text
    assert "Chart review: Reason for admission: Community-acquired pneumonia." in text
    assert "warfarin" not in text.lower()
    # The scripted model states the diagnosis in the reason for admission and again in its
    # course paragraph: the verifier keeps the first and drops the repeat.
    (repeat,) = result.reports[discharge_summary.KIND.key].dropped
    assert repeat.section == "hospital_course"
    assert repeat.text.startswith("Chart review: Community-acquired pneumonia")
    assert repeat.reason == "says again what the draft already said"
    instructions = document_text(result, patient_instructions.LOINC_CODE)
    assert "Chart review: New at discharge: Amoxicillin 500 mg oral capsule" in instructions
    assert "warfarin" not in instructions.lower()
    dropped = result.reports[patient_instructions.KIND.key].dropped
    invented = [d for d in dropped if d.text == INVENTED]
    assert [d.section for d in invented] == ["your_medicines"]
    assert "10" in invented[0].reason
    # Everything else dropped is a "nothing recorded" line the model said in two sections.
    assert {d.reason for d in dropped if d.text != INVENTED} <= {
        "says again what the draft already said"
    }

    plan = next(
        e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "CarePlan"
    )
    assert "Chart review:" in plan["text"]["div"]
    assert len(server.completions) == PROMPTS
    usage = result.drafts[discharge_summary.KIND.key].usage
    assert usage["prompts"] == SUMMARY_PROMPTS
    assert usage["prompt_tokens"] > 0 and usage["output_tokens"] > 0
    assert (gen.name, gen.model, gen.version) == ("openai", MODEL, FINGERPRINT)


def test_streamed_and_plain_answers_give_the_same_draft(server, record, generator):
    plain = draft(record, generator())
    streamed = draft(record, generator(stream=True))
    assert sections(streamed) == sections(plain)
    assert document_text(streamed) == document_text(plain)
    for kind in plain.drafts:
        for counter in ("prompt_tokens", "output_tokens"):
            assert streamed.drafts[kind].usage[counter] == plain.drafts[kind].usage[counter] > 0
    bodies = [r.body for r in server.completions]
    assert [b.get("stream") for b in bodies] == [None] * PROMPTS + [True] * PROMPTS
    assert bodies[-1]["stream_options"] == {"include_usage": True}


def test_concurrency_is_bounded_and_completions_come_back_in_order(server, record, generator):
    prompts = prompts_of(record)
    server.queue(delay(0.4, when=REASON), *[delay(0.1) for _ in prompts[1:]])
    gen = generator(concurrency=2)
    completions = gen.complete_many(prompts)
    assert server.max_concurrent == 2
    assert len(completions) == len(prompts)
    for prompt, completion in zip(prompts, completions, strict=True):
        cited = [c for s in parse_sentences(completion.text).sentences for c in s.cites]
        assert cited == [fid for fid, _ in facts_in(prompt.user)]
        assert completion.batch_size == 2
    assert completions[0].seconds >= 0.4


# -- failures -----------------------------------------------------------------------------------


def test_429_waits_for_retry_after_then_drafts(server, record, generator):
    server.queue(error(429, retry_after="1", when=REASON))
    result = draft(record, generator(concurrency=1))
    first, second = server.completions[:2]
    assert REASON in first.user and REASON in second.user
    assert second.at - first.at >= 0.99
    assert "Chart review: Reason for admission" in document_text(result)
    assert len(server.completions) == PROMPTS + 1


def test_500_twice_then_success(server, record, generator):
    server.queue(error(500, when=REASON), error(500, when=REASON))
    result = draft(record, generator())
    assert len(server.completions) == PROMPTS + 2
    assert "Chart review: Reason for admission" in document_text(result)
    assert not server.pending


def test_a_timeout_is_retried(server, record, generator):
    server.queue(delay(2.0, when=REASON))
    started = time.monotonic()
    result = draft(record, generator(timeout=0.3))
    assert time.monotonic() - started < 1.8
    assert len(server.completions) == PROMPTS + 1
    assert "Chart review: Reason for admission" in document_text(result)


def test_persistent_503_is_a_transient_error_after_max_retries(server, record, generator):
    server.queue(*[error(503, retry_after="0") for _ in range(10)])
    with pytest.raises(TransientError, match="answered 503"):
        draft(record, generator(concurrency=1, max_retries=2))
    assert len(server.completions) == 3


def test_a_failure_stops_the_rest_of_a_concurrent_batch(server, record, generator):
    prompts = prompts_of(record)
    server.queue(error(403, message="forbidden", when=REASON), *[delay(0.3) for _ in prompts])
    with pytest.raises(PermanentError, match="403"):
        generator(concurrency=4).complete_many(prompts)
    sent = [r.user for r in server.completions]
    assert 1 <= len(sent) <= 4
    # the prompts waiting for a slot when the 403 came were never sent
    assert not [u for u in sent if any(p.user == u for p in prompts[4:])]


def test_401_is_permanent_and_never_names_the_key(server, record, generator):
    server.queue(error(401, message=f"Incorrect API key provided: {KEY}."))
    with pytest.raises(PermanentError) as caught:
        draft(record, generator(concurrency=1))
    message = str(caught.value)
    assert "401" in message
    assert KEY not in message and "SECRET" not in message
    assert not isinstance(caught.value, TransientError)
    assert len(server.completions) == 1


def test_an_error_message_quoting_the_prompt_is_withheld(server, record, generator):
    server.queue(error(400, message="cannot parse: Community-acquired pneumonia (ICD-10-CM J18.9"))
    gen = generator(concurrency=1)
    with pytest.raises(PermanentError, match="answered 400") as caught:
        draft(record, gen)
    assert "pneumonia" not in str(caught.value)
    assert gen.response_format == "json_schema"  # not a response_format problem: no fallback


def test_malformed_answers_fall_back_to_the_template(server, record, generator):
    server.queue(
        malformed(when="Section: Condition and disposition"),
        malformed(b'{"id": "x", "choices": []}', when="Section: Goals."),
    )
    result = draft(record, generator())
    assert result.reports[discharge_summary.KIND.key].fallbacks == ("condition_at_discharge",)
    assert result.reports[care_plan.KIND.key].fallbacks == ("goals",)
    text = document_text(result)
    assert "Chart review: Discharge disposition" not in text
    assert "Chart review: Reason for admission" in text


# -- the request --------------------------------------------------------------------------------


def test_the_request_carries_model_schema_limits_and_key(server, record, generator):
    prompt = prompts_of(record)[0]
    gen = generator(max_tokens=123, temperature=0.2, seed=7)
    [completion] = gen.complete_many([prompt])
    [request] = server.completions
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.body
    assert body["model"] == MODEL
    assert body["messages"] == prompt.messages
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (123, 0.2, 7)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "sentences", "schema": SCHEMA, "strict": True},
    }
    assert "stream" not in body
    assert completion.batch_size == 1 and completion.prompt_tokens > 0


@pytest.mark.parametrize(
    ("rejected", "status", "fallback"),
    [
        (("json_schema",), 400, "json_object"),
        (("json_schema", "json_object"), 400, "none"),
        (("json_schema",), 500, "json_object"),  # as llama-cpp-python's server answers
    ],
)
def test_a_server_rejecting_response_format_gets_the_fallback(
    server, record, generator, rejected, status, fallback
):
    server.reject(*rejected, status=status)
    gen = generator(concurrency=1)
    result = draft(record, gen)
    assert gen.response_format == fallback
    formats = [(r.body.get("response_format") or {}).get("type") for r in server.completions]
    expected = None if fallback == "none" else fallback
    assert formats == [*rejected, *[expected] * PROMPTS]
    assert "Chart review: Reason for admission" in document_text(result)
    assert written_bundle_errors(result.bundle) == []


# -- settings -----------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("FHIRGEN_"):
            monkeypatch.delenv(name)


def test_get_generator_builds_it_from_settings(server, record, clean_env):
    settings = load_settings(
        openai_base_url=server.base_url,
        openai_model=MODEL,
        openai_api_key="k-from-settings",
        openai_concurrency=3,
        openai_timeout=9,
        openai_json_schema=False,
        max_new_tokens=111,
        temperature=0.5,
        seed=5,
    )
    gen = get_generator("openai", settings)
    try:
        assert isinstance(gen, OpenAIGenerator)
        assert (gen.model, gen.concurrency, gen.timeout, gen.response_format) == (
            MODEL,
            3,
            9.0,
            "none",
        )
        gen.complete_many(prompts_of(record)[:1])
    finally:
        gen.close()
    [request] = server.completions
    assert request.headers["authorization"] == "Bearer k-from-settings"
    assert (request.body["max_tokens"], request.body["temperature"], request.body["seed"]) == (
        111,
        0.5,
        5,
    )
    assert "response_format" not in request.body
    assert "k-from-settings" not in repr(gen)


@pytest.mark.parametrize(
    "options", [{}, {"openai_model": MODEL}, {"openai_base_url": "http://127.0.0.1:9/v1"}]
)
def test_get_generator_needs_a_base_url_and_a_model(clean_env, options):
    with pytest.raises(ConfigError, match="FHIRGEN_OPENAI_"):
        get_generator("openai", load_settings(**options))
