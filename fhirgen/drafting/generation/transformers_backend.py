"""The ``transformers`` backend: a causal LM from a local folder or one GGUF file, batched.

The model loads on first use (or on ``load()``, which the gpu worker can call once it has
started), whichever thread asks first, and once per process for a given path, device and
weights: bf16 on CUDA, fp32 on the CPU. Nothing is downloaded (``local_files_only``). A GGUF
file goes through transformers' GGUF loader, which dequantizes it; that is slow (SmolLM2-135M:
about a minute on a small CPU), so convert a GGUF once to safetensors for repeated use.

Each prompt is rendered with the tokenizer's chat template (plain ``System:/User:/Assistant:``
paragraphs without one), and ``RESPONSE_PREFIX`` is appended so that the answer starts inside
the JSON shape; a completion's text is the decoded new tokens only, the continuation of the
prefix. ``complete_many`` sorts the prompts longest first, so that a batch pads little,
generates in batches of at most ``batch_size`` with left padding, and returns the answers in
prompt order. A batch that runs out of GPU memory is split in halves, recursively, down to one
prompt; one prompt that still does not fit raises ``TransientError``.

Decoding is greedy by default, or sampling at ``temperature`` from a generator seeded with
``seed`` (Gumbel-max over the logits; no global RNG is touched). With ``constrained``
(``FHIRGEN_MODEL_CONSTRAINED``, on by default in the settings) a logits processor
(``constrained``), applied before the sampler, lets each row write only sentence objects
``{"text": "...", "cites": [...]}`` separated by ``", "``, closed by ``]}`` and then a stop
token, each cited id one of the facts given in that row's prompt. ``"cites"`` may be empty, and
that matters: a grammar that forced a citation would push a model that wrote an unsupported
statement to attach some fact id to it, turning a sentence the verifier drops ("cites no fact")
into one it may keep; here the model can always close an empty list and the verifier drops the
sentence as before. The constraint costs a few vectorized operations per row and step (token
tables are built once per tokenizer). Safety still rests on the parser (every complete sentence
object of an untidy or truncated answer: an answer cut by ``max_new_tokens`` is a prefix of the
shape) and the verifier (citations must exist and support the numbers); a section left with
nothing falls back to its template text.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhirgen.drafting.generation.constrained import MAX_TEXT_CHARS, json_constraint
from fhirgen.drafting.generation.model import Completion, ModelBackend
from fhirgen.drafting.generation.prompts import RESPONSE_PREFIX, Prompt
from fhirgen.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_SAMPLES_PER_FILE = 16
_SAMPLE_BYTES = 64 * 1024

_REGISTRY: dict[tuple[str, str, str], LoadedModel] = {}
_REGISTRY_LOCK = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A model and its tokenizer, ready to generate (shared by generators of the same path)."""

    model: Any  # a transformers PreTrainedModel, in eval mode, on ``device``
    tokenizer: Any  # left-padding, with a pad token
    device: Any  # torch.device
    stop_ids: tuple[int, ...]  # end-of-sequence and end-of-turn token ids
    pad_id: int


