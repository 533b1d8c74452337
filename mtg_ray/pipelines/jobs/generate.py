"""Sample with the rollout group, then grade every sample: the one step rewriting and
evaluation share."""

from collections.abc import Sequence

from mtg_ray.grading import Grader
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.rollout import Graded, SamplingConfig
from mtg_ray.rollout.config import per_prompt


def generate_and_grade(
    rollout: Rollout,
    prompt_ids: list[list[int]],
    answers: Sequence[str],
    sampling: SamplingConfig | Sequence[SamplingConfig],
    grader: Grader,
) -> list[Graded]:
    """`n` samples per prompt (one sampling config for all prompts, or one per prompt: one
    generate call either way), each graded against the prompt's reference answer; one grader
    call for the whole batch."""
    configs = per_prompt(sampling, len(prompt_ids))
    samples = rollout.generate(prompt_ids, configs)
    pairs = [(s.text, a) for a, ss in zip(answers, samples, strict=True) for s in ss]
    verdicts = iter(grader(pairs))
    return [
        Graded(tuple(ss), tuple(next(verdicts) for _ in ss), c)
        for ss, c in zip(samples, configs, strict=True)
    ]
