"""Spreading a batch over engines and putting the answers back in order (pure)."""

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def split_by_weight(weights: Sequence[float], n_parts: int) -> list[range]:
    """Contiguous index ranges covering every item once, cut where the running weight first
    reaches k/n_parts of the total, so each part carries about an equal share of the work (equal
    weights: sizes differing by at most one)."""
    if n_parts < 1:
        raise ValueError(f"need at least one part, got {n_parts}")
    total = float(sum(weights))
    cuts, running = [0], 0.0
    for i, weight in enumerate(weights):
        running += weight
        while len(cuts) < n_parts and running >= total * len(cuts) / n_parts:
            cuts.append(i + 1)
    cuts += [len(weights)] * (n_parts + 1 - len(cuts))
    return [range(cuts[k], cuts[k + 1]) for k in range(n_parts)]


def merge_in_order(parts: Sequence[range], results: Sequence[Sequence[T]], n_items: int) -> list[T]:
    """Inverse of the split: results[i] answers parts[i]; each item exactly once, in order."""
    out: list[T | None] = [None] * n_items
    seen = [False] * n_items
    for part, answers in zip(parts, results, strict=True):
        if len(answers) != len(part):
            raise ValueError(f"part {part} got {len(answers)} answers")
        for index, answer in zip(part, answers, strict=True):
            if seen[index]:
                raise ValueError(f"item {index} answered twice")
            seen[index] = True
            out[index] = answer
    missing = [i for i, s in enumerate(seen) if not s]
    if missing:
        raise ValueError(f"items never answered: {missing[:10]}")
    return out  # type: ignore[return-value]
