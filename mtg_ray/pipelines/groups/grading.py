"""Grading as Ray tasks: chunks of (response, reference) pairs graded in parallel processes.

Each task runs `mtg_ray.grading.grade_many`, whose extraction is linear and capped and whose
killable subprocess bounds every symbolic check; on top, the wait for each task has a deadline
(the sandbox's start-up plus the per-pair timeout for every pair of the chunk): a task still
running then is cancelled and its pairs are graded wrong, counted and logged, never retried. So
a hostile answer never stalls the driver or the engines.
"""

import logging
from collections.abc import Sequence

import ray

from mtg_ray.grading import DEFAULT_TIMEOUT, grade_many
from mtg_ray.grading.sandbox import STARTUP_TIMEOUT

log = logging.getLogger(__name__)


def deadline_s(pairs: int, per_pair_s: float = DEFAULT_TIMEOUT) -> float:
    """How long one task grading `pairs` pairs may take at most."""
    return STARTUP_TIMEOUT + 2 * per_pair_s * pairs + 30.0


def grade_parallel(
    pairs: Sequence[tuple[str, str]], tasks: int, deadline: float | None = None
) -> list[bool]:
    """Verdicts for `pairs`, in order, from up to `tasks` Ray tasks; a task that outlives
    `deadline` seconds (default: `deadline_s` of its chunk) gives False for its pairs."""
    if not pairs:
        return []
    tasks = max(1, min(tasks, len(pairs)))
    size = -(-len(pairs) // tasks)
    # Retries are for lost workers and nodes only (an exception is a verdict error, not
    # retried); the deadline below bounds the wait, retries included.
    remote = ray.remote(num_cpus=0, max_retries=2)(grade_many)
    chunks = [list(pairs[i : i + size]) for i in range(0, len(pairs), size)]
    refs = [remote.remote(chunk) for chunk in chunks]
    timeout = deadline if deadline is not None else deadline_s(size)
    done, late = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    verdicts = []
    for ref, chunk in zip(refs, chunks, strict=True):
        if ref in late:
            ray.cancel(ref, force=True)
            verdicts += [False] * len(chunk)
        else:
            verdicts += ray.get(ref)
    if late:
        timed_out = sum(len(c) for r, c in zip(refs, chunks, strict=True) if r in late)
        log.warning(
            "grading: %d of %d responses graded wrong after the %.0f s deadline",
            timed_out, len(pairs), timeout,
        )  # fmt: skip
    return verdicts
