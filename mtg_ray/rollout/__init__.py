"""Rollout: configuration, sample types, request dispatch and the vLLM engine.

`engine.RolloutEngine` holds one vLLM engine in the calling process; the Ray actors that host
engines are `actors.rollout`, and the group that spreads requests over them is
`mtg_ray.pipelines.groups.rollout_group`.
"""

from mtg_ray.rollout.config import RolloutConfig, SamplingConfig
from mtg_ray.rollout.dispatch import merge_in_order, split_by_weight
from mtg_ray.rollout.types import Graded, Sample

__all__ = [
    "Graded",
    "RolloutConfig",
    "Sample",
    "SamplingConfig",
    "merge_in_order",
    "split_by_weight",
]
