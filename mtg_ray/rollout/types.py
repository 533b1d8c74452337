"""What the rollout group returns: one `Sample` per generated response."""

from dataclasses import dataclass


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
