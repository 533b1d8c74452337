"""Choosing a learning rate from validation scores (the `select_lr` procedure's decision)."""

from collections.abc import Mapping, Sequence


def choose_lr(accuracy: Mapping[str, float]) -> float:
    """The lr (keys: lrs as text) with the best validation accuracy; ties go to the smaller lr,
    the more conservative choice."""
    if not accuracy:
        raise ValueError("no validation scores to choose an lr from")
    best = max(accuracy.values())
    return min(float(lr) for lr, acc in accuracy.items() if acc == best)


def grid_edge(grid: Sequence[float], lr: float) -> str:
    """ "lowest" or "highest" when `lr` is that end of `grid` (the best lr may lie beyond it:
    extend the grid), else ""."""
    if len(grid) > 1 and lr == min(grid):
        return "lowest"
    if len(grid) > 1 and lr == max(grid):
        return "highest"
    return ""
