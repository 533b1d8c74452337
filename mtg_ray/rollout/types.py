"""What the rollout group returns: one `Sample` per generated response; `Graded` puts the
grader's verdicts beside one prompt's samples."""

from dataclasses import dataclass

from mtg_ray.rollout.config import SamplingConfig


@dataclass(frozen=True)
class Sample:
    """A generated response with its provenance.

    logprobs[t] is the behaviour log-prob of token_ids[t] under the engine that sampled it,
    whose weights were `policy_version`.
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str
    policy_version: int

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(
                f"sample has {len(self.token_ids)} tokens but {len(self.logprobs)} log-probs"
            )


@dataclass(frozen=True)
class Graded:
    """One prompt's samples, the grader's verdict on each (correct[i] grades samples[i]), and
    the sampling settings that produced them (kept as provenance in training records)."""

    samples: tuple[Sample, ...]
    correct: tuple[bool, ...]
    sampling: SamplingConfig

    def __post_init__(self) -> None:
        if len(self.samples) != len(self.correct):
            raise ValueError(f"{len(self.samples)} samples but {len(self.correct)} verdicts")

    @property
    def any_correct(self) -> bool:
        return any(self.correct)
