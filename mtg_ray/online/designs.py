"""The online designs' decisions as pure functions (`online.design`, `online.expert_rows`,
`online.anchor_share`): which steps form a round, which offline records anchor a step, when a
record has drifted, and where a retried problem's record goes."""

import math
from collections.abc import Sequence

import numpy as np

from mtg_ray.data import Record


def round_bounds(step: int, steps: int, rounds: int) -> tuple[int, int]:
    """[first, end) of the round holding `step`: `rounds` rounds of ceil(steps / rounds) steps
    (the last one may be shorter)."""
    per = -(-steps // rounds)
    first = step // per * per
    return first, min(first + per, steps)


def anchor_count(per_step: int, share: float) -> int:
    """How many of a step's `per_step` records come from the offline round."""
    return round(per_step * share)


def anchor_indices(step: int, count: int, num_records: int, seed: int) -> list[int]:
    """The offline records anchoring `step` (`count` of them): consecutive slices of seeded
    permutations of the records, one permutation per pass, so no record repeats within a pass."""
    out = []
    for k in range(step * count, (step + 1) * count):
        epoch, at = divmod(k, num_records)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(num_records)[at]))
    return out


def mean_logprob(logprobs: Sequence[float]) -> float:
    """Mean per-token log-prob of a response (0 for an empty one)."""
    return float(np.mean(logprobs)) if len(logprobs) else 0.0


def drifted(live_mean: float, behaviour_mean: float, band: float) -> bool:
    """Whether a record's per-token geometric-mean weight pi_theta / pi_behaviour (from mean
    log-probs over the same tokens) left [1 / band, band]."""
    return abs(live_mean - behaviour_mean) > math.log(band)


def place_retries(
    records: Sequence[Record], retried: Sequence[Record]
) -> tuple[list[Record], dict[str, int]]:
    """`online.expert_rows=drop`: the step's `records` with their expert rows (which would
    train nothing) replaced, in order, by the sampled records of problems that return this
    step. Counts: retry_placed, retry_failed (fell back to the expert again: dropped for good),
    retry_unplaced (no expert row left to take)."""
    ready = [r for r in retried if r.source != "expert"]
    out, placed = [], 0
    for rec in records:
        if rec.source == "expert" and placed < len(ready):
            out.append(ready[placed])
            placed += 1
        else:
            out.append(rec)
    counts = {
        "retry_placed": placed,
        "retry_failed": len(retried) - len(ready),
        "retry_unplaced": len(ready) - placed,
    }
    return out, counts
