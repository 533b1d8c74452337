"""Learner benchmark: one train step of the learner group (1 rank) against a plain PyTorch loop.

Side by side in one run, on one model and one batch: the plain loop does the same forward
(`forward_objective`, SFT), backward with the same gradient accumulation, gradient clipping and
AdamW step in this process; ours is `LearnerGroup.train_step` through Ray and DeepSpeed, timed
from the driver (so Ray dispatch and batch transfer count against us). Rounds alternate between
the two so machine noise hits both alike; the median step time of each is compared.
Last line: `learner_overhead=<x>` (ours / plain).
"""

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mtg_ray.data import Problem, Record
from mtg_ray.learner import LearnerConfig, collate, forward_objective, micro_batches
from mtg_ray.models import BENCH_MODEL, build_tiny_model
from mtg_ray.objectives import Objective
from mtg_ray.pipelines.groups.cluster import init_local_ray
from mtg_ray.pipelines.groups.learner_group import LearnerGroup
from mtg_ray.rewriting import expert_record

SFT = Objective("sft")


def make_batch(n: int, prompt_len: int, response_len: int) -> list[Record]:
    """n expert records of random tokens: the step's cost depends only on the shapes."""
    rng = random.Random(0)
    problem = Problem("p", "q", "0", expert_solution="e")
    return [
        expert_record(
            problem,
            "",
            [rng.randrange(4, 100) for _ in range(prompt_len)],
            [rng.randrange(4, 100) for _ in range(response_len)],
        )
        for _ in range(n)
    ]


class PlainLoop:
    """The same step without Ray or DeepSpeed: accumulate, clip, AdamW, schedule-free."""

    def __init__(self, model_dir: Path, cfg: LearnerConfig) -> None:
        self.cfg = cfg
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps
        )

    def step(self, records: list[Record]) -> float:
        micros = micro_batches(records, self.cfg.micro_batch_size)
        total = sum(len(r.response_token_ids) for r in records)
        loss_sum = 0.0
        for micro in micros:
            out = forward_objective(self.model, collate(micro, 0, self.cfg.max_length), SFT)
            (out.loss * out.response_tokens / total).backward()
            loss_sum += float(out.loss.detach()) * out.response_tokens
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss_sum / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--micro", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--response-len", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per round and side")
    parser.add_argument("--zero-stage", type=int, default=2, help="as configured; 1 rank runs 0")
    args = parser.parse_args()

    threads = 2
    torch.set_num_threads(threads)
    init_local_ray(4)
    records = make_batch(args.batch, args.prompt_len, args.response_len)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", BENCH_MODEL)
        cfg = LearnerConfig(
            num_workers=1,
            cpus_per_worker=threads,
            zero_stage=args.zero_stage,
            train_batch_size=args.batch,
            micro_batch_size=args.micro,
            lr=1e-4,
            warmup_ratio=0.0,
        )
        group = LearnerGroup(cfg, str(model_dir), total_steps=10_000)
        plain = PlainLoop(model_dir, cfg)
        ours_times: list[float] = []
        plain_times: list[float] = []
        group.train_step(records, SFT)  # warm-up both sides
        plain.step(records)
        for _ in range(args.rounds):
            for _ in range(args.steps):
                start = time.perf_counter()
                group.train_step(records, SFT)
                ours_times.append(time.perf_counter() - start)
            for _ in range(args.steps):
                start = time.perf_counter()
                plain.step(records)
                plain_times.append(time.perf_counter() - start)
        group.shutdown()
    n_params = sum(p.numel() for p in plain.model.parameters())
    ours, base = statistics.median(ours_times), statistics.median(plain_times)
    tokens = args.batch * (args.prompt_len + args.response_len)
    print(
        f"model: {n_params / 1e6:.1f}M params; batch {args.batch} x {tokens // args.batch} "
        f"tokens, micro {args.micro}, ZeRO-{args.zero_stage} configured "
        f"(runs as {cfg.effective_zero_stage}), {threads} threads each side"
    )
    print(f"learner group: {ours * 1e3:.1f} ms/step   plain loop: {base * 1e3:.1f} ms/step")
    print(f"learner_overhead={ours / base:.3f}")


if __name__ == "__main__":
    main()
