"""Objectives: losses as pure tensor functions, registered by name (sft, dft, is, dr_dft)."""

from mtg_ray.objectives import losses as _losses  # noqa: F401  (registers the objectives)
from mtg_ray.objectives.config import OBJECTIVE_NAMES, ObjectiveConfig
from mtg_ray.objectives.importance import (
    importance_weights,
    masked_mean,
    sequence_log_ratio,
    token_log_ratio,
)
from mtg_ray.objectives.logprobs import IGNORE_INDEX, token_logprobs
from mtg_ray.objectives.losses import ObjectiveOutput
from mtg_ray.objectives.registry import get_objective, list_objectives, register_objective


def compute_objective(cfg: ObjectiveConfig, logprobs, mask, behaviour_logprobs, has_behaviour):
    """Run the objective `cfg.name` on one batch."""
    return get_objective(cfg.name)(logprobs, mask, behaviour_logprobs, has_behaviour, cfg)


__all__ = [
    "IGNORE_INDEX",
    "OBJECTIVE_NAMES",
    "ObjectiveConfig",
    "ObjectiveOutput",
    "compute_objective",
    "get_objective",
    "importance_weights",
    "list_objectives",
    "masked_mean",
    "register_objective",
    "sequence_log_ratio",
    "token_log_ratio",
    "token_logprobs",
]
