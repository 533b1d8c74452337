"""The study's report: `results.md` (provenance, the pre-registered rules, the tables with
both intervals, the data's cost, the learning rates) and its figures, made from the kept run
records alone (`mtg_ray.pipelines.jobs.study` runs and keeps them); the invocations that made
them (`InvocationLog`), whose wall times a study carried across sessions sums."""

import json
import os
import platform
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtg_ray.config import JobConfig
from mtg_ray.data import iter_jsonl, write_text
from mtg_ray.data.schema import SOURCES
from mtg_ray.evaluate.ledger import RunRecord
from mtg_ray.evaluate.report import level_figure, plot, save_figure, steps_figure
from mtg_ray.evaluate.study import (
    Rule,
    data_costs,
    difference_table,
    faithful_table,
    first_round_control,
    level_columns,
    level_difference_table,
    level_means,
    method_table,
    monitor_band,
    offline_of,
    rule_table,
    run_means,
    study_pairs,
)
from mtg_ray.pipelines.jobs.session import uses_world
from mtg_ray.tinyworld import build_world

# The success rules pre-registered in docs/results.md (2026-12-07) for the study on
# tinyworld-3: each holds when every comparison a - b (level None: all test problems) is above
# 0 by both 95% intervals. A rule whose runs a study did not make is reported "not run".
RULES = (
    Rule("paper: DR+SFT > SFT", (("dr_sft", "sft", None),)),
    Rule("paper: DR+DFT > DFT", (("dr_dft", "dft", None),)),
    Rule("paper: DR+DFT best of the paper's rows",
         (("dr_dft", "sft", None), ("dr_dft", "dft", None), ("dr_dft", "dr_sft", None))),
    Rule("(a) rounds DR+DFT > its offline twin", (("rounds_dr_dft", "dr_dft", None),)),
    Rule("(b) DR+DFT > DFT on level 4", (("dr_dft", "dft", "4"),)),
    Rule("(c) teacher DR+DFT > policy DR+DFT and > distillation, on level 4",
         (("teacher_dr_dft", "dr_dft", "4"), ("teacher_dr_dft", "distill", "4"))),
    Rule("(d) teacher DR+IS > teacher DR+DFT", (("teacher_dr_is", "teacher_dr_dft", None),)),
)  # fmt: skip


