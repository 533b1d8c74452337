"""RewriteConfig: the three-stage rewriting (`rewrite:` in configs/tiny.yaml)."""

from dataclasses import dataclass

from mtg_ray.checks import ConfigError, at_least, require
from mtg_ray.rewriting.stages import SelectionConfig
from mtg_ray.rollout import SamplingConfig


@dataclass(frozen=True)
class RewriteConfig:
    """samples / guided_samples: K per problem in stages 1 and 2, sampled at temperature /
    top_p, up to max_tokens each. keep: one | all | up_to (max_per_problem) correct samples per
    problem. shard_size: problems per output shard (the unit of resume). grading_tasks: parallel
    grading tasks. seed: selection of the kept samples."""

    samples: int = 4
    guided_samples: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 320
    keep: str = "one"
    max_per_problem: int = 1
    shard_size: int = 1000
    grading_tasks: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        at_least("rewrite.samples", self.samples, 1)
        at_least("rewrite.guided_samples", self.guided_samples, 0)
        at_least("rewrite.temperature", self.temperature, 0)
        require(0 < self.top_p <= 1, "rewrite.top_p", self.top_p, "must be in (0, 1]")
        at_least("rewrite.max_tokens", self.max_tokens, 1)
        at_least("rewrite.shard_size", self.shard_size, 1)
        at_least("rewrite.grading_tasks", self.grading_tasks, 1)
        try:
            self.selection()  # validates keep and max_per_problem
        except ValueError as e:
            raise ConfigError(f"rewrite.keep={self.keep!r}, max_per_problem: {e}") from None

    def selection(self) -> SelectionConfig:
        return SelectionConfig(keep=self.keep, max_per_problem=self.max_per_problem, seed=self.seed)

    def sampling(self, n: int) -> SamplingConfig:
        """Stage 1 (n = samples) and stage 2 (n = guided_samples) requests."""
        return SamplingConfig(
            n=n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
        )
