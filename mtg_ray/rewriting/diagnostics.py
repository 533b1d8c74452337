"""Importance-weight diagnostics for a set of records: how far the data is from a policy.

Works on sequence-level log-ratios log w = mean_t(log pi_theta(y_t) - log pi_beta(y_t)), the
geometric-mean weight the objectives use, so the numbers read the same in the rewrite summary,
the learner's metrics and TensorBoard.
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

LOG_RATIO_BOUND = 20.0


@dataclass(frozen=True)
class WeightStats:
    """Summary of importance weights w_i = exp(log_ratio_i).

    ess is Kish's effective sample size (sum w)^2 / sum w^2; ess_fraction = ess / count, 1.0 when
    all weights are equal. clipped_fraction is the share of weights above the truncation c.
    """

    count: int
    mean: float
    variance: float
    ess: float
    ess_fraction: float
    max: float
    clipped_fraction: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items()}


def sequence_log_ratios(
    target_logprobs: Sequence[Sequence[float]], behaviour_logprobs: Sequence[Sequence[float]]
) -> np.ndarray:
    """Per-record mean over tokens of log pi_target - log pi_behaviour; shape (N,)."""
    if len(target_logprobs) != len(behaviour_logprobs):
        raise ValueError(
            f"{len(target_logprobs)} target rows but {len(behaviour_logprobs)} behaviour rows"
        )
    out = np.zeros(len(target_logprobs), dtype=np.float64)
    for i, (t, b) in enumerate(zip(target_logprobs, behaviour_logprobs, strict=True)):
        t_arr, b_arr = np.asarray(t, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if t_arr.shape != b_arr.shape:
            raise ValueError(f"row {i}: {t_arr.size} target log-probs, {b_arr.size} behaviour")
        out[i] = float(np.mean(t_arr - b_arr)) if t_arr.size else 0.0
    return out


def mean_token_logprob(per_response: Sequence[Sequence[float]]) -> float:
    """Mean log-prob per token over all tokens of all responses (tokens weighted equally)."""
    flat = [x for lps in per_response for x in lps]
    return float(np.mean(flat)) if flat else float("nan")


def weight_stats(log_ratios: Sequence[float] | np.ndarray, clip: float = 2.0) -> WeightStats:
    """Diagnostics of w = exp(log_ratio) (log-ratios clamped to +-20 so nothing overflows)."""
    lr = np.asarray(log_ratios, dtype=np.float64).reshape(-1)
    if lr.size == 0:
        nan = float("nan")
        return WeightStats(0, nan, nan, 0.0, nan, nan, nan)
    if not np.all(np.isfinite(lr)):
        raise ValueError("log-ratios must be finite")
    w = np.exp(np.clip(lr, -LOG_RATIO_BOUND, LOG_RATIO_BOUND))
    ess = float(w.sum() ** 2 / np.square(w).sum())
    return WeightStats(
        count=int(w.size),
        mean=float(w.mean()),
        variance=float(w.var()),
        ess=ess,
        ess_fraction=ess / w.size,
        max=float(w.max()),
        clipped_fraction=float(np.mean(w > clip)),
    )


def weight_stats_by_source(
    sources: Sequence[str], log_ratios: Sequence[float] | np.ndarray, clip: float = 2.0
) -> Mapping[str, WeightStats]:
    """`weight_stats` per data source ("self", "guided", "expert") plus "all"."""
    lr = np.asarray(log_ratios, dtype=np.float64).reshape(-1)
    if len(sources) != lr.size:
        raise ValueError(f"{len(sources)} sources but {lr.size} log-ratios")
    src = np.asarray(sources)
    stats = {s: weight_stats(lr[src == s], clip) for s in sorted(set(sources))}
    stats["all"] = weight_stats(lr, clip)
    return stats
