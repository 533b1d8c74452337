"""EvalConfig: how the evaluate job samples (`eval:` in configs/tiny.yaml)."""

from dataclasses import dataclass

from mtg_ray.checks import at_least, require
from mtg_ray.rollout import SamplingConfig


@dataclass(frozen=True)
class EvalConfig:
    """n samples per problem at temperature / top_p, up to max_tokens each; reports avg@n and
    pass@n per benchmark, avg@n per difficulty level where the set has levels, and, with
    `greedy`, the accuracy of one greedy (temperature 0) response per problem beside them."""

    n: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 320
    greedy: bool = True

    def __post_init__(self) -> None:
        at_least("eval.n", self.n, 1)
        at_least("eval.temperature", self.temperature, 0)
        require(0 < self.top_p <= 1, "eval.top_p", self.top_p, "must be in (0, 1]")
        at_least("eval.max_tokens", self.max_tokens, 1)

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
        )

    def greedy_sampling(self) -> SamplingConfig:
        return SamplingConfig(n=1, temperature=0.0, max_tokens=self.max_tokens)
