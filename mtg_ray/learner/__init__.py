"""The learner's pure parts: config, lr schedule, batching, the forward pass and its metrics.

The DeepSpeed engine and the Ray actors that drive it live in `actors/learner.py`.
"""

from mtg_ray.learner.batch import Batch, collate, micro_batches, shard
from mtg_ray.learner.config import LearnerConfig, deepspeed_config
from mtg_ray.learner.metrics import importance_metrics
from mtg_ray.learner.schedule import lr_multiplier
from mtg_ray.learner.step import ForwardOutput, forward_objective

__all__ = [
    "Batch",
    "ForwardOutput",
    "LearnerConfig",
    "collate",
    "deepspeed_config",
    "forward_objective",
    "importance_metrics",
    "lr_multiplier",
    "micro_batches",
    "shard",
]
