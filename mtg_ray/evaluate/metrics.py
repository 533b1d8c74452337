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


def set_metrics(
    verdicts: Sequence[Sequence[bool]],
    levels: Sequence[str],
    greedy: Sequence[bool] | None = None,
) -> dict[str, float]:
    """One evaluation set's numbers: `avg@n`, `pass@n`, `greedy` (share of problems whose
    greedy response is right, if given), and `avg@n/level_<L>` for each level present (in
    sorted order; none when no problem has a level)."""
    n = len(verdicts[0]) if verdicts else 0
    out = {f"avg@{n}": avg_at_n(verdicts), f"pass@{n}": pass_at_n(verdicts)}
    if greedy is not None:
        if len(greedy) != len(verdicts):
            raise ValueError(f"{len(greedy)} greedy verdicts for {len(verdicts)} problems")
        out["greedy"] = sum(greedy) / len(greedy)
    if len(levels) != len(verdicts):
        raise ValueError(f"{len(levels)} levels for {len(verdicts)} problems")
    for level in sorted({lv for lv in levels if lv}, key=lambda lv: (len(lv), lv)):
        rows = [v for v, lv in zip(verdicts, levels, strict=True) if lv == level]
        out[f"avg@{n}/level_{level}"] = avg_at_n(rows)
    return out
