"""Learner metrics: a step's per-record evidence reduced to the numbers that get logged.

Names follow one scheme everywhere (metrics dict, TensorBoard tag): `train/<name>` for scalars,
`is/<source>/<stat>` for importance-weight diagnostics per data source.
"""

from collections.abc import Sequence

import numpy as np

from mtg_ray.rewriting.diagnostics import weight_stats_by_source


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
