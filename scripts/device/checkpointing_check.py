"""GPU check: `learner.gradient_checkpointing` lowers the learner's peak memory (no Ray, no vLLM).

`LearnerRank` (a one-rank NCCL group, DeepSpeed, bf16) trains on random weights of
Qwen2.5-Math-1.5B's shape, 4 records of 256 prompt + 1536 response tokens in micro-batches of
2, once with checkpointing off and once on, each in a fresh process. It prints each run's peak
GPU memory and how often a decoder layer ran per micro-batch (2 with checkpointing: forward and
its recomputation), and fails unless checkpointing cuts the peak by at least 20%. Without a GPU
(CPU mode: a small shape on gloo) only the recomputation count is checked.

    PYTHONPATH=.:<wheels> python3 scripts/device/checkpointing_check.py
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def one_run(checkpointing: bool) -> None:
    """Train two steps; print `calls=<per micro-batch> peak_gib=<x>`."""
    from mtg_ray.data.synthetic import random_records
    from mtg_ray.learner import LearnerConfig
    from mtg_ray.learner.rank import LearnerRank
    from mtg_ray.models.shapes import QWEN_1_5B, SMALL, build_random_model
    from mtg_ray.objectives import Objective

    on_gpu = torch.cuda.is_available()
    shape = QWEN_1_5B if on_gpu else SMALL
    prompt, response = (256, 1536) if on_gpu else (16, 48)
    folder = build_random_model(Path(tempfile.mkdtemp()) / "m", shape, "cuda" if on_gpu else "cpu")
    cfg = LearnerConfig(
        num_workers=1, backend="nccl" if on_gpu else "gloo", gpus_per_worker=int(on_gpu),
        train_batch_size=4, micro_batch_size=2, lr=1e-5, max_length=prompt + response,
        gradient_checkpointing=checkpointing, logits_chunk_tokens=4096 if on_gpu else 64,
    )  # fmt: skip
    rank = LearnerRank(cfg, 0, str(folder), total_steps=10)
    rank.setup("127.0.0.1", rank.open_store("127.0.0.1"))
    records = random_records(4, prompt, response, shape["vocab_size"])
    tokens = sum(len(r.response_token_ids) for r in records)
    calls = []
    layer = rank.engine.module.model.layers[0]
    layer.register_forward_pre_hook(lambda m, args: calls.append(m.training))
    rank.train_step(records, tokens, Objective("sft"))
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    calls.clear()
    rank.train_step(records, tokens, Objective("sft"))
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else math.nan
    print(f"calls={len(calls) / 2:g} training={all(calls)} peak_gib={peak:.2f}")
    rank.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=["on", "off"], help="(internal) one run, this process")
    args = parser.parse_args()
    if args.one:
        one_run(args.one == "on")
        return
    on_gpu = torch.cuda.is_available()
    print("cuda:", on_gpu, torch.__version__, torch.cuda.get_device_name(0) if on_gpu else "")
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    result = {}
    for setting in ("off", "on"):
        out = subprocess.run(
            [sys.executable, __file__, "--one", setting], env=env, capture_output=True,
            text=True, check=False,
        )  # fmt: skip
        line = [x for x in out.stdout.splitlines() if x.startswith("calls=")]
        if out.returncode or not line:
            print(out.stdout[-3000:], out.stderr[-3000:])
            raise SystemExit(f"checkpointing {setting}: the run failed")
        result[setting] = dict(kv.split("=") for kv in line[-1].split())
        print(f"checkpointing {setting}: {line[-1]}")
    assert result["off"]["calls"] == "1" and result["on"]["calls"] == "2", result
    assert result["on"]["training"] == "True", result
    if on_gpu:
        off, on = float(result["off"]["peak_gib"]), float(result["on"]["peak_gib"])
        assert on < 0.8 * off, f"checkpointing did not cut the peak: {on:.1f} vs {off:.1f} GiB"
        print(f"checkpointing: peak_gib off={off:.1f} on={on:.1f} ({on / off:.2f}x)")
    print("CHECKPOINTING CHECK OK" + ("" if on_gpu else " (CPU mode: recomputation only)"))


if __name__ == "__main__":
    main()
