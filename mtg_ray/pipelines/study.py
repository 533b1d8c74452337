"""The study job: the lr selection (`select_lr`, once, in seed 0's run), the main job once per
seed on one world at the selected lrs (and, on request, online runs of methods on rewritten
data at the offline runs' steps), then the statistics the paper's claims
need (mean and spread over seeds, paired differences with problem-bootstrap intervals), written
as `<results_dir>/results.md` and `results.png`.

Seed s varies the learner, rollout and rewrite seeds together (each the configured seed + s);
the world, the data and every other setting stay. Each seed's run lives in
`<output_dir>/seed-<s>` and resumes like the main job, so a rerun only recomputes the tables.
"""

import dataclasses
import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtg_ray.config import JobConfig
from mtg_ray.data import iter_jsonl, write_text
from mtg_ray.data.schema import SOURCES
from mtg_ray.evaluate.report import plot, save_figure, steps_figure
from mtg_ray.evaluate.study import difference_table, method_table, run_means, study_pairs
from mtg_ray.monitor import scalar_series, scalar_tags
from mtg_ray.objectives import METHODS, ONLINE_METHODS
from mtg_ray.online.config import CONTROLS
from mtg_ray.pipelines.offline import evaluate_job, main_job
from mtg_ray.pipelines.online import online_job, online_name
from mtg_ray.pipelines.protocols import Rollout
from mtg_ray.pipelines.select_lr import at_lr, select_lr
from mtg_ray.pipelines.session import Run, groups, start


def seed_config(cfg: JobConfig, seed: int) -> JobConfig:
    """Seed `seed`'s run: learner, rollout and rewrite seeds each moved by `seed`."""
    return dataclasses.replace(
        cfg,
        output_dir=str(Path(cfg.output_dir) / f"seed-{seed}"),
        learner=dataclasses.replace(cfg.learner, seed=cfg.learner.seed + seed),
        rollout=dataclasses.replace(cfg.rollout, seed=cfg.rollout.seed + seed),
        rewrite=dataclasses.replace(cfg.rewrite, seed=cfg.rewrite.seed + seed),
    )


def problem_accuracy(samples: Path, benchmark: str) -> dict[str, float]:
    """problem_id -> share of its sampled responses graded correct, from eval_samples.jsonl."""
    hits: dict[str, list[bool]] = {}
    for _, row in iter_jsonl(samples):
        if row["benchmark"] == benchmark and row.get("mode", "sample") == "sample":
            hits.setdefault(row["problem_id"], []).append(bool(row["correct"]))
    return {p: sum(v) / len(v) for p, v in hits.items()}


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


def run_cost(out: Path, name: str) -> tuple[float, float]:
    """(samples drawn, seconds spent rewriting) for run `name` of the seed folder `out`: none
    for the base model and the methods on expert data; the offline round's rewrite (shared by
    every method trained on it) for the other offline methods; an online run's own rewriting
    (its `train_done.json` timing: the steps its last process ran)."""
    if name == "base" or (name in METHODS and METHODS[name].dataset == "expert"):
        return 0.0, 0.0
    if name in METHODS:
        summary = json.loads((out / "rewrite" / "summary.json").read_text())
        drawn = sum(v for k, v in summary.items() if k.startswith("generated_"))
        return float(drawn), float(summary.get("rewrite_s", float("nan")))
    timing = json.loads((out / name / "train_done.json").read_text())["timing"]
    return float(timing.get("samples", float("nan"))), float(timing.get("generate_s", 0.0))


# The heading of results.md's hand-written part, which `study` keeps when it rewrites the rest.
PREREGISTERED = "## Pre-registered comparisons"


def online_runs(
    run: Run, rollout: Rollout, methods: Sequence[str], controls: Sequence[tuple[str, str]] = (),
    designs: Sequence[Mapping[str, Any]] = (), selected: Mapping[str, float] | None = None,
) -> list[str]:  # fmt: skip
    """Train and evaluate each of `methods` online (as `online.method`, at `online.steps`: by
    default the offline run's steps) and each (method, control) control run, at their
    method's lr; then each of `designs` (`online.*` settings) at its `selected` lr (by run
    name; default: its method's), in `run`'s folder. Returns their run names."""
    settings = [{"method": m} for m in methods] + [{"method": m, "control": c} for m, c in controls]
    names = []
    for candidate, own_lr in [(c, False) for c in settings] + [(d, True) for d in designs]:
        online_cfg = dataclasses.replace(run.cfg.online, **candidate)
        cfg = dataclasses.replace(run.cfg, online=online_cfg)
        name = online_name(cfg)
        if own_lr and selected and name in selected:
            cfg = at_lr(cfg, selected[name])
        online = dataclasses.replace(run, cfg=cfg)
        online_job(online, rollout)
        evaluate_job(online, rollout, name)
        names.append(name)
    return names


