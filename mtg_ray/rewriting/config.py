"""RewriteConfig: the three-stage rewriting (`rewrite:` in configs/tiny.yaml)."""

from dataclasses import dataclass

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
    shard_size: int = 256
    grading_tasks: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        self.selection()  # validates keep and max_per_problem

    def selection(self) -> SelectionConfig:
        return SelectionConfig(keep=self.keep, max_per_problem=self.max_per_problem, seed=self.seed)

    def sampling(self, n: int) -> SamplingConfig:
        """Stage 1 (n = samples) and stage 2 (n = guided_samples) requests."""
        return SamplingConfig(
            n=n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
        )
