"""JSON-constrained decoding: the automaton on strings, its token tables, and real generation.

The tiny random-weight model (``tests/model_fixtures.py``) writes garbage when unconstrained;
constrained, whatever it writes must continue ``RESPONSE_PREFIX`` as sentence objects citing
only the facts of its own prompt.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fhirgen.drafting.generation.constrained import (
    END,
    MAX_TEXT_CHARS,
    START,
    CiteIds,
    accepts,
    advance,
)
from fhirgen.drafting.generation.parsing import parse_sentences
from fhirgen.drafting.generation.prompts import RESPONSE_PREFIX, SYSTEM, Prompt
from tests.model_fixtures import ROOT, build_tiny_model

IDS = ("dx-1", "dx-12", "lab-3")


def item(text: str, *cites: str) -> str:
    return json.dumps({"text": text, "cites": list(cites)})


# -- the automaton on strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        item("Admitted with pneumonia.", "dx-1") + "]}",
        item("One.", "dx-12", "lab-3") + ", " + item("Two, uncited.") + "]}",
        item('Quotes "x", a backslash \\, a slash / and a tab\t.', "dx-1") + "]}",
        '{"text": "Caf\\u00e9 \\n \\/", "cites": []}]}',
        item("Non-ASCII: café ≥ 5 mg.", "lab-3") + "]}",
        "]}",  # nothing to say: the section falls back to its template
    ],
)
def test_valid_answers_are_accepted_whole_and_at_every_prefix(answer):
    assert json.loads(RESPONSE_PREFIX + answer)  # the cases themselves are valid JSON
    assert accepts(answer, IDS)
    for cut in range(len(answer)):
        assert accepts(answer[:cut], IDS, complete=False), answer[:cut]
        assert not accepts(answer[:cut], IDS), answer[:cut]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (item("Hi.", "dx-2") + "]}", "an id outside the prompt"),
        (item("Hi.", "dx") + "]}", "a prefix of an id"),
        (item("Hi.", "dx-123") + "]}", "an id extended past its end"),
        (item("", "dx-1") + "]}", "an empty text"),
        ('{"text": "a\nb", "cites": []}]}', "a raw control character"),
        ('{"text": "a\\x", "cites": []}]}', "an unknown escape"),
        ('{"text": "\\u00g0", "cites": []}]}', "a bad unicode escape"),
        ('{"text":"a", "cites": []}]}', "missing whitespace"),
        ('{"text": "a",  "cites": []}]}', "extra whitespace"),
        ('{"text": "a", "cites": [], "extra": 1}]}', "another key"),
        ('{"cites": [], "text": "a"}]}', "keys in another order"),
        ("{'text': 'a', 'cites': []}]}", "single quotes"),
        (item("a") + "]} ", "text after the object"),
        (item("a") + ",\n" + item("b") + "]}", "a newline between items"),
        ('{"text": "a", "cites": ["dx-1",]}]}', "a trailing comma"),
    ],
)
def test_invalid_answers_are_rejected(answer, why):
    assert not accepts(answer, IDS, complete=False), why


def test_each_prompt_cites_only_its_own_ids():
    answer = item("Hi.", "lab-3") + "]}"
    assert accepts(answer, IDS)
    assert not accepts(answer, ("dx-1",))
    assert accepts(item("Hi.") + "]}", ())  # no facts: only empty cites
    assert not accepts('{"text": "Hi.", "cites": ["', (), complete=False)
    # An id JSON would have to escape can never be cited.
    assert CiteIds.of(['a"b', "c\\d", "ok", ""]).ids == {"ok"}


def test_the_text_is_capped_escapes_included():
    limit = 10
    assert accepts(item("a" * limit) + "]}", IDS, limit=limit)
    assert not accepts(item("a" * (limit + 1)) + "]}", IDS, limit=limit)
    at_cap = '{"text": "' + "a" * limit
    assert advance(START, at_cap, CiteIds.of(IDS), limit) is not None
    assert advance(START, at_cap + "a", CiteIds.of(IDS), limit) is None
    # An escape must fit whole: \n needs 2 characters, \uXXXX 6.
    assert accepts('{"text": "' + "a" * (limit - 2) + '\\n", "cites": []}]}', IDS, limit=limit)
    assert not accepts('{"text": "' + "a" * (limit - 1) + "\\", IDS, complete=False, limit=limit)
    assert accepts('{"text": "' + "a" * (limit - 6) + "\\u00e9", IDS, complete=False, limit=limit)
    assert not accepts('{"text": "' + "a" * (limit - 5) + "\\u", IDS, complete=False, limit=limit)
    assert MAX_TEXT_CHARS == 400


def test_fhirgen_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import fhirgen.drafting.generation.constrained, fhirgen.drafting.generation.transformers_backend\n"
        "from fhirgen.drafting.generation.constrained import accepts\n"
        "assert accepts(']}', ())\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# -- tokens --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch", reason="the transformers extra is not installed")
    pytest.importorskip("transformers", reason="the transformers extra is not installed")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(torch, tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny, local_files_only=True)


def test_token_strings_are_the_text_tokens_add(tokenizer):
    from fhirgen.drafting.generation.constrained import token_strings

    strings = token_strings(tokenizer, len(tokenizer) + 5, excluded=[tokenizer.eos_token_id])
    assert len(strings) == len(tokenizer) + 5 and strings[-1] is None  # past the tokenizer
    for special in tokenizer.all_special_ids:
        assert strings[special] is None
    text = '{"text": "The patient was admitted with pneumonia.", "cites": ["dx-1"]}'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert any(tokenizer.convert_ids_to_tokens(i).startswith("Ġ") for i in ids)
    assert "".join(strings[i] for i in ids) == text  # leading-space markers are real spaces
    # Part of a UTF-8 character decodes to U+FFFD: allowed inside a text, nowhere else.
    partial = tokenizer("é", add_special_tokens=False)["input_ids"]
    assert len(partial) == 2 and all(strings[i] == "\ufffd" for i in partial)


def masks(tokenizer, rows, states, *, limit=MAX_TEXT_CHARS):
    """Which tokens the processor allows, for rows set to ``states``."""
    import torch

    from fhirgen.drafting.generation.constrained import json_constraint

    processor = json_constraint(tokenizer, [tokenizer.eos_token_id], rows, max_text_chars=limit)
    prompt = torch.zeros((len(rows), 3), dtype=torch.long)
    processor(prompt, torch.zeros((len(rows), len(tokenizer))))  # the first call: the prompt
    processor.states = list(states)
    scores = processor(prompt, torch.zeros((len(rows), len(tokenizer))))
    allowed = [set(torch.nonzero(row > float("-inf")).flatten().tolist()) for row in scores]
    return processor, allowed


def test_masks_match_the_automaton_token_by_token(tokenizer):
    """The indexed and vectorized masks allow exactly the tokens the automaton accepts."""
    from fhirgen.drafting.generation.constrained import token_strings

    strings = token_strings(tokenizer, len(tokenizer), [tokenizer.eos_token_id])
    cites = ("dx-1", "dx-12", "lab-3")
    states = [
        START,
        ("L", 0, 9),  # before the quote opening a text
        ("T", 0, 0),  # an empty text: it cannot close yet
        ("T", 5, 0),
        ("T", 18, 0),  # close to the limit below
        ("T", 4, 5),  # after a backslash
        ("T", 6, 2),  # two hex digits still due
        ("L", 3, 1),  # after the text's closing quote
        ("C", 2),  # the cites list just opened
        ("I", "dx-1"),  # an id complete, and the prefix of another
        ("C", 1),  # after an item
        END,
    ]
    limit = 20
    _, allowed = masks(tokenizer, [cites] * len(states), states, limit=limit)
    ids = CiteIds.of(cites)
    for state, found in zip(states, allowed, strict=True):
        expected = {
            t for t, s in enumerate(strings) if s and advance(state, s, ids, limit) is not None
        }
        if state == END:
            expected = {tokenizer.eos_token_id}
        assert found == expected, state
        assert found, state
    assert any('"' in strings[t] for t in allowed[3])  # closing tokens are among them


def test_a_row_with_no_allowed_token_may_only_stop(tokenizer):
    # No token holds a whole "é" (its bytes decode to U+FFFD), so this id cannot be finished.
    processor, allowed = masks(tokenizer, [("dx-é",), IDS], [("I", "dx-"), ("I", "dx-")])
    assert allowed[0] == {tokenizer.eos_token_id}
    assert processor.fallbacks == 1
    assert tokenizer.eos_token_id not in allowed[1]


# -- generation ----------------------------------------------------------------------------------

FACT_IDS = (
    ("dx-1", "lab-2"),
    ("med-33",),
    (),
    ("stay-aaa524e9", "rsn-9f3f6b27", "dx-f48a10d5"),
    ("fu-7", "alg-a73dc329"),
)


def prompts() -> list[Prompt]:
    """Prompts of very different lengths, each with its own facts."""
    words = "The patient was admitted with pneumonia and improved on ceftriaxone.".split()
    lengths = (5, 300, 40, 120, 1)
    return [
        Prompt((i, "s"), SYSTEM, " ".join(words[j % len(words)] for j in range(n)), ids)
        for i, (n, ids) in enumerate(zip(lengths, FACT_IDS, strict=True))
    ]


def generate(tiny, *, max_new_tokens, temperature=0.0, seed=0, limit=24):
    from fhirgen.drafting.generation.transformers_backend import TransformersGenerator

    generator = TransformersGenerator(
        tiny,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        batch_size=8,
        constrained=True,
    )
    generator.max_text_chars = limit
    return generator.complete_many(prompts())


@pytest.mark.parametrize(
    ("temperature", "seed"), [(0.0, 0), (1.0, 1), (0.7, 3)], ids=["greedy", "t1", "t07"]
)
def test_constrained_answers_are_json_citing_only_their_prompts_facts(tiny, temperature, seed):
    completions = generate(tiny, max_new_tokens=64, temperature=temperature, seed=seed)
    items = 0
    for prompt, completion in zip(prompts(), completions, strict=True):
        assert accepts(completion.text, prompt.fact_ids, complete=False, limit=24), completion
        if completion.output_tokens == 64 and not accepts(completion.text, prompt.fact_ids):
            continue  # cut by max_new_tokens: a prefix (the parser keeps its whole items)
        answer = json.loads(RESPONSE_PREFIX + completion.text)
        assert list(answer) == ["sentences"]
        for sentence in answer["sentences"]:
            assert list(sentence) == ["text", "cites"]
            assert 0 < len(sentence["text"]) <= 24
            assert set(sentence["cites"]) <= set(prompt.fact_ids)
            items += 1
        assert parse_sentences(completion.text, prefix=RESPONSE_PREFIX).problem == ""
    assert items, "the tiny model wrote no item at all: the test proves little"


def test_the_random_model_writes_cited_items_somewhere(tiny):
    """Over greedy and sampling, the constraint does let a model cite its facts."""
    cited = set()
    for temperature, seed in [(0.0, 0), (0.7, 3)]:
        completions = generate(tiny, max_new_tokens=64, temperature=temperature, seed=seed)
        for prompt, completion in zip(prompts(), completions, strict=True):
            parsed = parse_sentences(completion.text, prefix=RESPONSE_PREFIX)
            for sentence in parsed.sentences:
                assert set(sentence.cites) <= set(prompt.fact_ids)
                cited.update(sentence.cites)
    assert cited


def test_a_truncated_answer_is_a_prefix_of_the_shape(tiny):
    completions = generate(tiny, max_new_tokens=6, temperature=1.0, seed=1)
    cut = 0
    for prompt, completion in zip(prompts(), completions, strict=True):
        assert accepts(completion.text, prompt.fact_ids, complete=False, limit=24)
        if not accepts(completion.text, prompt.fact_ids):
            cut += 1
            assert completion.output_tokens == 6
            parse_sentences(completion.text, prefix=RESPONSE_PREFIX)  # never raises
    assert cut


def test_sampling_stays_seeded_under_the_constraint(tiny):
    first = [c.text for c in generate(tiny, max_new_tokens=24, temperature=1.0, seed=5)]
    assert [c.text for c in generate(tiny, max_new_tokens=24, temperature=1.0, seed=5)] == first


def test_the_setting_turns_it_on_by_default(tiny, monkeypatch):
    from fhirgen.config import load_settings
    from fhirgen.drafting.generation.transformers_backend import TransformersGenerator

    for name in ("FHIRGEN_MODEL_CONSTRAINED", "FHIRGEN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(backend="transformers", model_path=tiny)
    assert settings.model_constrained is True
    assert TransformersGenerator.from_settings(settings).constrained is True
    monkeypatch.setenv("FHIRGEN_MODEL_CONSTRAINED", "false")
    settings = load_settings(backend="transformers", model_path=tiny)
    assert TransformersGenerator.from_settings(settings).constrained is False
