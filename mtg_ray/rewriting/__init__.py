"""Data rewriting: the three-stage per-problem decision, its prompts, config, weight
diagnostics and the summary of a rewritten data set."""

from mtg_ray.data import SOURCES
from mtg_ray.rewriting.config import RewriteConfig
from mtg_ray.rewriting.diagnostics import (
    WeightStats,
    mean_token_logprob,
    sequence_log_ratios,
    weight_stats,
    weight_stats_by_source,
)
from mtg_ray.rewriting.prompts import TEMPLATES, PromptTemplate, get_template
from mtg_ray.rewriting.stages import (
    SelectionConfig,
    choose_correct,
    expert_record,
    needs_guided,
    rewrite,
)

__all__ = [
    "SOURCES",
    "TEMPLATES",
    "PromptTemplate",
    "RewriteConfig",
    "SelectionConfig",
    "WeightStats",
    "choose_correct",
    "expert_record",
    "get_template",
    "needs_guided",
    "rewrite",
    "mean_token_logprob",
    "sequence_log_ratios",
    "weight_stats",
    "weight_stats_by_source",
]
