"""Evaluation: n samples per problem from the rollout group, graded; avg@n and pass@n.

`metrics` is pure; `run` samples from a rollout group it is handed, grades with the grader it
is handed, and writes per-sample results (it imports no Ray).
"""

from mtg_ray.evaluate.metrics import avg_at_n, pass_at_n

__all__ = ["avg_at_n", "pass_at_n"]
