"""Objectives: losses as pure tensor functions, registered by name (sft, dft, is, is_dft), and
the methods that pair them with training data."""

from mtg_ray.objectives import losses as _losses  # noqa: F401  (registers the objectives)
from mtg_ray.objectives.config import ObjectiveConfig
from mtg_ray.objectives.importance import (
    importance_weights,
    masked_mean,
    normalizer_terms,
    sequence_log_ratio,
    token_log_ratio,
)
from mtg_ray.objectives.logprobs import IGNORE_INDEX, token_logprobs
from mtg_ray.objectives.losses import ObjectiveOutput, reweigh_expert_rows
from mtg_ray.objectives.methods import METHODS, ONLINE_METHODS, PAPER_METHODS, Method
from mtg_ray.objectives.registry import (
    EXPERT_ROWS,
    Objective,
    get_objective,
    list_objectives,
    register_objective,
)

OBJECTIVE_NAMES = tuple(list_objectives())


def compute_objective(
    objective: Objective, logprobs, mask, behaviour_logprobs, has_behaviour, normalizer=None,
    standin_logprobs=None, has_standin=None,
):  # fmt: skip
    """Run `objective` on one batch (`normalizer`: see `importance_weights`), its expert rows
    weighed as `objective.expert_rows` says (`reweigh_expert_rows`; the stand-in log-probs are
    read for `ratio`)."""
    fn = get_objective(objective.name)
    out = fn(logprobs, mask, behaviour_logprobs, has_behaviour, objective.config, normalizer)
    return reweigh_expert_rows(
        out, logprobs, mask, has_behaviour, objective.expert_rows, standin_logprobs,
        has_standin, objective.config.is_clip,
    )  # fmt: skip


__all__ = [
    "EXPERT_ROWS",
    "IGNORE_INDEX",
    "METHODS",
    "OBJECTIVE_NAMES",
    "ONLINE_METHODS",
    "PAPER_METHODS",
    "Method",
    "Objective",
    "ObjectiveConfig",
    "ObjectiveOutput",
    "compute_objective",
    "get_objective",
    "importance_weights",
    "list_objectives",
    "masked_mean",
    "normalizer_terms",
    "register_objective",
    "reweigh_expert_rows",
    "sequence_log_ratio",
    "token_log_ratio",
    "token_logprobs",
]