class TransformersGenerator(ModelBackend):
    """Drafts with a local causal LM through transformers ``generate``.

    ``model`` is the folder's name or the GGUF file's stem; ``version`` is a fingerprint of the
    weights (see ``weights_fingerprint``). ``constrained`` turns on JSON-constrained decoding
    (off unless asked for here; ``from_settings`` follows ``FHIRGEN_MODEL_CONSTRAINED``, on by
    default), with each sentence's text at most ``max_text_chars`` characters. ``batch_sizes``
    records the size of every batch that generated, and ``oom_splits`` the size of every batch
    split after running out of memory.
    """

    name = "transformers"

    def __init__(
        self,
        model_path: Path,
        *,
        device: str = "auto",
        max_new_tokens: int = 384,
        temperature: float = 0.0,
        seed: int = 0,
        batch_size: int = 8,
        max_batch_tokens: int = 32768,
        constrained: bool = True,
    ) -> None:
        path = Path(model_path).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ConfigError(f"model folder {path} has no config.json")
        elif path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ConfigError(f"model file {path} is not a .gguf file")
        else:
            raise ConfigError(f"model path {path} does not exist")
        if max_new_tokens < 1 or batch_size < 1 or temperature < 0:
            raise ConfigError(
                "transformers backend: max_new_tokens and batch_size must be at least 1, "
                "temperature at least 0"
            )
        self.model_path = path.resolve()
        self.gguf = path.is_file()
        self.model = path.stem if self.gguf else path.name
        self.version = weights_fingerprint(self.model_path)
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.max_batch_tokens = max_batch_tokens
        self.temperature = float(temperature)
        self.seed = seed
        self.batch_size = batch_size
        self.constrained = constrained
        self.max_text_chars = MAX_TEXT_CHARS
        self.batch_sizes: list[int] = []
        self.oom_splits: list[int] = []
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()  # one complete_many at a time per generator

    @classmethod
    def from_settings(cls, settings: Any) -> TransformersGenerator:
        """Built from ``FHIRGEN_MODEL_PATH`` and the shared generation settings.

        ``gpu_batch_size`` bounds the prompts in one ``generate`` call.
        """
        model_path = getattr(settings, "model_path", None)
        if not model_path:
            raise ConfigError(
                "the transformers backend needs FHIRGEN_MODEL_PATH: a model folder or a .gguf file"
            )
        path = Path(model_path).expanduser()
        if not path.exists():
            raise ConfigError(f"FHIRGEN_MODEL_PATH names {path}, which does not exist")
        return cls(
            path,
            device=getattr(settings, "model_device", "auto"),
            max_new_tokens=getattr(settings, "max_new_tokens", 384),
            temperature=getattr(settings, "temperature", 0.0),
            seed=getattr(settings, "seed", 0),
            batch_size=getattr(settings, "model_batch_size", 8),
            max_batch_tokens=getattr(settings, "model_batch_tokens", 32768),
            constrained=getattr(settings, "model_constrained", True),
        )

    # -- loading -------------------------------------------------------------------------------

    def load(self) -> LoadedModel:
        """The model, loaded now if not yet: once per process per path, device and weights."""
        loaded = self._loaded
        if loaded is None:
            loaded = _load_shared(self.model_path, self.device, self.version)
            self._loaded = loaded
        return loaded

    # -- generation ----------------------------------------------------------------------------

    def render(self, prompt: Prompt) -> str:
        """The text the model continues: the chat, then ``RESPONSE_PREFIX``."""
        return render_prompt(self.load().tokenizer, prompt)

    def complete_many(self, prompts: Sequence[Prompt]) -> list[Completion]:
        """One completion per prompt, in prompt order.

        ``seconds`` is the wall time of the batch that generated the prompt divided by that
        batch's size, so summing it over prompts gives the total generation time.
        """
        if not prompts:
            return []
        loaded = self.load()
        with self._lock:
            encoded = [self._encode(loaded, prompt) for prompt in prompts]
            fact_ids = [prompt.fact_ids for prompt in prompts]
            order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
            sampler = self._sampler(loaded)
            results: list[Completion | None] = [None] * len(encoded)
            for chunk in self._chunks(order, encoded):
                self._run(loaded, chunk, encoded, fact_ids, sampler, results)
        return [r for r in results if r is not None]

    def _chunks(self, order: list[int], encoded: list[list[int]]) -> list[list[int]]:
        """Batches of at most ``batch_size`` prompts and ``max_batch_tokens`` padded tokens.

        Prompts come longest first, so a batch pads to its first prompt's length; capping the
        padded size keeps a few very long prompts from inflating a whole batch.
        """
        chunks: list[list[int]] = []
        current: list[int] = []
        for index in order:
            longest = len(encoded[current[0]]) if current else len(encoded[index])
            full = len(current) >= self.batch_size
            too_big = current and (len(current) + 1) * longest > self.max_batch_tokens
            if full or too_big:
                chunks.append(current)
                current = []
            current.append(index)
        if current:
            chunks.append(current)
        return chunks

    def _encode(self, loaded: LoadedModel, prompt: Prompt) -> list[int]:
        tokenizer = loaded.tokenizer
        text = render_prompt(tokenizer, prompt)
        # A chat template writes its own special tokens (BOS included); plain text gets them
        # from the tokenizer.
        special = not getattr(tokenizer, "chat_template", None)
        return list(tokenizer(text, add_special_tokens=special)["input_ids"])

    def _run(
        self,
        loaded: LoadedModel,
        indices: list[int],
        encoded: list[list[int]],
        fact_ids: list[tuple[str, ...]],
        sampler: Any,
        results: list[Completion | None],
    ) -> None:
        """Generate for ``indices``, halving the batch after an out-of-memory error.

        The next chunk of the same call tries the full ``batch_size`` again: prompts come
        longest first, so later chunks need less memory.
        """
        import torch

        batch = [encoded[i] for i in indices]
        started = time.perf_counter()
        try:
            outputs = self._generate_batch(
                batch, sampler=sampler, fact_ids=[fact_ids[i] for i in indices]
            )
        except torch.OutOfMemoryError as exc:
            self._free_memory()
            if len(indices) == 1:
                raise TransientError(
                    f"out of GPU memory generating one prompt of {len(batch[0])} tokens"
                ) from exc
            self.oom_splits.append(len(indices))
            log.warning("out of memory on a batch of %d prompts; splitting it", len(indices))
            half = len(indices) // 2
            self._run(loaded, indices[:half], encoded, fact_ids, sampler, results)
            self._run(loaded, indices[half:], encoded, fact_ids, sampler, results)
            return
        seconds = (time.perf_counter() - started) / len(indices)
        self.batch_sizes.append(len(indices))
        for index, new_tokens in zip(indices, outputs, strict=True):
            produced = _until_stop(new_tokens, loaded.stop_ids)
            stopped = len(produced) < len(new_tokens)  # the stop token counts, padding not
            results[index] = Completion(
                text=loaded.tokenizer.decode(produced, skip_special_tokens=True),
                prompt_tokens=len(encoded[index]),
                output_tokens=len(produced) + int(stopped),
                seconds=seconds,
                batch_size=len(indices),
            )

    def _generate_batch(
        self,
        batch: list[list[int]],
        *,
        sampler: Any = None,
        fact_ids: Sequence[Sequence[str]] | None = None,
    ) -> list[list[int]]:
        """New token ids for each prompt of one batch (one ``generate`` call, left-padded).

        ``fact_ids``: the ids each prompt may cite (for the JSON constraint; none if omitted).
        Tests override this to inject failures; it raises ``torch.OutOfMemoryError`` when the
        batch does not fit.
        """
        import torch
        from transformers import LogitsProcessorList

        loaded = self.load()
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), loaded.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        processors = LogitsProcessorList()
        if self.constrained:  # before the sampler: it must see the masked scores
            rows = fact_ids if fact_ids is not None else [()] * len(batch)
            processors.append(
                json_constraint(
                    loaded.tokenizer, loaded.stop_ids, rows, max_text_chars=self.max_text_chars
                )
            )
        if sampler is not None:
            processors.append(sampler)
        with torch.inference_mode():
            output = loaded.model.generate(
                input_ids=input_ids.to(loaded.device),
                attention_mask=attention.to(loaded.device),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                logits_processor=processors,
                eos_token_id=list(loaded.stop_ids),
                pad_token_id=loaded.pad_id,
            )
        return output[:, width:].tolist()

    def _sampler(self, loaded: LoadedModel) -> Any:
        """A seeded sampling processor for this call, or None for greedy decoding."""
        if self.temperature <= 0:
            return None
        return _GumbelSampler(self.temperature, self.seed, loaded.device)

    def _free_memory(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """A prompt as text for ``tokenizer``'s model, ending with ``RESPONSE_PREFIX``.

    With a chat template: the template with the generation prompt (a template that refuses a
    system turn gets the system text at the head of the user turn). Without: plain
    ``System:``/``User:``/``Assistant:`` paragraphs.
    """
    if getattr(tokenizer, "chat_template", None):
        from jinja2 import TemplateError

        try:
            text = tokenizer.apply_chat_template(
                prompt.messages, add_generation_prompt=True, tokenize=False
            )
        except TemplateError:
            merged = [{"role": "user", "content": f"{prompt.system}\n\n{prompt.user}"}]
            text = tokenizer.apply_chat_template(merged, add_generation_prompt=True, tokenize=False)
    else:
        text = f"System: {prompt.system}\n\nUser: {prompt.user}\n\nAssistant: "
    return text + RESPONSE_PREFIX


def weights_fingerprint(path: Path) -> str:
    """A short hash that changes when the weights change, without reading them all.

    It covers the config (for a folder), and each weight file's name, size and
    ``_SAMPLES_PER_FILE`` chunks spread evenly through it: seconds for any model size, where a
    full hash of a 16 GB model takes minutes.
    """
    digest = hashlib.sha256()
    if path.is_dir():
        for name in ("config.json", "generation_config.json"):
            if (path / name).is_file():
                digest.update((path / name).read_bytes())
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _WEIGHT_SUFFIXES)
    else:
        files = [path]
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with file.open("rb") as handle:
            step = max(size // _SAMPLES_PER_FILE, 1)
            for offset in range(0, size, step)[:_SAMPLES_PER_FILE]:
                handle.seek(offset)
                digest.update(handle.read(_SAMPLE_BYTES))
            handle.seek(max(size - _SAMPLE_BYTES, 0))
            digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:12]


