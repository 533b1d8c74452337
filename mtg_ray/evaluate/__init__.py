"""Evaluation's pure parts: its config, avg@n / pass@n, and the results report (table, plot,
`demo:` line). The sampling and grading driver is `mtg_ray.pipelines.jobs.evaluate`."""

from mtg_ray.evaluate.config import EvalConfig
from mtg_ray.evaluate.metrics import avg_at_n, pass_at_n, set_metrics

__all__ = ["EvalConfig", "avg_at_n", "pass_at_n", "set_metrics"]
