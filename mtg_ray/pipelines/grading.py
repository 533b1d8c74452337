"""Grading as Ray tasks: chunks of (response, reference) pairs graded in parallel processes.

Each task runs `mtg_ray.grading.grade_many`, whose own killable subprocess bounds every pair, so
a hostile answer costs its chunk one timeout and never stalls the driver or the engines.
"""

from collections.abc import Sequence

import ray

from mtg_ray.grading import grade_many


def grade_parallel(pairs: Sequence[tuple[str, str]], tasks: int) -> list[bool]:
    """Verdicts for `pairs`, in order, from up to `tasks` Ray tasks."""
    if not pairs:
        return []
    tasks = max(1, min(tasks, len(pairs)))
    size = -(-len(pairs) // tasks)
    remote = ray.remote(num_cpus=0)(grade_many)
    refs = [remote.remote(list(pairs[i : i + size])) for i in range(0, len(pairs), size)]
    return [v for chunk in ray.get(refs) for v in chunk]