def resolve_device(device: str) -> Any:
    """``auto`` → the first CUDA device when there is one, else the CPU; else as named."""
    import torch

    wanted = (device or "auto").strip().lower()
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(wanted)
    except RuntimeError as exc:
        raise ConfigError(f"unknown model device {device!r}: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"model device {device!r} asked for, but CUDA is not available")
    return resolved


def _load_shared(path: Path, device: str, version: str) -> LoadedModel:
    resolved = resolve_device(device)
    key = (str(path), str(resolved), version)
    with _REGISTRY_LOCK:
        loaded = _REGISTRY.get(key)
        if loaded is None:
            loaded = _load(path, resolved)
            _REGISTRY[key] = loaded
    return loaded


def _load(path: Path, device: Any) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    started = time.perf_counter()
    folder, options = (path.parent, {"gguf_file": path.name}) if path.is_file() else (path, {})
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    placement = {"device_map": {"": device}} if device.type == "cuda" else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **options)
        model = AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, dtype=dtype, **options, **placement
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a causal LM from {path}: {exc}") from None
    if device.type != "cuda":
        model = model.to(device)
    model.eval()
    stop_ids = _stop_ids(model, tokenizer)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(stop_ids[0] if stop_ids else 0)
    tokenizer.padding_side = "left"
    pad_id = int(tokenizer.pad_token_id)
    # The hub's sampling defaults (temperature, top_p…) must not leak into our calls: keep only
    # the special token ids; every call states how it decodes.
    model.generation_config = GenerationConfig(
        bos_token_id=model.generation_config.bos_token_id,
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
    )
    log.info(
        "loaded %s on %s (%s) in %.1f s",
        path.name,
        device,
        str(dtype).removeprefix("torch."),
        time.perf_counter() - started,
    )
    return LoadedModel(model, tokenizer, device, stop_ids, pad_id)


def _stop_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    ids: list[int] = []
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is not None and int(item) not in ids:
                ids.append(int(item))
    return tuple(ids)


def _until_stop(tokens: list[int], stop_ids: tuple[int, ...]) -> list[int]:
    """The tokens before the first stop token (what follows it is padding)."""
    for position, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:position]
    return tokens


class _GumbelSampler:
    """Turns greedy decoding into sampling at ``temperature``, from a seeded generator.

    argmax(logits / T + Gumbel noise) is a draw from softmax(logits / T); the noise comes from a
    ``torch.Generator`` seeded once per ``complete_many`` call, so runs repeat exactly.
    """

    def __init__(self, temperature: float, seed: int, device: Any) -> None:
        import torch

        self.temperature = temperature
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        uniform = torch.rand(
            scores.shape, generator=self.generator, device=scores.device, dtype=torch.float32
        )
        gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-20)))
        return scores.float() / self.temperature + gumbel
