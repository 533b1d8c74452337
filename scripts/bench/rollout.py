"""Rollout benchmark: the rewrite workload on the rollout group against HF generate, and a weight
sync against memcpy.

    python scripts/bench/rollout.py [--problems 256] [key=value ...]

Side by side in one run, on the tiny world's base model, with the demo's settings (`--config
tiny`; overrides such as `rollout.max_num_seqs=512` change them):
  (a) the rewrite job on the first `--problems` train problems, as the demo runs it: the tiny
      world's prompts, EOS on, the rewrite's sampling (`rewrite.*`), shard by shard
      (`rewrite.shard_size`), the self stage and then the guided stage for the problems it
      missed (`rewrite_problems`, graded in process). Every generate call is recorded and
      timed; HF `generate` then replays the very same calls (same
      prompts, n, temperature, top_p, max_tokens; EOS on; `--hf-batch` prompts per call,
      left-padded) on the same model with the same number of threads. Generated tokens/s (up to
      and including EOS) of each; problems/s of the rollout group.
  (b) seconds to push all weights to every engine vs seconds to memcpy the same bytes once, with
      the configured backend (shm by default): the tiny world's model (3.7 MB: a push of calls,
      its fixed cost) and a wider model of the same architecture (`--sync-mb`, at least 256 MB
      of float32 weights: a push of bytes). From the two: the fixed cost, and the GB/s of the
      large push beside memcpy's.
Last line: `rollout_vs_hf=<x> sync_vs_memcpy=<y>`, y of the large push.
"""

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mtg_ray.config import compose
from mtg_ray.grading import grade_many
from mtg_ray.models.tiny import TinyModelConfig, build_tiny_model
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.pipelines.jobs.rewrite import rewrite_problems
from mtg_ray.pipelines.jobs.session import groups, start
from mtg_ray.rollout import Sample, SamplingConfig
from mtg_ray.rollout.config import per_prompt


@dataclass
class Recording:
    """A rollout that forwards to `inner` and records every generate call (as its prompts per
    sampling config), its seconds and its tokens."""

    inner: Rollout
    calls: list[tuple[list[list[int]], SamplingConfig]] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig | Sequence[SamplingConfig]
    ) -> list[list[Sample]]:
        start = time.perf_counter()
        out = self.inner.generate(prompts, sampling)
        self.seconds += time.perf_counter() - start
        configs = per_prompt(sampling, len(prompts))
        for config in dict.fromkeys(configs):
            self.calls.append(
                ([p for p, c in zip(prompts, configs, strict=True) if c == config], config)
            )
        self.tokens += sum(len(s.token_ids) for ss in out for s in ss)
        return out