def with_selected_lrs(
    cfg: JobConfig, results_dir: Path, designs: Sequence[Mapping[str, Any]] = ()
) -> tuple[JobConfig, dict]:
    """Select lrs (for `cfg.methods` and the online `designs`) in seed 0's run; `cfg`
    training the methods at theirs, and the selection (also written to
    `<results_dir>/lr_selection.json`)."""
    run = start(seed_config(cfg, 0))
    with groups(run) as rollout:
        selection = select_lr(run, rollout, designs)
    results_dir.mkdir(parents=True, exist_ok=True)
    write_text(results_dir / "lr_selection.json", json.dumps(selection, indent=1) + "\n")
    chosen = {m: lr for m, lr in selection["selected"].items() if m in cfg.methods}
    train = dataclasses.replace(cfg.train, method_lr={**cfg.train.method_lr, **chosen})
    return dataclasses.replace(cfg, train=train), selection


def study_job(
    cfg: JobConfig, seeds: int, results_dir: Path, command: str, online: Sequence[str] = (),
    select: bool = True, controls: Sequence[tuple[str, str]] = (),
    designs: Sequence[Mapping[str, Any]] = (),
) -> str:  # fmt: skip
    """Select lrs (unless `select` is false: then `train.method_lr` as given), run the main job
    (the `online` methods online, the `controls`, and the online `designs` at their own
    selected lrs) for `seeds` seeds, and write the study's tables and plots (one per online
    run: `online_plot`). Returns the `study:` line (mean avg@n per run)."""
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    unknown = [m for m in [*online, *(m for m, _ in controls)] if m not in ONLINE_METHODS]
    if unknown:
        raise ValueError(f"--online/--controls take methods of {ONLINE_METHODS}, got {unknown}")
    bad = [c for _, c in controls if c not in CONTROLS[1:]]
    if bad:
        raise ValueError(f"--controls takes controls of {CONTROLS[1:]}, got {bad}")
    started = time.monotonic()
    selection = None
    if select:
        cfg, selection = with_selected_lrs(cfg, results_dir, designs)
    selected = selection["selected"] if selection else None
    outs, online_names = [], []
    for s in range(seeds):
        run = start(seed_config(cfg, s))
        with groups(run) as rollout:  # one rollout and one learner group for the seed's runs
            main_job(run, rollout)
            online_names = online_runs(run, rollout, online, controls, designs, selected)
        outs.append(run.out)
    wall = time.monotonic() - started
    names = ["base", *cfg.methods, *online_names]
    benchmark = next(iter(json.loads((outs[0] / "base" / "eval.json").read_text())))
    per_run = {
        m: [problem_accuracy(out / m / "eval_samples.jsonl", benchmark) for out in outs]
        for m in names
    }
    problems = sorted(per_run["base"][0])
    acc = {m: np.array([[r[p] for p in problems] for r in runs]) for m, runs in per_run.items()}
    evals = {
        m: [json.loads((out / m / "eval.json").read_text())[benchmark] for out in outs]
        for m in names
    }
    lines = _report(cfg, seeds, command, wall, benchmark, len(problems), acc, evals)
    lines += _cost_lines({m: [run_cost(out, m) for out in outs] for m in names})
    lines += _selection_lines(cfg, selection)
    results_dir.mkdir(parents=True, exist_ok=True)
    report = results_dir / "results.md"
    kept = kept_section(report.read_text()) if report.is_file() else ""
    write_text(report, "\n".join(lines) + "\n" + kept)
    _plot(acc, results_dir / "results.png", f"{benchmark}: avg@n over {seeds} seeds")
    for name in online_names:
        save_figure(online_figure(outs, name), results_dir / f"results_{name}.png")
    return "study: " + " ".join(f"{m}={run_means(a).mean():.4f}" for m, a in acc.items())


