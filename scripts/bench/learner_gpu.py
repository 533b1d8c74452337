"""Learner speed on GPU: the project's learner rank against a plain PyTorch loop, side by side.

Work (as in issue 14): a randomly initialised model of Qwen2.5-Math-1.5B's shape (1.54B
parameters, 152k vocabulary, tied embeddings), 32 records of 256 prompt + 1536 response tokens
per optimizer step, micro-batch 4, the SFT objective. Ours is `LearnerRank` (DeepSpeed, bf16
parameters with fp32 master weights, the configured gradient checkpointing and chunked log-probs)
driven directly as rank 0 of a one-rank NCCL group (no Ray: the lent GPU machines have none).
The plain loop is the same model in fp32 under bf16 autocast with fused AdamW and the same
checkpointing, the token-mean cross-entropy from full logits, in this process. Each side is
warmed up, then `--steps` steps are timed; MFU counts 6 x parameters FLOPs per token against
`--peak-tflops` (dense bf16: 989 for H100 and H200 SXM).

Last line: `learner_gpu: mfu=<ours> overhead=<ours/plain step time> peak_gib=<ours>`.
Without a GPU it runs a small shape on gloo (its CPU mode, to check the script and the code
paths): mfu and peak_gib are then nan.

    PYTHONPATH=.:<wheels> python3 scripts/bench/learner_gpu.py
"""

import argparse
import gc
import math
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mtg_ray.data import Record
from mtg_ray.data.synthetic import random_records
from mtg_ray.learner import LearnerConfig
from mtg_ray.learner.rank import LearnerRank
from mtg_ray.models.shapes import QWEN_1_5B, SMALL, build_random_model
from mtg_ray.objectives import Objective


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def time_steps(step, steps: int, warmup: int, device: str) -> float:
    """Median seconds of `steps` calls of `step` after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def ours(model_dir: Path, records: list[Record], args, device: str) -> tuple[float, float]:
    """(step seconds, peak GiB) of the project's learner rank."""
    on_gpu = device == "cuda"
    cfg = LearnerConfig(
        num_workers=1, backend="nccl" if on_gpu else "gloo", gpus_per_worker=int(on_gpu),
        train_batch_size=len(records), micro_batch_size=args.micro, lr=1e-5,
        max_length=args.prompt_len + args.response_len,
        gradient_checkpointing=args.checkpointing, logits_chunk_tokens=args.chunk_tokens,
        pack_records=args.pack,
    )  # fmt: skip
    rank = LearnerRank(cfg, 0, str(model_dir), total_steps=1000)
    rank.setup("127.0.0.1", rank.open_store("127.0.0.1"))
    tokens = sum(len(r.response_token_ids) for r in records)
    free(device)
    seconds = time_steps(
        lambda: rank.train_step(records, tokens, Objective("sft")), args.steps, args.warmup, device
    )
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else math.nan
    rank.shutdown()
    rank.engine = None
    free(device)
    return seconds, peak


def plain(model_dir: Path, records: list[Record], args, device: str) -> tuple[float, float]:
    """(step seconds, peak GiB) of a plain loop: fp32 model, bf16 autocast, fused AdamW."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    if args.checkpointing:
        model.gradient_checkpointing_enable({"use_reentrant": False})
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
    ids = torch.tensor([r.prompt_token_ids + r.response_token_ids for r in records], device=device)
    labels = ids.clone()
    labels[:, : args.prompt_len] = -100
    total = int((labels[:, 1:] != -100).sum())

    def step() -> None:
        for i in range(0, len(records), args.micro):
            with torch.autocast(device, dtype=torch.bfloat16):
                logits = model(input_ids=ids[i : i + args.micro], use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[i : i + args.micro, 1:].flatten(),
                reduction="sum",
            )  # fmt: skip
            (loss / total).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    free(device)
    seconds = time_steps(step, args.steps, args.warmup, device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else math.nan
    model.to("meta")  # releases its memory before the next measurement
    free(device)
    return seconds, peak


def main() -> None:
    on_gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32 if on_gpu else 8)
    parser.add_argument("--micro", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=256 if on_gpu else 16)
    parser.add_argument("--response-len", type=int, default=1536 if on_gpu else 48)
    parser.add_argument("--steps", type=int, default=5 if on_gpu else 2)
    parser.add_argument("--warmup", type=int, default=2 if on_gpu else 1)
    parser.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--chunk-tokens", type=int, default=4096 if on_gpu else 64)
    parser.add_argument(
        "--pack", action=argparse.BooleanOptionalAction, default=False,
        help="learner.pack_records (the records here have one length: nothing to unpad)",
    )  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    args = parser.parse_args()
    device = "cuda" if on_gpu else "cpu"
    shape = QWEN_1_5B if on_gpu else SMALL
    name = torch.cuda.get_device_name(0) if on_gpu else "cpu (CPU mode: a small shape)"
    print(f"device: {name}, torch {torch.__version__}")
    model_dir = build_random_model(Path(tempfile.mkdtemp()) / "model", shape, device)
    params = sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters()
    )  # tied embeddings counted once
    records = random_records(args.batch, args.prompt_len, args.response_len, shape["vocab_size"])
    tokens = args.batch * (args.prompt_len + args.response_len)
    print(f"params {params / 1e9:.3f}B, {tokens} tokens per step, micro-batch {args.micro}, "
          f"checkpointing {args.checkpointing}, logits chunk {args.chunk_tokens}")  # fmt: skip
    results = {"ours": ours(model_dir, records, args, device)}
    results["plain"] = plain(model_dir, records, args, device)
    mfu = {}
    print("| | step s | tokens/s | MFU | peak GiB |\n|---|---|---|---|---|")
    for side, (seconds, peak) in results.items():
        rate = tokens / seconds
        mfu[side] = 6 * params * rate / (args.peak_tflops * 1e12) if on_gpu else math.nan
        print(f"| {side} | {seconds:.3f} | {rate:,.0f} | {mfu[side]:.3f} | {peak:.1f} |")
    overhead = results["ours"][0] / results["plain"][0]
    print(f"learner_gpu: mfu={mfu['ours']:.3f} overhead={overhead:.3f} "
          f"peak_gib={results['ours'][1]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
