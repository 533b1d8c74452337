"""Spreading a batch over engines and putting the answers back in order (pure)."""

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def split_evenly(n_items: int, n_parts: int) -> list[range]:
    """Contiguous index ranges covering 0..n_items, sizes differing by at most one."""
    if n_parts < 1:
        raise ValueError(f"need at least one part, got {n_parts}")
    base, extra = divmod(n_items, n_parts)
    out, start = [], 0
    for i in range(n_parts):
        size = base + (1 if i < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


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
