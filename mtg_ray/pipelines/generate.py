"""Sample with the rollout group, then grade every sample: the one step rewriting and
evaluation share."""

from collections.abc import Sequence

from mtg_ray.grading import Grader
from mtg_ray.pipelines.protocols import Rollout
from mtg_ray.rollout import Graded, SamplingConfig


def generate_and_grade(
    rollout: Rollout,
    prompt_ids: list[list[int]],
    answers: Sequence[str],
    sampling: SamplingConfig,
    grader: Grader,
) -> list[Graded]:
    """`sampling.n` samples per prompt, each graded against the prompt's reference answer; one
    grader call for the whole batch."""
    samples = rollout.generate(prompt_ids, sampling)
    pairs = [(s.text, a) for a, ss in zip(answers, samples, strict=True) for s in ss]
    verdicts = iter(grader(pairs))
    return [Graded(tuple(ss), tuple(next(verdicts) for _ in ss), sampling) for ss in samples]
