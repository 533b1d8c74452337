"""Data rewriting: the three-stage per-problem decision, its prompts, and weight diagnostics."""

from mtg_ray.data import SOURCES
from mtg_ray.rewriting.diagnostics import (
    WeightStats,
    mean_token_logprob,
    sequence_log_ratios,
    weight_stats,
    weight_stats_by_source,
)
from mtg_ray.rewriting.prompts import TEMPLATES, PromptTemplate, get_template
from mtg_ray.rewriting.stages import (
    Sample,
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
    "Sample",
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
