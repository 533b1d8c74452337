"""avg@n and pass@n from per-sample verdicts (the Qwen2.5-Math toolkit's metrics)."""

from collections.abc import Sequence


def avg_at_n(verdicts: Sequence[Sequence[bool]]) -> float:
    """Mean accuracy over all n samples of all problems (the paper's avg@16)."""
    flat = [v for per_problem in verdicts for v in per_problem]
    if not flat:
        raise ValueError("no samples to score")
    return sum(flat) / len(flat)


def pass_at_n(verdicts: Sequence[Sequence[bool]]) -> float:
    """Share of problems with at least one correct sample among their n."""
    if not verdicts:
        raise ValueError("no problems to score")
    return sum(any(v) for v in verdicts) / len(verdicts)
