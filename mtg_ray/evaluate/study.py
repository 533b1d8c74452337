"""A multi-seed study's statistics, as pure functions on per-problem accuracies.

A study runs every method once per seed on the same world and test split. For method m, seed s
and test problem p, acc[m][s, p] is the share of p's n samples graded correct, so avg@n of a run
is acc[m][s].mean(). Differences between methods are paired (same seeds, same problems), with two
95% intervals: resampling problems with replacement (`paired_difference`: the test set as the
sample to generalise over, seeds averaged inside each resample), and resampling seeds and
problems together (`two_level_difference`: seed-to-seed variance in the interval too). A
difference holds only when both exclude 0.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mtg_ray.objectives import METHODS, ONLINE_METHODS
from mtg_ray.online.config import CONTROLS


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% bootstrap interval."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def run_means(acc: np.ndarray) -> np.ndarray:
    """(S,) avg@n of each seed's run from (S, P) per-problem accuracies."""
    return acc.mean(axis=1)


def paired_difference(a: np.ndarray, b: np.ndarray, reps: int = 2000, seed: int = 0) -> Interval:
    """Mean of a - b over seeds and problems, with a problem-bootstrap 95% interval.

    a, b: (S, P) per-problem accuracies of two methods on the same seeds and problems."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"need two (seeds, problems) arrays of one shape, got {a.shape}, {b.shape}"
        )
    per_problem = (a - b).mean(axis=0)  # (P,): averaged over seeds
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, per_problem.size, size=(reps, per_problem.size))
    boot = per_problem[draws].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return Interval(float(per_problem.mean()), float(low), float(high))


def two_level_difference(a: np.ndarray, b: np.ndarray, reps: int = 2000, seed: int = 0) -> Interval:
    """Mean of a - b over seeds and problems, with a two-level bootstrap 95% interval: each
    resample draws the seeds with replacement and the problems with replacement, one draw of
    problems for every drawn seed (the seeds share the test problems: a fresh draw per seed
    would divide the problems' spread by the number of seeds), so the interval holds
    seed-to-seed variance as well as the test split's.

    a, b: (S, P) per-problem accuracies of two methods on the same seeds and problems."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"need two (seeds, problems) arrays of one shape, got {a.shape}, {b.shape}"
        )
    diff = a - b  # (S, P)
    n_seeds, n_problems = diff.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(reps, n_seeds))
    problems = rng.integers(0, n_problems, size=(reps, n_problems))
    boot = diff[seeds[:, :, None], problems[:, None, :]].mean(axis=(1, 2))
    low, high = np.percentile(boot, [2.5, 97.5])
    return Interval(float(diff.mean()), float(low), float(high))


def method_table(acc: Mapping[str, np.ndarray]) -> list[str]:
    """Markdown rows: method | mean avg@n over seeds | std over seeds | per-seed values."""
    lines = ["| method | mean | std over seeds | per seed |", "|---|---|---|---|"]
    for method, a in acc.items():
        runs = run_means(a)
        std = runs.std(ddof=1) if runs.size > 1 else 0.0
        per_seed = ", ".join(f"{x:.4f}" for x in runs)
        lines.append(f"| {method} | {runs.mean():.4f} | {std:.4f} | {per_seed} |")
    return lines


def difference_table(
    acc: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]], reps: int = 2000
) -> list[str]:
    """Markdown rows: a - b | mean difference with its problem-bootstrap 95% interval | its
    two-level (seeds, then problems) 95% interval | whether both exclude 0 (a rule holds only
    then)."""
    lines = [
        "| difference | mean [problem bootstrap 95%] | two-level 95% | both exclude 0 |",
        "|---|---|---|---|",
    ]
    for a, b in pairs:
        if a in acc and b in acc:
            ci = paired_difference(acc[a], acc[b], reps)
            both = two_level_difference(acc[a], acc[b], reps)
            sign = "yes" if excludes_zero(ci) and excludes_zero(both) else "no"
            lines.append(f"| {a} - {b} | {ci} | [{both.low:+.4f}, {both.high:+.4f}] | {sign} |")
    return lines


def excludes_zero(ci: Interval) -> bool:
    return ci.low > 0 or ci.high < 0


