"""Evaluation: n samples per problem from the rollout group, graded; avg@n and pass@n.

`metrics` is pure; `run` drives the rollout group (Ray) and writes per-sample results.
"""

from mtg_ray.evaluate.metrics import avg_at_n, pass_at_n

__all__ = ["avg_at_n", "pass_at_n"]
