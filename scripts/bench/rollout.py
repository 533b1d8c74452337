"""Rollout benchmark: the rollout group against HF generate, and a weight sync against memcpy.

Side by side in one run, on one model:
  (a) sampled tokens/s of the rollout group vs HF `generate` (same model, prompts, sampling
      settings, every sample exactly `max_tokens` long);
  (b) seconds to push all weights to every engine vs seconds to memcpy the same bytes once,
      with the default CPU backend (shm); the gloo backend's time is printed beside it.
Last line: `rollout_vs_hf=<x> sync_vs_memcpy=<y>`.
"""

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mtg_ray.models import BENCH_MODEL, build_tiny_model
from mtg_ray.pipelines.cluster import init_local_ray
from mtg_ray.pipelines.rollout_group import RolloutGroup
from mtg_ray.rollout import RolloutConfig, SamplingConfig


def hf_tokens_per_s(model_dir: Path, prompts: list[list[int]], max_tokens: int) -> float:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor(prompts)  # equal-length prompts: no padding needed
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            pad_token_id=0,
        )
    seconds = time.perf_counter() - start
    return (out.shape[1] - ids.shape[1]) * len(prompts) / seconds


def memcpy_seconds(nbytes: int, repeats: int = 5) -> float:
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return best


def sync_seconds(group: RolloutGroup, state: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Best of 3 pushes of `state` (after a warm-up that sets up the transport), and buckets."""
    group.update_weights(state.items(), version=1)
    syncs = [group.update_weights(state.items(), version=2 + i) for i in range(3)]
    return min(s.seconds for s in syncs), syncs[0].buckets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--engines", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(2)
    init_local_ray(8)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", BENCH_MODEL)
        n_params = sum(
            p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters()
        )
        prompts = [
            [5 + (i % 60), 10 + (i % 13), 20, 30, 40, 50, 60, 70] for i in range(args.prompts)
        ]
        sampling = SamplingConfig(
            n=1, temperature=1.0, top_p=1.0, max_tokens=args.max_tokens, ignore_eos=True, seed=0
        )

        cfg = RolloutConfig(num_engines=args.engines, max_model_len=256)
        group = RolloutGroup(cfg, str(model_dir))
        group.generate(prompts[:2], sampling)  # warm-up
        start = time.perf_counter()
        samples = group.generate(prompts, sampling)
        ours = sum(len(s.token_ids) for ss in samples for s in ss) / (time.perf_counter() - start)

        state = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
        sync, buckets = sync_seconds(group, state)
        group.shutdown()
        gloo = RolloutGroup(dataclasses.replace(cfg, weight_backend="gloo"), str(model_dir))
        gloo_sync, _ = sync_seconds(gloo, state)
        gloo.shutdown()
        nbytes = sum(t.numel() * t.element_size() for t in state.values())

        hf = hf_tokens_per_s(model_dir, prompts, args.max_tokens)
        copy = memcpy_seconds(nbytes)
    size = f"{n_params / 1e6:.1f}M params, {nbytes / 2**20:.1f} MiB fp32"
    print(f"model: {size}; {args.engines} engines x 1 CPU")
    print(f"rollout group: {ours:.0f} tok/s   HF generate: {hf:.0f} tok/s")
    print(
        f"weight sync: {cfg.weight_backend} {sync * 1e3:.1f} ms ({buckets} buckets), "
        f"gloo {gloo_sync * 1e3:.1f} ms   memcpy: {copy * 1e3:.2f} ms"
    )
    print(f"rollout_vs_hf={ours / hf:.2f} sync_vs_memcpy={sync / copy:.2f}")


if __name__ == "__main__":
    main()
