"""The per-problem rewriting decision: self-alignment, guided re-solving, expert fallback.

Pure code on graded samples (`mtg_ray.rollout.Graded`); the driver does the generation and
grading, then asks `needs_guided` which problems go to stage 2 and `rewrite` which records to keep.
"""

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from mtg_ray.data import Problem, Record
from mtg_ray.rollout import Graded, Sample, SamplingConfig

KEEP_POLICIES = ("one", "all", "up_to")


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
    graded: Graded, cfg: SelectionConfig, problem_id: str, stage: str
) -> list[Sample]:
    """The correct samples this stage keeps, in their original order; empty if none is correct."""
    correct = [i for i, ok in enumerate(graded.correct) if ok]
    if not correct or cfg.keep == "all":
        return [graded.samples[i] for i in correct]
    k = 1 if cfg.keep == "one" else min(cfg.max_per_problem, len(correct))
    picked = problem_rng(cfg.seed, problem_id, stage).sample(correct, k)
    return [graded.samples[i] for i in sorted(picked)]


# The rules that reject a correct sample before the stages choose (`screen`), in the order they
# are applied; each rejection is counted under its rule.
DROP_RULES = ("unfinished", "copied", "leaked", "unfaithful")


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copied_share(response: str, reference: str, n: int) -> float:
    """Share of the response's word n-grams found in the reference (0 for a response shorter
    than n words)."""
    ours = word_ngrams(response, n)
    return len(ours & word_ngrams(reference, n)) / len(ours) if ours else 0.0


@dataclass(frozen=True)
class ScreenConfig:
    """What `screen` rejects. A sample is never kept unless it ended on its own (EOS or a stop
    string: vLLM's finish_reason "stop"): one cut at max_tokens with a right last answer would
    teach the model not to stop. A guided sample whose word `copy_ngram`-grams are at least
    `copy_max_share` found in the reference it was shown copied it and fails."""

    copy_ngram: int = 4
    copy_max_share: float = 0.5


def screen(
    graded: Graded, stage: str, reference: str, cfg: ScreenConfig
) -> tuple[Graded, dict[str, int]]:
    """`graded` with each correct sample a rule rejects marked not correct, and how many correct
    samples each rule (DROP_RULES) rejected; `reference` is what a guided sample was shown."""
    dropped = dict.fromkeys(DROP_RULES[:2], 0)
    correct = []
    for sample, ok in zip(graded.samples, graded.correct, strict=True):
        if ok and sample.finish_reason != "stop":
            dropped["unfinished"] += 1
            ok = False
        if ok and stage == "guided":
            if copied_share(sample.text, reference, cfg.copy_ngram) >= cfg.copy_max_share:
                dropped["copied"] += 1
                ok = False
        correct.append(ok)
    return Graded(graded.samples, tuple(correct), graded.sampling), dropped


def leak_score(plain_logprobs: Sequence[float], guided_logprobs: Sequence[float]) -> float:
    """Mean over the response's tokens of log pi(y_t | x) - log pi(y_t | x, reference): how much
    less likely the response is without the reference it was sampled beside (the IS ratio's
    own terms). Far below 0: the response leans on the reference (e.g. reads its answer off)."""
    if not plain_logprobs:
        return 0.0
    diffs = [a - b for a, b in zip(plain_logprobs, guided_logprobs, strict=True)]
    return sum(diffs) / len(diffs)


def leak_gate(
    graded: Graded, plain_logprobs: Sequence[Sequence[float] | None], threshold: float
) -> tuple[Graded, dict[str, int]]:
    """`graded` (guided samples) with each correct sample whose `leak_score` is below
    `threshold` marked failed; plain_logprobs[i] scores sample i on the plain prompt (None for
    samples not scored: those not correct). Counts the rejections as "leaked"."""
    correct, leaked = [], 0
    for sample, ok, plain in zip(graded.samples, graded.correct, plain_logprobs, strict=True):
        if ok and plain is not None and leak_score(plain, sample.logprobs) < threshold:
            ok, leaked = False, leaked + 1
        correct.append(ok)
    return Graded(graded.samples, tuple(correct), graded.sampling), {"leaked": leaked}


def mask_answer(reference: str) -> str:
    """The reference without its final answer: from the start of the sentence (or line) that
    holds its last `\\boxed{` to the end, so a guided sample has to derive the answer."""
    at = reference.rfind("\\boxed{")
    if at < 0:
        return reference
    start = max(reference.rfind(". ", 0, at) + 1, reference.rfind("\n", 0, at) + 1)
    return reference[:start].rstrip()


def needs_guided(self_samples: Graded) -> bool:
    """Stage 2 runs only for problems where no self sample is correct."""
    return not self_samples.any_correct


def _sample_record(
    problem: Problem,
    prompt: str,
    prompt_ids: Sequence[int],
    sample: Sample,
    sampling: SamplingConfig,
    source: str,
    behaviour_prompt: str | None = None,
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
        correct=True,
        behaviour_logprobs=list(sample.logprobs),
        policy_version=sample.policy_version,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        seed=sampling.seed,
        behaviour_prompt=behaviour_prompt,
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


# The record source each sampling stage's kept samples get (`RewriteConfig.stages`).
STAGE_SOURCES = {
    "self": "self", "guided": "guided", "teacher_self": "teacher", "teacher": "teacher",
}  # fmt: skip


@dataclass(frozen=True)
class StageSamples:
    """One sampling stage's graded samples for a problem (None: the stage did not run for it).
    `behaviour_prompt`: the prompt its samples were drawn for, kept on their records when it
    is not the plain prompt they train on (a teacher's, in its own format)."""

    stage: str
    graded: Graded | None
    behaviour_prompt: str | None = None


def rewrite_stages(
    problem: Problem,
    prompt: str,
    prompt_ids: Sequence[int],
    expert_ids: Sequence[int],
    stages: Sequence[StageSamples],
    cfg: SelectionConfig,
) -> list[Record]:
    """The records to train on for one problem: the first stage (in order) with a correct
    sample keeps its choice (`choose_correct`), each record tagged with the stage's source
    (`STAGE_SOURCES`); none: the expert demonstration.

    `prompt`/`prompt_ids` are the plain prompt (no reference): every record pairs with it,
    since a reference or another model's format is only a crutch at generation time.
    """
    for stage in stages:
        if stage.graded is None:
            continue
        kept = choose_correct(stage.graded, cfg, problem.problem_id, stage.stage)
        if kept:
            source = STAGE_SOURCES[stage.stage]
            return [
                _sample_record(
                    problem,
                    prompt,
                    prompt_ids,
                    s,
                    stage.graded.sampling,
                    source,
                    stage.behaviour_prompt,
                )  # fmt: skip
                for s in kept
            ]
    return [expert_record(problem, prompt, prompt_ids, expert_ids)]


def rewrite(
    problem: Problem,
    prompt: str,
    prompt_ids: Sequence[int],
    expert_ids: Sequence[int],
    self_samples: Graded,
    guided_samples: Graded | None,
    cfg: SelectionConfig,
) -> list[Record]:
    """The paper's stages (`rewrite_stages` with the policy's self and guided samples). Guided
    samples are ignored when a self sample is correct (stage 2 should not have run)."""
    stages = [StageSamples("self", self_samples), StageSamples("guided", guided_samples)]
    return rewrite_stages(problem, prompt, prompt_ids, expert_ids, stages, cfg)
