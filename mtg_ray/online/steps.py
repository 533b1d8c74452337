"""The online loop's per-step data, as pure functions: which problems each step rewrites, and
what a step's batch reports (`online/*` metrics)."""

import math
from collections.abc import Sequence

import numpy as np

from mtg_ray.data import SOURCES, Record
from mtg_ray.learner.schedule import batch_schedule
from mtg_ray.online.staleness import batch_lag


def problem_schedule(num_problems: int, per_step: int, steps: int, seed: int) -> list[list[int]]:
    """Problem indices of every step: shuffled passes over the problems, as many as needed."""
    epochs = math.ceil(steps / max(1, num_problems // per_step))
    return batch_schedule(num_problems, per_step, epochs, seed, steps)


def step_metrics(step: int, records: Sequence[Record]) -> dict[str, float]:
    """`online/<source>_fraction` of the batch trained at `step`, and its policy lag
    `online/policy_lag_{mean,max}` (expert records have no sampling policy)."""
    n = max(1, len(records))
    out = {f"online/{s}_fraction": sum(r.source == s for r in records) / n for s in SOURCES}
    lags = batch_lag(step, records)
    out["online/policy_lag_mean"] = float(np.mean(lags)) if lags else 0.0
    out["online/policy_lag_max"] = float(max(lags, default=0))
    return out
