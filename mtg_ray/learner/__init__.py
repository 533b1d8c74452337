"""The learner: config, schedules, batching, the forward pass, metrics, and one rank.

`rank.LearnerRank` drives one DeepSpeed engine (a plain class); the Ray actor that hosts it is
`actors.learner`, the group of ranks `mtg_ray.pipelines.groups.learner_group`.
"""

from mtg_ray.learner.batch import (
    Batch,
    by_length,
    collate,
    micro_batches,
    response_tokens,
    shard,
)
from mtg_ray.learner.config import (
    LearnerConfig,
    TrainConfig,
    deepspeed_config,
    group_changes,
)
from mtg_ray.learner.metrics import StepResult, importance_metrics, reduce_ranks
from mtg_ray.learner.schedule import batch_schedule, lr_multiplier, num_steps
from mtg_ray.learner.step import ForwardOutput, forward_objective

__all__ = [
    "by_length",
    "Batch",
    "ForwardOutput",
    "LearnerConfig",
    "StepResult",
    "TrainConfig",
    "batch_schedule",
    "collate",
    "deepspeed_config",
    "forward_objective",
    "group_changes",
    "importance_metrics",
    "lr_multiplier",
    "micro_batches",
    "num_steps",
    "reduce_ranks",
    "response_tokens",
    "shard",
]