def online_figure(outs: Sequence[Path], name: str) -> Any:
    """Online run `name` over its steps: the expert share of each batch (every seed), each
    source's share of the loss (seed 0), and its monitor accuracy (`online.eval_every`; every
    seed), from the runs' TensorBoard logs."""
    logs = [out / "tb" / name for out in outs]
    monitor = [t for t in scalar_tags(logs[0]) if t.startswith("monitor/") and "/avg@" in t]
    panels = {
        "expert share of the batch": {
            f"seed {s}": scalar_series(log, "online/expert_fraction") for s, log in enumerate(logs)
        },
        "share of the loss by source (seed 0)": {
            source: series
            for source in SOURCES
            if (series := scalar_series(logs[0], f"train/loss_share/{source}"))
        },
        (monitor[0] if monitor else "monitor accuracy"): {
            f"seed {s}": scalar_series(log, monitor[0]) for s, log in enumerate(logs)
        }
        if monitor
        else {},
    }
    return steps_figure(panels, name)


def kept_section(text: str) -> str:
    """What a rewrite of results.md keeps: from the PREREGISTERED heading to the end (dated
    candidates, controls and success rules written before comparisons ran, and their
    outcomes), or ""."""
    at = text.find(PREREGISTERED)
    return "\n" + text[at:] if at >= 0 else ""


def _report(cfg, seeds, command, wall, benchmark, n_problems, acc, evals) -> list[str]:
    """results.md's lines: provenance, the method and difference tables, greedy and levels."""
    metrics = [k for k in evals["base"][0] if k.startswith("greedy") or "/level_" in k]
    lines = [
        "# Study results",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Wall time: {wall / 60:.1f} min for {seeds} seeds (runs already finished are read back)",
        "",
        f"Test set: {benchmark}, {n_problems} problems, avg@{cfg.eval.n} at temperature "
        f"{cfg.eval.temperature}. Seeds vary the learner, rollout and rewrite seeds together.",
        "",
        "## Accuracy per method (avg@n; mean and standard deviation over seeds)",
        "",
        *method_table(acc),
        "",
        "## Paired differences (same seeds and problems; 95% problem-bootstrap intervals)",
        "",
        *difference_table(acc, study_pairs(list(acc)[1:])),
        "",
        "## Greedy accuracy and avg@n per level (means over seeds)",
        "",
        "| method | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for m, per_seed in evals.items():
        values = [np.mean([e[k] for e in per_seed]) for k in metrics]
        lines.append(f"| {m} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    return lines


def _cost_lines(costs: dict[str, list[tuple[float, float]]]) -> list[str]:
    """What each run's data cost (`run_cost`), means over seeds."""
    lines = [
        "",
        "## Cost of the data (means over seeds)",
        "",
        "Samples drawn and seconds spent rewriting; an offline method's are its one round's "
        "(shared by every method trained on it).",
        "",
        "| run | samples drawn | rewriting s |",
        "|---|---|---|",
    ]
    for m, per_seed in costs.items():
        drawn, seconds = np.mean(per_seed, axis=0)
        lines.append(f"| {m} | {drawn:.0f} | {seconds:.0f} |")
    return lines


def _selection_lines(cfg: JobConfig, selection: dict | None) -> list[str]:
    """The learning rates each method trained at, and (if selected here) how they were chosen."""
    lines = ["", "## Learning rates", ""]
    if selection is None:
        rates = ", ".join(f"{m} {cfg.lr_of(m):g}" for m in cfg.methods)
        return lines + [f"Given, not selected here: {rates}."]
    grid = [f"{lr:g}" for lr in selection["lr_grid"]]
    lines += [
        f"Selected in seed 0's run: each method trained once per lr on the train split less its "
        f"last {selection['validation_problems']} problems, then avg@{selection['validation_n']} "
        f"on those held-out problems; the best lr wins (ties: the smaller). Same grid and "
        f"budget for every method.",
        "",
        "| method | " + " | ".join(f"lr {lr}" for lr in grid) + " | selected |",
        "|---" * (len(grid) + 2) + "|",
    ]
    for method, scores in selection["accuracy"].items():
        cells = " | ".join(f"{scores[lr]:.4f}" for lr in grid)
        lines.append(f"| {method} | {cells} | {selection['selected'][method]:g} |")
    return lines


def _plot(acc, path: Path, title: str) -> None:
    """Mean avg@n over seeds per method, with the seeds' standard deviation as error bars."""
    means = {m: float(run_means(a).mean()) for m, a in acc.items()}
    stds = {m: float(run_means(a).std(ddof=1)) if a.shape[0] > 1 else 0.0 for m, a in acc.items()}
    plot(means, path, title, errors=stds)
