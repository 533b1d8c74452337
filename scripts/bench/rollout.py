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
      the configured backend (shm by default).
Last line: `rollout_vs_hf=<x> sync_vs_memcpy=<y>`.
"""

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mtg_ray.config import compose
from mtg_ray.grading import grade_many
from mtg_ray.pipelines.groups.protocols import Rollout
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=256, help="train problems to rewrite")
    parser.add_argument("--hf-batch", type=int, default=64, help="prompts per HF generate call")
    parser.add_argument(
        "--no-hf", action="store_true", help="time the rollout group only (tuning runs)"
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
        group.update_weights(state.items(), version=1)  # sets up the transport
        syncs = [group.update_weights(state.items(), version=2 + i) for i in range(3)]
    sync = min(s.seconds for s in syncs)

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
    torch.set_num_threads(r.num_engines * r.cpus_per_engine)
    eos = run.tokenizer.eos_token_id
    hf_s, hf_tokens = hf_replay(Path(run.model_path), recording.calls, eos, args.hf_batch)
    hf = hf_tokens / hf_s
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    copy = memcpy_seconds(nbytes)
    print(f"HF generate (same calls): {hf_s:.1f}s, {hf_tokens} tokens, {hf:.0f} tok/s")
    print(
        f"weight sync: {r.weight_backend} {sync * 1e3:.1f} ms ({syncs[0].buckets} buckets)   "
        f"memcpy: {copy * 1e3:.2f} ms"
    )
    print(f"rollout_vs_hf={ours / hf:.2f} sync_vs_memcpy={sync / copy:.2f}")


if __name__ == "__main__":
    main()