def level_difference_table(
    acc: Mapping[str, np.ndarray], levels: Sequence[str], pairs: Sequence[tuple[str, str]],
    reps: int = 2000,
) -> list[str]:  # fmt: skip
    """Markdown rows: a - b | per level, the paired difference on that level's problems with
    its 95% problem-bootstrap interval (`*`: the interval excludes 0). `levels`: each
    problem's level, in the columns' order of `acc`'s arrays ("" for none)."""
    columns = level_columns(levels)
    names = list(columns)
    lines = [
        "| difference | " + " | ".join(f"level {lv}" for lv in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for a, b in pairs:
        if a in acc and b in acc:
            cells = []
            for lv in names:
                ci = paired_difference(acc[a][:, columns[lv]], acc[b][:, columns[lv]], reps)
                cells.append(f"{ci}{' *' if ci.low > 0 or ci.high < 0 else ''}")
            lines.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    return lines


def offline_of(name: str) -> str:
    """The offline twin of an online run's name: the method it trains with the same expert-row
    rule (`online_dr_sft_overlap` -> dr_sft, `refresh_dr_is_dft` -> dr_is_dft,
    `online_dr_dft_expert_drop` -> dr_dft_expert_drop); any other name is its own."""
    method = trained_method(name)
    twin = f"{method}_expert_drop"
    return twin if "_expert_drop" in name and twin in METHODS else method


def trained_method(name: str) -> str:
    """The method an online run's name trains (`online_dr_dft_expert_drop` -> dr_dft); any
    other name is its own."""
    design, _, rest = name.partition("_")
    if design not in ("online", "rounds", "refresh"):
        return name
    methods = sorted((m for m in ONLINE_METHODS if rest == m or rest.startswith(m + "_")), key=len)
    return methods[-1] if methods else name


def trains_offline_round(name: str) -> bool:
    """Whether online run `name` trains records of the offline round (`..._anchor`,
    `refresh_...`), so that round's rewriting is part of what its data cost."""
    parts = name.split("_")
    return parts[0] == "refresh" or (parts[0] in ("online", "rounds") and "anchor" in parts)


def data_costs(
    costs: Mapping[str, Sequence[tuple[float, float]]],
) -> dict[str, list[tuple[float, float]]]:
    """Each run's per-seed (samples drawn, seconds rewriting), a run that trains the offline
    round's records charged that round too (its offline method's cost, seed by seed)."""
    out = {m: [tuple(c) for c in per_seed] for m, per_seed in costs.items()}
    for m, per_seed in out.items():
        if trains_offline_round(m) and offline_of(m) in costs:
            rounds = costs[offline_of(m)]
            out[m] = [(a + c, b + d) for (a, b), (c, d) in zip(per_seed, rounds, strict=True)]
    return out


def faithful_table(
    scalars: Mapping[str, Sequence[Mapping[str, Mapping[int, float]]]],
    sources: Sequence[str] = ("self", "guided"),
) -> list[str]:
    """Markdown rows: run | per source, the faithful share of the records its steps trained
    (`online/faithful_<source>`: right answer and right steps), the mean over the steps that
    logged it (a step with no record of the source logs none) of each seed, then over seeds
    (min-max over seeds in parentheses; "-": never logged). A right final answer is not a
    right solution: this is what the answer-graded rewriting let through. Runs that log no
    such share (offline methods; worlds that cannot check steps) get no row."""
    tags = [f"online/faithful_{s}" for s in sources]
    lines = [
        "| run | " + " | ".join(f"faithful {s}" for s in sources) + " |",
        "|---" * (len(sources) + 1) + "|",
    ]
    for name, per_seed in scalars.items():
        if not any(tag in seed for seed in per_seed for tag in tags):
            continue
        cells = []
        for tag in tags:
            logged = [
                [v for v in seed.get(tag, {}).values() if np.isfinite(v)] for seed in per_seed
            ]
            means = [float(np.mean(v)) for v in logged if v]
            cells.append(
                f"{np.mean(means):.3f} ({min(means):.3f}-{max(means):.3f})" if means else "-"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def study_pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """The comparisons a study reports: the paper's (dr_sft - sft, dr_dft - dft), ours against
    the paper's DR rows, each online run against its offline twin (`offline_of`) and the
    method it trains (`online_<m>[_overlap][_<control>]` - `<m>`), each online run but a
    control also against offline DR+DFT (the paper's best, the bar online designs are held
    to), and each against the base model."""
    wanted = [("dr_sft", "sft"), ("dr_dft", "dft"), ("dr_is", "dr_sft"), ("dr_is", "dr_dft")]
    wanted += [(m, offline_of(m)) for m in methods] + [(m, trained_method(m)) for m in methods]
    wanted += [(m, "dr_dft") for m in methods if offline_of(m) not in (m, "dr_dft")
               and not m.endswith(tuple(f"_{c}" for c in CONTROLS[1:]))]  # fmt: skip
    pairs = [(a, b) for a, b in wanted if a != b and a in methods and b in methods]
    return list(dict.fromkeys(pairs)) + [(m, "base") for m in methods]


@dataclass(frozen=True)
class Rule:
    """A pre-registered success rule: every comparison `a - b` (on the problems of its level;
    None: all of them) is above 0, by both 95% intervals (problem bootstrap and two-level)."""

    name: str
    comparisons: tuple[tuple[str, str, str | None], ...]


def rule_table(
    acc: Mapping[str, np.ndarray], levels: Sequence[str], rules: Sequence[Rule],
    reps: int = 2000, failed: Collection[str] = (),
) -> list[str]:  # fmt: skip
    """Markdown rows: rule | comparison | problems | mean [problem bootstrap] | two-level |
    verdict per comparison (above 0: both intervals' lows > 0; below 0: both highs < 0; else
    not shown), then whether the rule holds (every comparison above 0; "not run" when one of
    its runs is missing; "control failed" when one of its runs is in `failed`, the runs whose
    control failed: a bug to fix before comparing). `levels`: each problem's level, in
    `acc`'s column order."""
    lines = [
        "| rule | comparison | problems | mean [problem bootstrap 95%] | two-level 95% | verdict |"
        " rule holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in rules:
        verdicts = []
        rows = []
        for a, b, level in rule.comparisons:
            where = f"level {level}" if level else "all"
            if a not in acc or b not in acc:
                verdicts.append("not run")
                rows.append((f"{a} - {b}", where, "-", "-", "not run"))
                continue
            cols = level_columns(levels)[level] if level else slice(None)
            x, y = acc[a][:, cols], acc[b][:, cols]
            ci, both = paired_difference(x, y, reps), two_level_difference(x, y, reps)
            above, below = min(ci.low, both.low) > 0, max(ci.high, both.high) < 0
            verdict = "above 0" if above else "below 0" if below else "not shown"
            verdicts.append(verdict)
            rows.append((f"{a} - {b}", where, str(ci), f"[{both.low:+.4f}, {both.high:+.4f}]",
                         verdict))  # fmt: skip
        holds = ("not run" if "not run" in verdicts
                 else "yes" if all(v == "above 0" for v in verdicts) else "no")  # fmt: skip
        if {run for a, b, _ in rule.comparisons for run in (a, b)} & set(failed):
            holds = "control failed"
        for i, row in enumerate(rows):
            lines.append(f"| {rule.name if i == 0 else ''} | " + " | ".join(row)
                         + f" | {holds if i == 0 else ''} |")  # fmt: skip
    return lines


def level_means(acc: np.ndarray, levels: Sequence[str]) -> dict[str, np.ndarray]:
    """Level -> (S,) each seed's avg@n on that level's problems, and "all" -> on every problem
    (`acc`: (S, P); `levels`: each problem's level, "" for none)."""
    out = {lv: acc[:, cols].mean(axis=1) for lv, cols in level_columns(levels).items()}
    return {**out, "all": acc.mean(axis=1)}


def level_columns(levels: Sequence[str]) -> dict[str, np.ndarray]:
    """Level -> the boolean mask of its problems (`levels`: each problem's, "" for none), in
    level order (1, 2, ..., 10)."""
    names = sorted({lv for lv in levels if lv}, key=lambda lv: (len(lv), lv))
    return {lv: np.array([x == lv for x in levels]) for lv in names}


def monitor_band(accuracy: float, problems: int, samples: int) -> float:
    """Half-width of the 95% band a monitor score of `accuracy` (avg@`samples` on `problems`
    fixed problems) moves within by sampling alone, for a policy that does not change: 1.96
    binomial standard errors at the pooled accuracy, an upper bound on the per-problem sum."""
    p = min(max(accuracy, 0.0), 1.0)
    return 1.96 * float(np.sqrt(p * (1.0 - p) / (problems * samples)))


def first_round_control(
    rounds: Sequence[Mapping[str, Mapping[int, float]]],
    offline: Sequence[Mapping[str, Mapping[int, float]]], n_rounds: int, batch: int,
) -> tuple[list[float], float, float]:  # fmt: skip
    """The control of a rounds run against its offline round: its first round is rewritten by
    the base policy, as the offline round is, so its expert share must match the offline
    round's. `rounds`, `offline`: each seed's kept scalars (`online/expert_fraction` per step;
    `rewrite/expert_share` and `rewrite/problems` at step 0). Returns each seed's difference
    (first round's share less the offline round's), their mean, and the half-width of the 95%
    band the mean stays within by sampling alone (binomial, at the pooled share, for one
    round's `batch` x steps problems against the offline round's, over the seeds). The first
    round is its steps up to ceil(steps / `n_rounds`), by step number (a step whose scalars
    were lost to a crash is missing, not replaced by the next round's)."""
    diffs, variances = [], []
    for run, round_ in zip(rounds, offline, strict=True):
        shares = run["online/expert_fraction"]
        per = -(-max(shares) // n_rounds)  # steps log at their cursor: 1 .. steps
        first = [s for s in sorted(shares) if s <= per]
        share = float(np.mean([shares[s] for s in first]))
        base, problems = round_["rewrite/expert_share"][0], round_["rewrite/problems"][0]
        p = (share + base) / 2
        diffs.append(share - base)
        variances.append(p * (1 - p) * (1 / (len(first) * batch) + 1 / problems))
    half = 1.96 * float(np.sqrt(np.sum(variances))) / len(diffs)
    return diffs, float(np.mean(diffs)), half
