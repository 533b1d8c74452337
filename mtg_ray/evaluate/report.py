"""The main job's results: a markdown table, a PNG plot and the one-line `demo:` summary."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtg_ray.data import SOURCES, atomic_path, write_text

DEMO_SUMMARY = ("var_expert", "var_self", "var_guided", "expert_share")
TEACHER_SUMMARY = ("var_teacher", "teacher_fraction")


def headline_accuracy(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> tuple[str, dict[str, float]]:
    """The first evaluation set's name, and each method's first metric (avg@n) on it."""
    main_set = next(iter(next(iter(results.values()))))
    return main_set, {m: next(iter(r[main_set].values())) for m, r in results.items()}


def demo_line(
    accuracy: Mapping[str, float], summary: Mapping[str, float],
    teacher: Mapping[str, float] | None = None,
) -> str:  # fmt: skip
    """`demo: base=.. <method>=.. var_expert=.. var_self=.. var_guided=.. expert_share=..`, runs
    in `accuracy`'s order; the rest from the rewrite summary, and `var_teacher=..
    teacher_fraction=..` from a teacher rewrite's when the run made one."""
    parts = " ".join(f"{m}={a:.4f}" for m, a in accuracy.items())
    gap = " ".join(f"{k}={summary[k]:.4f}" for k in DEMO_SUMMARY)
    if teacher is not None:
        gap += " " + " ".join(f"{k}={teacher[k]:.4f}" for k in TEACHER_SUMMARY)
    return f"demo: {parts} {gap}"


def markdown_table(
    results: Mapping[str, Mapping[str, Mapping[str, float]]], summary: Mapping[str, float],
    teacher: Mapping[str, float] | None = None,
) -> str:  # fmt: skip
    """results[method][benchmark][metric] -> one row per method, one column per metric; then
    the rewrite summary's diagnostics, with a teacher rewrite's (`teacher`) beside them."""
    first = next(iter(results.values()))
    cols = [f"{bench} {metric}" for bench, ms in first.items() for metric in ms]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for method, per_bench in results.items():
        values = [f"{v:.4f}" for ms in per_bench.values() for v in ms.values()]
        lines.append(f"| {method} | " + " | ".join(values) + " |")
    lines += [
        "",
        "| data (under the base policy) | mean token log-prob | normalised weight variance | ESS"
        " fraction |",
        "|---|---|---|---|",
        f"| raw expert | {summary['logprob_expert']:.4f} | {summary['var_expert']:.4f} | - |",
    ]
    rows = [(s, summary) for s in ("self", "guided")]
    rows += [("teacher", teacher)] if teacher is not None else []
    for s, of in rows:
        lines.append(
            f"| rewritten: {s} | {of[f'logprob_{s}']:.4f} | {of[f'var_{s}']:.4f} | "
            f"{of[f'ess_{s}']:.4f} |"
        )
    lines += [
        "",
        "Rewritten data by stage: "
        + ", ".join(f"{s} {summary.get(f'{s}_fraction', 0.0):.1%}" for s in SOURCES)
        + f" (expert share {summary['expert_share']:.4f})",
    ]
    if teacher is not None:
        lines += [
            "",
            "Teacher rewrite by stage: "
            + ", ".join(f"{s} {teacher[f'{s}_fraction']:.1%}" for s in SOURCES)
            + f" (log-prob gap of its records under the base policy "
            f"{teacher['log_ratio_teacher']:.4f})",
        ]
    if "faithful_self" in summary:  # the tiny world checks the steps, not only the answer
        levels = sorted({k.rsplit("_", 1)[1] for k in summary if "faithful_self_level_" in k})
        lines += [
            "",
            "| kept records with faithful steps | all | "
            + " | ".join(f"level {lv}" for lv in levels)
            + " |",
            "|---" * (len(levels) + 2) + "|",
        ]
        for s, of in rows:
            shares = [of[f"faithful_{s}"]] + [of.get(f"faithful_{s}_level_{lv}", float("nan"))
                                              for lv in levels]  # fmt: skip
            lines.append(f"| {s} | " + " | ".join(f"{v:.4f}" for v in shares) + " |")
    return "\n".join(lines) + "\n"


def bar_figure(
    accuracy: Mapping[str, float], title: str, errors: Mapping[str, float] | None = None
) -> Any:
    """Bar chart of test accuracy per method (error bars from `errors`, e.g. the standard
    deviation over seeds; each value written above its bar). Labels are slanted and the figure
    widens with the number of methods, so long names (`online_dr_dft`) never overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(accuracy)
    values = [accuracy[n] for n in names]
    yerr = [errors[n] for n in names] if errors is not None else None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 1.5), 4.0))
    ax.bar(names, values, yerr=yerr, capsize=4, color="#4c72b0")
    tops = [v + e for v, e in zip(values, yerr or [0.0] * len(values), strict=True)]
    for x, (value, top) in enumerate(zip(values, tops, strict=True)):
        ax.annotate(f"{value:.3f}", (x, top), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom")  # fmt: skip
    ax.set_ylabel("test accuracy (avg@n)")
    ax.set_title(title)
    ax.set_ylim(0, max(1e-3, max(tops) * 1.25))
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def level_figure(
    means: Mapping[str, Mapping[str, Any]], base: Mapping[str, float],
    ceiling: Mapping[str, float], counts: Mapping[str, int], title: str,
) -> Any:  # fmt: skip
    """Grouped bars, one group per level (`means`: method -> level -> its seeds' avg@n there):
    each bar the mean over seeds, each dot one seed; the base model (`base`) as a solid and the
    oracle's ceiling (`ceiling`) as a dashed line across each group; the caption below says
    what the bars are, how many seeds and problems (`counts`: level -> problems)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods, levels = list(means), list(counts)
    seeds = len(next(iter(next(iter(means.values())).values())))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.55 * len(methods) * len(levels) + 2.0), 4.6))
    colours = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        xs = np.arange(len(levels)) - 0.4 + width * (i + 0.5)
        values = [np.asarray(means[method][lv], dtype=float) for lv in levels]
        ax.bar(xs, [v.mean() for v in values], width, color=colours(i % 10), label=method)
        for x, v in zip(xs, values, strict=True):
            ax.plot(np.full(v.size, x), v, "o", color="black", markersize=2.0)
    for j, lv in enumerate(levels):
        for line, style, label in ((base, "-", "base"), (ceiling, "--", "oracle")):
            if lv in line:
                ax.hlines(line[lv], j - 0.45, j + 0.45, colors="black", linestyles=style,
                          linewidth=1.2, label=label if j == 0 else None)  # fmt: skip
    ticks = [f"{'all' if lv == 'all' else f'level {lv}'}\n({counts[lv]})" for lv in levels]
    ax.set_xticks(np.arange(len(levels)), ticks)
    ax.set_ylabel("test accuracy (avg@n)")
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax.set_title(title, fontsize=10)
    fig.text(0.01, 0.01, f"Bars: mean over {seeds} seeds; dots: each seed; solid line: the base "
             f"model (mean over seeds); dashed: the oracle's ceiling (one run, the world's facts); "
             f"problems per level in parentheses.", fontsize=7)  # fmt: skip
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def plot(
    accuracy: Mapping[str, float],
    path: Path,
    title: str,
    errors: Mapping[str, float] | None = None,
) -> None:
    """`bar_figure` written to `path` as a PNG, atomically."""
    save_figure(bar_figure(accuracy, title, errors), path)


def steps_figure(
    panels: Mapping[str, Mapping[str, Mapping[int, float]]], title: str,
    bands: Mapping[str, tuple[float, float]] | None = None,
) -> Any:  # fmt: skip
    """One panel per entry of `panels` (panel title -> line label -> step -> value), side by
    side, over the optimizer steps (an empty panel says so); `bands`: panel title -> (low,
    high), shaded across that panel (e.g. the monitor's noise band around its step-0 value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels.items(), strict=True):
        for label, series in lines.items():
            steps = sorted(series)
            ax.plot(steps, [series[s] for s in steps], label=label, linewidth=1.2)
        if bands and name in bands:
            low, high = bands[name]
            ax.axhspan(low, high, color="grey", alpha=0.2, label="noise band at step 0")
        if not lines:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        if lines:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig: Any, path: Path) -> None:
    """`fig` written to `path` as a PNG, atomically, and closed."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_report(
    out_dir: Path,
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    accuracy: Mapping[str, float],
    summary: Mapping[str, float],
    teacher: Mapping[str, float] | None = None,
) -> str:
    table = markdown_table(results, summary, teacher)
    write_text(out_dir / "results.md", table)
    plot(accuracy, out_dir / "results.png", "tiny world: test accuracy")
    return table
