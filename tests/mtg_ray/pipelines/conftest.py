"""In-process stand-ins for the learner and rollout groups (no Ray, vLLM or DeepSpeed), so the
drivers' logic runs in milliseconds. They implement `mtg_ray.pipelines.groups.protocols`; the real
groups are tested in tests/jobs/ (the slow tier)."""

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from mtg_ray.data import Problem, Record, write_text
from mtg_ray.learner import StepResult
from mtg_ray.models import build_tokenizer
from mtg_ray.objectives import Objective
from mtg_ray.rollout import Sample, SamplingConfig
from mtg_ray.rollout.config import per_prompt

TOKENIZER = build_tokenizer()


class StandInLearner:
    """Its 'weights' are one number: the optimizer steps taken. Checkpoints are json files."""

    def __init__(self, fail_at_step: int | None = None) -> None:
        self.step = 0
        self.fail_at_step = fail_at_step
        self.trained: list[list[str]] = []  # problem ids of each step's batch
        self.closed = False

    def train_step(self, records: Sequence[Record], objective: Objective) -> StepResult:
        if self.step == self.fail_at_step:
            raise RuntimeError(f"stand-in learner fails at step {self.step}")
        self.trained.append([r.problem_id for r in records])
        self.step += 1
        ratios = tuple(float(self.step) for r in records if r.behaviour_logprobs is not None)
        return StepResult({"train/loss": 1.0 / self.step}, ratios)

    def save_checkpoint(self, ckpt_dir: str | Path, client_state: dict[str, Any]) -> str:
        write_text(Path(ckpt_dir) / "latest.json", json.dumps([self.step, client_state]))
        return str(self.step)

    def load_checkpoint(self, ckpt_dir: str | Path) -> dict[str, Any] | None:
        path = Path(ckpt_dir) / "latest.json"
        if not path.is_file():
            return None
        self.step, state = json.loads(path.read_text())
        return state

    def named_weights(self, bucket_bytes: int) -> Iterator[tuple[str, torch.Tensor]]:
        yield "w", torch.tensor([float(self.step)])

    def export_hf(self, out_dir: str | Path) -> Path:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.tensor([float(self.step)])}, Path(out_dir) / "model.safetensors")
        return Path(out_dir)

    def shutdown(self) -> None:
        self.closed = True


def answer_of(prompt: str) -> int:
    return int(re.search(r"q(\d+)", prompt).group(1))


def standin_policy(prompt: str, version: int, index: int) -> str:
    """Problem qK: solved alone when K % 3 == 0, with the expert's reference when K % 3 == 1,
    never when K % 3 == 2."""
    k = answer_of(prompt)
    guided = "ref \\boxed" in prompt
    solved = k % 3 == 0 or (guided and k % 3 == 1)
    return f"so \\boxed{{{k if solved else k + 1}}}"


class StandInRollout:
    """Answers with `policy(prompt text, version, sample index)`, ending as `finish(...)` says
    (default: "stop", on EOS); stamps its version."""

    bucket_bytes = 1 << 10

    def __init__(
        self, policy=standin_policy, finish=lambda prompt, version, i: "stop",
        logprob: float = -0.1,
    ) -> None:  # fmt: skip
        self.policy, self.finish, self.logprob = policy, finish, logprob
        self.version = 0
        self.weights = 0.0
        self.pushes: list[tuple[int, float]] = []  # (version, weights) of every update
        self.requests: list[tuple[int, int]] = []  # (prompts, version) of every generate
        self.released = False  # its GPUs given to the learner (`release`), until its next call

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig | Sequence[SamplingConfig]
    ) -> list[list[Sample]]:
        self.released = False
        self.requests.append((len(prompts), self.version))
        out = []
        for ids, config in zip(prompts, per_prompt(sampling, len(prompts)), strict=True):
            text = TOKENIZER.decode(ids)
            samples = []
            for i in range(config.n):
                reply = self.policy(text, self.version, i)
                tokens = tuple(TOKENIZER(reply)["input_ids"])
                end = self.finish(text, self.version, i)
                logprobs = (self.logprob,) * len(tokens)
                samples.append(Sample(reply, tokens, logprobs, end, self.version))
            out.append(samples)
        return out

    max_model_len = 1 << 20  # a pair this long or longer is not scored, as RolloutGroup's

    def score(
        self, prompts: list[list[int]], responses: list[list[int]]
    ) -> list[list[float] | None]:
        return [
            [-0.5] * len(r) if len(p) + len(r) < self.max_model_len else None
            for p, r in zip(prompts, responses, strict=True)
        ]

    def update_weights(self, named, version: int) -> None:
        self.released = False
        self.weights = float(dict(named)["w"][0])
        self.version = version
        self.pushes.append((version, self.weights))

    def sync_from(self, learner, version: int) -> None:
        self.update_weights(learner.named_weights(self.bucket_bytes), version)

    def load_folder(self, folder, version: int) -> None:
        self.update_weights(load_file(Path(folder) / "model.safetensors").items(), version)

    def release(self) -> None:
        self.released = True


def standin_grader(pairs: Sequence[tuple[str, str]]) -> list[bool]:
    """Exact boxed-answer match (the real grader runs in a sandbox; tested in grading/)."""
    return [f"\\boxed{{{ref}}}" in text for text, ref in pairs]


def problems(n: int) -> list[Problem]:
    """qK, answer K, levels alternating "1", "2"."""
    return [
        Problem(f"p{k}", f"q{k}", str(k), f"ref \\boxed{{{k}}}", level=str(k % 2 + 1))
        for k in range(n)
    ]


@pytest.fixture
def standins() -> SimpleNamespace:
    return SimpleNamespace(
        Learner=StandInLearner,
        Rollout=StandInRollout,
        grader=standin_grader,
        problems=problems,
        tokenizer=TOKENIZER,
        answer_of=answer_of,
    )