def machine() -> str:
    """CPU model, CPU count, OS and Python of this machine, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} CPUs, {system}, Python {platform.python_version()}"


# The heading of results.md's hand-written part, which `study` keeps when it rewrites the rest.
PREREGISTERED = "## Pre-registered comparisons"


def write_study(
    cfg: JobConfig, seeds: int, command: str, records: Mapping[str, Sequence[RunRecord]],
    invocations: Sequence[Mapping[str, Any]], selection: dict | None, results_dir: Path,
    online_names: Sequence[str],
) -> str:  # fmt: skip
    """Write `<results_dir>/results.md` (keeping its pre-registered section), `results.png`,
    `results_levels.png` (when problems have levels) and `results_<run>.png` for each of
    `online_names`, from `records` (run name -> one record per seed). Returns the `study:`
    line (mean avg@n per run)."""
    benchmark = next(iter(records["base"][0].metrics))
    problems = sorted(records["base"][0].accuracy[benchmark])
    acc = {
        m: np.array([[r.accuracy[benchmark][p] for p in problems] for r in recs])
        for m, recs in records.items()
    }
    evals = {m: [r.metrics[benchmark] for r in recs] for m, recs in records.items()}
    known = {p: lv for recs in records.values() for r in recs
             for p, lv in r.levels.get(benchmark, {}).items()}  # fmt: skip
    levels = [known.get(p, "") for p in problems]
    root = results_dir / "runs"
    controls, failed = control_lines(cfg, records)
    lines = _report(cfg, seeds, command, invocations, benchmark, acc, evals, root, levels, failed)
    lines += controls
    lines += _cost_lines(
        data_costs({m: [(r.samples, r.rewrite_s) for r in recs] for m, recs in records.items()})
    )
    lines += _faithful_lines(faithful_table({m: [r.scalars for r in recs]
                                             for m, recs in records.items()}))  # fmt: skip
    lines += selection_lines(cfg, selection, results_dir / "lr_selection.json")
    results_dir.mkdir(parents=True, exist_ok=True)
    report = results_dir / "results.md"
    kept_text = kept_section(report.read_text()) if report.is_file() else ""
    write_text(report, "\n".join(lines) + "\n" + kept_text)
    _plot(acc, results_dir / "results.png", f"{benchmark}: avg@n over {seeds} seeds")
    if any(levels):
        counts = {lv: int(cols.sum()) for lv, cols in level_columns(levels).items()}
        counts["all"] = len(levels)
        means = {m: level_means(a, levels) for m, a in acc.items() if m != "base"}
        base = {lv: float(v.mean()) for lv, v in level_means(acc["base"], levels).items()}
        title = f"{benchmark}: avg@{cfg.eval.n} per level, {seeds} seeds"
        figure = level_figure(means, base, oracle_ceiling(cfg), counts, title)
        save_figure(figure, results_dir / "results_levels.png")
    for name in online_names:
        problems = min(records[name][0].settings.get("online.eval_problems", 100), len(levels))
        figure = online_figure(records[name], name, problems)
        save_figure(figure, results_dir / f"results_{name}.png")
    return "study: " + " ".join(f"{m}={run_means(a).mean():.4f}" for m, a in acc.items())


def online_figure(records: Sequence[RunRecord], name: str, problems: int) -> Any:
    """Online run `name` over its steps: the expert share of each batch (every seed), each
    source's share of the loss (seed 0), and its monitor accuracy (`online.eval_every`; every
    seed; from step 0, the start weights, when logged there), with the band one seed's monitor
    moves within around the seeds' step-0 mean by sampling alone (`monitor_band`, on the
    `problems` the monitor scored), from the runs' kept TensorBoard scalars (one record per
    seed)."""
    first = records[0].scalars
    monitor = [t for t in first if re.fullmatch(r"monitor/[^/]+/avg@\d+", t)]
    bands = {}
    starts = [r.scalars.get(monitor[0], {}).get(0) for r in records] if monitor else []
    if starts and all(v is not None for v in starts):
        at_zero = float(np.mean(starts))
        half = monitor_band(at_zero, problems, int(monitor[0].rsplit("@", 1)[1]))
        bands[monitor[0]] = (at_zero - half, at_zero + half)
    panels = {
        "expert share of the batch": {
            f"seed {r.seed}": r.scalars.get("online/expert_fraction", {}) for r in records
        },
        "share of the loss by source (seed 0)": {
            source: series
            for source in SOURCES
            if (series := first.get(f"train/loss_share/{source}"))
        },
        (monitor[0] if monitor else "monitor accuracy"): {
            f"seed {r.seed}": r.scalars.get(monitor[0], {}) for r in records
        }
        if monitor
        else {},
    }
    return steps_figure(panels, name, bands)


def kept_section(text: str) -> str:
    """What a rewrite of results.md keeps: from the PREREGISTERED heading to the end (dated
    candidates, controls and success rules written before comparisons ran, and their
    outcomes), or ""."""
    at = text.find(PREREGISTERED)
    return "\n" + text[at:] if at >= 0 else ""


class InvocationLog:
    """The study's invocations in `<root>/invocations.jsonl`, each its command, machine, wall
    seconds and the seed/run records it made: a study carried across sessions sums its wall
    time from them. This invocation's row is written (the file rewritten atomically) when it
    starts a seed's runs, each time it keeps a record and when it ends (`close`, also on an
    error or Ctrl-C), so one stopped mid-way counts its time too (a SIGKILL, which skips
    that, loses the time since its last record); one that runs nothing (all read back) is
    not logged."""

    def __init__(self, root: Path, command: str) -> None:
        self.path = root / "invocations.jsonl"
        self.earlier = [row for _, row in iter_jsonl(self.path)] if self.path.is_file() else []
        self.started = time.monotonic()
        self.ran = False
        self.row: dict[str, Any] = {"command": command, "machine": machine(), "wall_s": 0.0,
                                    "made": []}  # fmt: skip

    def running(self) -> None:
        """Log that this invocation runs jobs (a seed's runs start)."""
        self.ran = True
        self._write()

    def made(self, record: str) -> None:
        """Log that this invocation kept `record` (`seed-<s>/<run>`), and its wall time now."""
        self.row["made"].append(record)
        self.running()

    def close(self) -> None:
        """Log this invocation's wall time at its end, if it ran anything."""
        if self.ran:
            self._write()

    def _write(self) -> None:
        self.row["wall_s"] = round(time.monotonic() - self.started, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, "".join(json.dumps(row) + "\n" for row in self.rows()))

    def rows(self) -> list[dict[str, Any]]:
        """Every invocation logged, this one last if it ran anything."""
        return self.earlier + ([self.row] if self.ran else [])


def oracle_ceiling(cfg: JobConfig) -> dict[str, float]:
    """Level (and "all") -> the test avg@n of the tiny world's oracle at its best lr (its
    facts, `scripts/build_world.py --measure`); {} without a world or those facts."""
    if not uses_world(cfg):
        return {}
    oracle = build_world(cfg.world, cfg.cache_dir or None).facts.get("measured", {}).get("oracle")
    if not oracle:
        return {}
    return {lv: float(v) for lv, v in oracle["runs"][oracle["best_lr"]]["test"].items()
            if lv != "greedy"}  # fmt: skip


def _report(
    cfg, seeds, command, invocations, benchmark, acc, evals, root, levels, failed
) -> list[str]:
    """results.md's lines: provenance (the invocations that made its records: `InvocationLog`),
    the pre-registered rules (`failed`: runs whose control failed), the method and difference
    tables, greedy and levels (`levels`: each problem's, in `acc`'s column order; their paired
    differences if known)."""
    n_problems = len(levels)
    pairs = study_pairs(list(acc)[1:])
    metrics = [k for k in evals["base"][0] if k.startswith("greedy") or "/level_" in k]
    lines = [
        "# Study results",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Wall time: {sum(i['wall_s'] for i in invocations) / 60:.1f} min over "
        f"{len(invocations)} invocations that made its records (`{root}/invocations.jsonl`: "
        f"each one's command, machine and runs; records made earlier are read back, not rerun)",
        "",
        f"Test set: {benchmark}, {n_problems} problems, avg@{cfg.eval.n} at temperature "
        f"{cfg.eval.temperature}. Seeds vary the learner, rollout and rewrite seeds together.",
        "",
        "## Pre-registered rules (results.md's pre-registration; a rule holds when each of "
        "its comparisons is above 0 by both 95% intervals)",
        "",
        *rule_table(acc, levels, RULES, failed=failed),
        "",
        "## Accuracy per method (avg@n; mean and standard deviation over seeds)",
        "",
        *method_table(acc),
        "",
        "## Paired differences (same seeds and problems; 95% intervals: problem bootstrap, "
        "and two-level: seeds, then problems)",
        "",
        *difference_table(acc, pairs),
        "",
        "## Greedy accuracy and avg@n per level (means over seeds)",
        "",
        "| method | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for m, per_seed in evals.items():
        values = [np.mean([e[k] for e in per_seed]) for k in metrics]
        lines.append(f"| {m} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    if any(levels):
        lines += [
            "",
            "## Paired differences per level (95% intervals over that level's problems; "
            "`*`: excludes 0)",
            "",
            *level_difference_table(acc, levels, pairs),
        ]
    return lines


def control_lines(
    cfg: JobConfig, records: Mapping[str, Sequence[RunRecord]]
) -> tuple[list[str], list[str]]:
    """The report's section on the controls the kept runs allow (`first_round_control`: each
    rounds run against the offline round of its method; none: no section), and the runs whose
    control failed."""
    rows, failed = [], []
    for name, runs in records.items():
        twin = offline_of(name)
        if not name.startswith("rounds_") or twin not in records:
            continue
        settings = runs[0].settings
        n_rounds = int(settings.get("online.rounds", cfg.online.rounds))
        batch = int(settings.get("learner.train_batch_size", cfg.learner.train_batch_size))
        diffs, mean, half = first_round_control(
            [r.scalars for r in runs], [r.scalars for r in records[twin]], n_rounds, batch
        )
        rows.append(
            f"| {name}: first round's expert share - {twin}'s offline round's | "
            + ", ".join(f"{d:+.4f}" for d in diffs)
            + f" | {mean:+.4f} | +-{half:.4f} | {'yes' if abs(mean) <= half else 'no'} |"
        )
        failed += [name] if abs(mean) > half else []
    if not rows:
        return [], []
    return [
        "",
        "## Controls",
        "",
        "A rounds run's first round is rewritten by the base policy, as the offline round is: "
        "their expert shares must agree within the band sampling alone gives the mean over "
        "seeds (binomial, 95%). A control that fails means a bug.",
        "",
        "| control | per seed | mean | 95% band | holds |",
        "|---|---|---|---|---|",
        *rows,
    ], failed


def _cost_lines(costs: dict[str, list[tuple[float, float]]]) -> list[str]:
    """What each run's data cost (`run_cost`), means over seeds."""
    lines = [
        "",
        "## Cost of the data (means over seeds)",
        "",
        "Samples drawn and seconds spent rewriting; an offline method's are its one round's "
        "(shared by every method trained on it); an online run that trains the offline round's "
        "records (anchor, refresh) counts that round too.",
        "",
        "| run | samples drawn | rewriting s |",
        "|---|---|---|",
    ]
    for m, per_seed in costs.items():
        drawn, seconds = np.mean(per_seed, axis=0)
        lines.append(f"| {m} | {drawn:.0f} | {seconds:.0f} |")
    return lines


def _faithful_lines(rows: list[str]) -> list[str]:
    """The faithful-steps section (`faithful_table`), if any run logs the shares."""
    if not rows:
        return []
    return [
        "",
        "## Faithful steps of the trained records (online runs; mean over steps, then seeds)",
        "",
        "The share of each step's self and guided records whose steps are right, not only the "
        "answer (`online/faithful_<source>`; the offline round's are in each seed's "
        "`rewrite/summary.json`). Min-max over seeds in parentheses.",
        "",
        *rows,
    ]


def selection_lines(cfg: JobConfig, selection: dict | None, kept: Path) -> list[str]:
    """The learning rates each method trained at, and how they were chosen: selected here, or
    given (`--no-select-lr`), with an earlier selection's table read back from `kept` (its
    `lr_selection.json`) when there is one."""
    lines = ["", "## Learning rates", ""]
    if selection is None:
        rates = ", ".join(f"{m} {cfg.lr_of(m):g}" for m in cfg.methods)
        lines.append(f"Given (`train.method_lr`), not selected here: {rates}.")
        if not kept.is_file():
            return lines
        selection = json.loads(kept.read_text())
        lines += ["", f"The selection kept in `{kept}` (not rerun):", ""]
        return lines + _selection_table(selection)
    return lines + _selection_table(selection)


def _selection_table(selection: dict) -> list[str]:
    """How `selection` (`select_lr`'s result) chose: its rule, its table, the methods whose
    best lr does not beat the base."""
    grid = [f"{lr:g}" for lr in selection["lr_grid"]]
    base = selection["base"]
    lines = [
        f"Selected in seed 0's run: each method trained once per lr on the train split less its "
        f"last {selection['validation_problems']} problems, then avg@{selection['validation_n']} "
        f"on those held-out problems; the best lr wins (ties: the smaller). Same grid and "
        f"budget for every method. The base model (untrained) is scored once the same way "
        f"(column base).",
        "",
        "| method | base | " + " | ".join(f"lr {lr}" for lr in grid) + " | selected |",
        "|---" * (len(grid) + 3) + "|",
    ]
    for method, scores in selection["accuracy"].items():
        cells = " | ".join(f"{scores[lr]:.4f}" for lr in grid)
        lines.append(f"| {method} | {base:.4f} | {cells} | {selection['selected'][method]:g} |")
    if not_beaten := selection["base_not_beaten"]:
        lines += [
            "",
            f"No lr of the grid beats the base model ({base:.4f}) for: {', '.join(not_beaten)} "
            f"(each is still trained at its best lr).",
        ]
    return lines


def _plot(acc, path: Path, title: str) -> None:
    """Mean avg@n over seeds per method, with the seeds' standard deviation as error bars."""
    means = {m: float(run_means(a).mean()) for m, a in acc.items()}
    stds = {m: float(run_means(a).std(ddof=1)) if a.shape[0] > 1 else 0.0 for m, a in acc.items()}
    plot(means, path, title, errors=stds)
