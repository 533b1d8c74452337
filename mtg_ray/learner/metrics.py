"""Learner metrics: a step's per-record evidence reduced to the numbers that get logged.

Names follow one scheme everywhere (metrics dict, TensorBoard tag): `train/<name>` for scalars,
`is/<source>/<stat>` for importance-weight diagnostics per data source.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtg_ray.data import SOURCES
from mtg_ray.rewriting.diagnostics import weight_stats_by_source


@dataclass(frozen=True)
class StepResult:
    """One optimizer step of the learner group.

    scalars: `train/{loss,grad_norm,lr,tokens_per_s,step_seconds,clipped_fraction,truncated,
    logprob_mean}` (loss: the token mean, whatever the reduction), `train/is_normalizer` (when
    weights self-normalise), `train/token_share/<source>` and `train/loss_share/<source>` (each
    source's share of the response tokens and of the loss as `learner.loss_reduction` weighs
    it) and `is/<source>/<stat>`. log_ratios: the finite per-record mean token log-ratios
    log pi_theta - log pi_behaviour (the `is/log_ratio` histogram)."""

    scalars: dict[str, float]
    log_ratios: tuple[float, ...]


def importance_metrics(
    sources: Sequence[str], log_ratios: Sequence[float], clip: float
) -> dict[str, float]:
    """`is/<source>/{count,mean,variance,ess,ess_fraction,max,clipped_fraction}` for the records
    that carry behaviour log-probs (expert records have no behaviour policy)."""
    lr = np.asarray(log_ratios, dtype=np.float64)
    keep = ~np.isnan(lr)
    kept_sources = [s for s, k in zip(sources, keep, strict=True) if k]
    if not kept_sources:
        return {}
    out: dict[str, float] = {}
    for source, stats in weight_stats_by_source(kept_sources, lr[keep], clip).items():
        out.update(stats.as_dict(prefix=f"is/{source}/"))
    return out


def source_shares(parts: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """`train/token_share/<source>` and `train/loss_share/<source>` over the ranks' reports,
    for every source of SOURCES (0 for one absent from the batch)."""
    out: dict[str, float] = {}
    for kind, key in (("token", "tokens_by_source"), ("loss", "loss_by_source")):
        totals = {s: sum(p[key].get(s, 0) for p in parts) for s in SOURCES}
        whole = sum(totals.values())
        for source, value in totals.items():
            out[f"train/{kind}_share/{source}"] = value / whole if whole else 0.0
    return out


def reduce_ranks(
    parts: Sequence[Mapping[str, Any]], response_tokens: int, seconds: float, clip: float
) -> StepResult:
    """Combine the ranks' step reports (`LearnerRank.train_step`) into one StepResult; rank 0's
    grad norm and lr stand for all (they are global)."""
    sources = [s for p in parts for s in p["sources"]]
    log_ratios = [x for p in parts for x in p["log_ratios"]]
    scalars = {
        "train/loss": sum(p["loss_sum"] for p in parts) / response_tokens,
        "train/grad_norm": parts[0]["grad_norm"],
        "train/lr": parts[0]["lr"],
        "train/tokens_per_s": sum(p["tokens"] for p in parts) / seconds,
        "train/step_seconds": seconds,
        "train/clipped_fraction": sum(p["clipped_tokens"] for p in parts) / response_tokens,
        "train/truncated": float(sum(p["truncated"] for p in parts)),
        "train/logprob_mean": float(np.mean([x for p in parts for x in p["logprob_means"]])),
    }
    scalars.update(source_shares(parts))
    if parts[0].get("normalizer") is not None:  # the self-normalisation constant used
        scalars["train/is_normalizer"] = parts[0]["normalizer"]
    scalars.update(importance_metrics(sources, log_ratios, clip))
    return StepResult(scalars, tuple(x for x in log_ratios if x == x))
