"""Rollout: configuration, sample types and request dispatch for the vLLM rollout group.

Pure code; the engines themselves are Ray actors in `actors.rollout`.
"""

from mtg_ray.rollout.config import RolloutConfig, SamplingConfig
from mtg_ray.rollout.dispatch import merge_in_order, split_evenly
from mtg_ray.rollout.types import Sample

__all__ = ["RolloutConfig", "Sample", "SamplingConfig", "merge_in_order", "split_evenly"]
