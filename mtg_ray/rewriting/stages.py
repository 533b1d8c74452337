"""The per-problem rewriting decision: self-alignment, guided re-solving, expert fallback.

Pure code on samples that already carry grader verdicts; the driver does the generation and
grading, then asks `needs_guided` which problems go to stage 2 and `rewrite` which records to keep.
"""

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from mtg_ray.data import Problem, Record

KEEP_POLICIES = ("one", "all", "up_to")


@dataclass(frozen=True)
class Sample:
    """One generated response with its grade and the provenance the training record needs."""

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    correct: bool
    policy_version: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None = None

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(
                f"sample has {len(self.token_ids)} tokens but {len(self.logprobs)} log-probs"
            )


@dataclass(frozen=True)
class SelectionConfig:
    """Which correct samples a stage keeps per problem.

    keep: "one" keeps one correct sample chosen at random (the paper); "all" keeps every correct
    one; "up_to" keeps at most `max_per_problem`, chosen at random.
    """

    keep: str = "one"
    max_per_problem: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.keep not in KEEP_POLICIES:
            raise ValueError(f"selection.keep must be one of {KEEP_POLICIES}, got {self.keep!r}")
        if self.max_per_problem < 1:
            raise ValueError(f"selection.max_per_problem must be >= 1, got {self.max_per_problem}")


def problem_rng(seed: int, problem_id: str, stage: str) -> random.Random:
    """A generator that depends only on (seed, problem, stage): reruns and resumes choose alike."""
    digest = hashlib.sha256(f"{seed}\0{problem_id}\0{stage}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def choose_correct(
    samples: Sequence[Sample], cfg: SelectionConfig, problem_id: str, stage: str
) -> list[Sample]:
    """The correct samples this stage keeps, in their original order; empty if none is correct."""
    correct = [i for i, s in enumerate(samples) if s.correct]
    if not correct or cfg.keep == "all":
        return [samples[i] for i in correct]
    k = 1 if cfg.keep == "one" else min(cfg.max_per_problem, len(correct))
    picked = problem_rng(cfg.seed, problem_id, stage).sample(correct, k)
    return [samples[i] for i in sorted(picked)]


def needs_guided(self_samples: Sequence[Sample]) -> bool:
    """Stage 2 runs only for problems where no self sample is correct."""
    return not any(s.correct for s in self_samples)


def _sample_record(
    problem: Problem, prompt: str, prompt_ids: Sequence[int], sample: Sample, source: str
) -> Record:
    return Record(
        problem_id=problem.problem_id,
        prompt=prompt,
        reference_answer=problem.reference_answer,
        expert_solution=problem.expert_solution or "",
        response=sample.text,
        prompt_token_ids=list(prompt_ids),
        response_token_ids=list(sample.token_ids),
        source=source,
        correct=sample.correct,
        behaviour_logprobs=list(sample.logprobs),
        policy_version=sample.policy_version,
        temperature=sample.temperature,
        top_p=sample.top_p,
        max_tokens=sample.max_tokens,
        seed=sample.seed,
    )


def expert_record(
    problem: Problem, prompt: str, prompt_ids: Sequence[int], expert_ids: Sequence[int]
) -> Record:
    """The stage-3 fallback: the expert demonstration, whose behaviour log-probs are unknown."""
    if not problem.expert_solution:
        raise ValueError(f"problem {problem.problem_id!r} has no expert solution to fall back on")
    return Record(
        problem_id=problem.problem_id,
        prompt=prompt,
        reference_answer=problem.reference_answer,
        expert_solution=problem.expert_solution,
        response=problem.expert_solution,
        prompt_token_ids=list(prompt_ids),
        response_token_ids=list(expert_ids),
        source="expert",
        correct=True,
        behaviour_logprobs=None,
        policy_version=-1,
        temperature=None,
        top_p=None,
        max_tokens=None,
        seed=None,
    )


def rewrite(
    problem: Problem,
    prompt: str,
    prompt_ids: Sequence[int],
    expert_ids: Sequence[int],
    self_samples: Sequence[Sample],
    guided_samples: Sequence[Sample],
    cfg: SelectionConfig,
) -> list[Record]:
    """The records to train on for one problem, each tagged with the stage that produced it.

    `prompt`/`prompt_ids` are the plain prompt (no reference): guided re-solutions are paired with
    it too, since the reference is only a crutch at generation time. Guided samples are ignored
    when a self sample is correct (stage 2 should not have run).
    """
    kept = choose_correct(self_samples, cfg, problem.problem_id, "self")
    if kept:
        return [_sample_record(problem, prompt, prompt_ids, s, "self") for s in kept]
    kept = choose_correct(guided_samples, cfg, problem.problem_id, "guided")
    if kept:
        return [_sample_record(problem, prompt, prompt_ids, s, "guided") for s in kept]
    return [expert_record(problem, prompt, prompt_ids, expert_ids)]