def hf_replay(
    model_dir: Path, calls: list[tuple[list[list[int]], SamplingConfig]], eos: int, batch: int
) -> tuple[float, int]:
    """(seconds, generated tokens up to and including EOS) of HF generate on the same calls
    (`batch` prompts a call)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    seconds, tokens = 0.0, 0
    for prompts, sampling in calls:
        for lo in range(0, len(prompts), batch):
            chunk = prompts[lo : lo + batch]
            width = max(len(p) for p in chunk)
            ids = torch.tensor([[eos] * (width - len(p)) + p for p in chunk])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
            start = time.perf_counter()
            with torch.no_grad():
                out = model.generate(
                    ids, attention_mask=mask, do_sample=True, temperature=sampling.temperature,
                    top_p=sampling.top_p, top_k=0, max_new_tokens=sampling.max_tokens,
                    num_return_sequences=sampling.n, eos_token_id=eos, pad_token_id=eos,
                )  # fmt: skip
            seconds += time.perf_counter() - start
            new = out[:, width:]
            ended = (new == eos).int()
            first_eos = torch.where(ended.any(1), ended.argmax(1) + 1, new.shape[1])
            tokens += int(first_eos.sum())
    return seconds, tokens


def memcpy_seconds(nbytes: int, repeats: int = 5) -> float:
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return best


def wide_model(folder: Path, megabytes: int) -> Path:
    """A tiny Qwen2 as wide as needed for at least `megabytes` MB of float32 weights."""
    layers, hidden = 4, 256
    while True:
        cfg = TinyModelConfig(
            hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
            num_attention_heads=hidden // 64, num_key_value_heads=max(1, hidden // 256),
        )  # fmt: skip
        per_layer = 2 * hidden * hidden + 2 * hidden * (hidden // 4) + 3 * hidden * 3 * hidden
        if 4 * layers * per_layer >= megabytes * 1e6:
            return build_tiny_model(folder, cfg)
        hidden += 128


def push_seconds(group: RolloutGroup, state: dict, pushes: int = 3) -> tuple[float, int]:
    """(best seconds of `pushes` pushes of `state` to every engine, buckets of one), after one
    that sets up the transport."""
    group.update_weights(state.items(), version=1)
    syncs = [group.update_weights(state.items(), version=2 + i) for i in range(pushes)]
    return min(s.seconds for s in syncs), syncs[0].buckets


def nbytes(state: dict) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=256, help="train problems to rewrite")
    parser.add_argument("--hf-batch", type=int, default=64, help="prompts per HF generate call")
    parser.add_argument(
        "--no-hf", action="store_true", help="time the rollout group only (tuning runs)"
    )
    parser.add_argument(
        "--sync-mb", type=int, default=256, help="MB of weights of the large push (>= 256)"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    args = parser.parse_args()

    run = start(compose("tiny", args.overrides))
    cfg = run.cfg
    problems = run.train_problems[: args.problems]
    with groups(run) as group:
        group.generate([[5, 6, 7]], SamplingConfig(max_tokens=4))  # warm-up
        recording = Recording(group)
        size = cfg.rewrite.shard_size  # one rewrite_problems call per shard, as the job does
        for lo in range(0, len(problems), size):
            chunk = problems[lo : lo + size]
            rewrite_problems(chunk, recording, run.tokenizer, run.template, cfg.rewrite, grade_many)
        state = AutoModelForCausalLM.from_pretrained(run.model_path).state_dict()
        sync, buckets = push_seconds(group, state)

    ours = recording.tokens / recording.seconds
    r = cfg.rollout
    calls = ", ".join(f"{len(p)}x{s.n}" for p, s in recording.calls)
    print(
        f"workload: {len(problems)} problems, calls (prompts x samples): {calls}; "
        f"{r.num_engines} engines x {r.cpus_per_engine} CPU, max_num_seqs={r.max_num_seqs} "
        f"max_num_batched_tokens={r.max_num_batched_tokens} (0: vLLM's default)"
    )
    print(
        f"rollout group: {recording.seconds:.1f}s, {recording.tokens} tokens, {ours:.0f} tok/s, "
        f"{len(problems) / recording.seconds:.1f} problems/s"
    )
    if args.no_hf:
        return
    with tempfile.TemporaryDirectory() as tmp:  # the large push, on a group of its own
        wide = wide_model(Path(tmp) / "wide", args.sync_mb)
        big = AutoModelForCausalLM.from_pretrained(wide).state_dict()
        wide_group = RolloutGroup(cfg.rollout, str(wide))
        try:
            big_sync, big_buckets = push_seconds(wide_group, big)
        finally:
            wide_group.shutdown()
    torch.set_num_threads(r.num_engines * r.cpus_per_engine)
    eos = run.tokenizer.eos_token_id
    hf_s, hf_tokens = hf_replay(Path(run.model_path), recording.calls, eos, args.hf_batch)
    hf = hf_tokens / hf_s
    small_bytes, big_bytes = nbytes(state), nbytes(big)
    copy, big_copy = memcpy_seconds(small_bytes), memcpy_seconds(big_bytes)
    # the fixed cost of a push: what the small one costs beyond moving its bytes at the large
    # one's rate
    rate = (big_bytes - small_bytes) / max(big_sync - sync, 1e-9)
    fixed = max(sync - small_bytes / rate, 0.0)
    print(f"HF generate (same calls): {hf_s:.1f}s, {hf_tokens} tokens, {hf:.0f} tok/s")
    print(
        f"weight sync ({r.weight_backend}, {r.num_engines} engines): {small_bytes / 1e6:.1f} MB "
        f"in {sync * 1e3:.1f} ms ({buckets} buckets; memcpy {copy * 1e3:.2f} ms); "
        f"{big_bytes / 1e6:.0f} MB in {big_sync * 1e3:.0f} ms ({big_buckets} buckets; memcpy "
        f"{big_copy * 1e3:.1f} ms)"
    )
    print(
        f"weight sync: fixed cost {fixed * 1e3:.1f} ms, {rate / 1e9:.2f} GB/s against memcpy's "
        f"{big_bytes / big_copy / 1e9:.2f} GB/s"
    )
    print(f"rollout_vs_hf={ours / hf:.2f} sync_vs_memcpy={big_sync / big_copy:.2f}")


if __name__ == "__main__":
    main()
