"""The study job: the lr selection (`select_lr`, once, in seed 0's run), the main job once per
seed on one world at the selected lrs (and, on request, online runs of methods on rewritten
data at the offline runs' steps), then the report (`study_report`: the pre-registered rules,
mean and spread over seeds, paired differences with two intervals, controls, figures), written
as `<results_dir>/results.md` and its PNGs.

Seed s varies the learner, rollout and rewrite seeds together (each the configured seed + s);
the world, the data and every other setting stay. Each seed's run lives in
`<output_dir>/seed-<s>` and resumes like the main job. Each run, once evaluated, is also kept as
a small record under `<results_dir>/runs/` (`mtg_ray.evaluate.ledger`), and the tables and
figures are made from those records alone: committed, they carry a study that outlasts one
session (or one machine's output folder) into the next, which reruns only the runs without one.
Records and lr trials name the tiny world they were made on (its recipe hash), and a study
refuses those of another world, or naming none when it runs on one.
"""

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtg_ray.config import JobConfig, uses_teacher
from mtg_ray.data import iter_jsonl, write_text
from mtg_ray.evaluate.ledger import (
    BASE,
    RunRecord,
    check_lr,
    check_settings,
    check_world,
    load_record,
    record_path,
    run_settings,
    save_record,
    save_trial,
    trials,
)
from mtg_ray.monitor import read_scalars
from mtg_ray.objectives import METHODS, ONLINE_METHODS
from mtg_ray.online.config import CONTROLS
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.jobs.offline import evaluate_job, main_job, rewrite_name
from mtg_ray.pipelines.jobs.online import online_job, online_name
from mtg_ray.pipelines.jobs.select_lr import at_lr, missing_trials, select_lr, trial_result
from mtg_ray.pipelines.jobs.session import Run, groups, start, world_hash
from mtg_ray.pipelines.jobs.study_report import InvocationLog, write_study


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


def problem_levels(samples: Path, benchmark: str) -> dict[str, str]:
    """problem_id -> its level ("" for none), from eval_samples.jsonl."""
    return {
        row["problem_id"]: str(row.get("level", ""))
        for _, row in iter_jsonl(samples)
        if row["benchmark"] == benchmark
    }


def run_cost(out: Path, name: str, rewrite_dir: str = "rewrite") -> tuple[float, float]:
    """(samples drawn, seconds spent rewriting) for run `name` of the seed folder `out`: none
    for the base model and the methods on expert data; the offline round's rewrite in
    `rewrite_dir` (its folder: the teacher's for a teacher method; shared by, and charged in
    full to, every method trained on it) for the other offline methods; an online run's own
    rewriting, summed over its steps from its TensorBoard log (`online_cost`)."""
    if name == "base" or (name in METHODS and METHODS[name].dataset == "expert"):
        return 0.0, 0.0
    if name in METHODS:
        summary = json.loads((out / rewrite_dir / "summary.json").read_text())
        drawn = sum(v for k, v in summary.items() if k.startswith("generated_"))
        return float(drawn), float(summary.get("rewrite_s", float("nan")))
    return online_cost(read_scalars(out / "tb" / name))


def online_cost(scalars: Mapping[str, Mapping[int, float]]) -> tuple[float, float]:
    """An online run's (samples drawn, seconds generating), summed over its steps'
    `online/generated_<stage>` and `time/generate_s`: a run resumed after a crash counts every
    step once (a redone step keeps its last value), where its `train_done.json` timing holds
    only the steps its last process ran."""
    drawn = sum(sum(s.values()) for t, s in scalars.items() if t.startswith("online/generated_"))
    return float(drawn), float(sum(scalars.get("time/generate_s", {}).values()))


def online_candidates(
    cfg: JobConfig, methods: Sequence[str], controls: Sequence[tuple[str, str]] = (),
    designs: Sequence[Mapping[str, Any]] = (), selected: Mapping[str, float] | None = None,
) -> list[JobConfig]:  # fmt: skip
    """The online runs of a seed's `cfg`: each of `methods` online (as `online.method`, at
    `online.steps`: by default the offline run's steps) and each (method, control) control, at
    their method's lr; then each of `designs` (`online.*` settings) at its `selected` lr (by
    run name; default: its method's)."""
    settings = [{"method": m} for m in methods] + [{"method": m, "control": c} for m, c in controls]
    runs = []
    for candidate, own_lr in [(c, False) for c in settings] + [(d, True) for d in designs]:
        run_cfg = dataclasses.replace(cfg, online=dataclasses.replace(cfg.online, **candidate))
        name = online_name(run_cfg)
        if own_lr and selected and name in selected:
            run_cfg = at_lr(run_cfg, selected[name])
        if name in [online_name(r) for r in runs]:
            raise ValueError(
                f"two online runs would both be named {name!r} (one record, one lr): "
                f"{candidate} repeats an earlier --online, --controls or --design run"
            )
        runs.append(run_cfg)
    return runs


def online_runs(
    run: Run, rollout: Rollout, candidates: Sequence[JobConfig],
    finished: Callable[[str], None] = lambda name: None,
) -> None:  # fmt: skip
    """Train and evaluate each of `candidates` (`online_candidates`) in `run`'s folder, each
    unless it was evaluated already; `finished(name)` after each."""
    for cfg in candidates:
        name = online_name(cfg)
        online = dataclasses.replace(run, cfg=cfg)
        if not (run.out / name / "eval.json").is_file():
            online_job(online, rollout)
            evaluate_job(online, rollout, name)
        finished(name)


def planned_settings(cfg: JobConfig, candidates: Sequence[JobConfig]) -> dict[str, dict]:
    """Run name -> the settings it is made with (`run_settings`), as `planned_lrs` names them."""
    flat = cfg.flat()
    out = {"base": run_settings(flat, online=False)}
    out.update({m: run_settings(flat, False, uses_teacher(cfg, m)) for m in cfg.methods})
    out.update({
        online_name(c): run_settings(c.flat(), True, uses_teacher(c, c.online.method))
        for c in candidates
    })  # fmt: skip
    return out


def planned_lrs(cfg: JobConfig, candidates: Sequence[JobConfig]) -> dict[str, float | None]:
    """Run name -> the peak lr it trains at (None: the base model), in report order."""
    lrs: dict[str, float | None] = {"base": None}
    lrs.update({m: cfg.lr_of(m) for m in cfg.methods})
    lrs.update({online_name(c): c.online_lr() for c in candidates})
    return lrs


# The scalars a run record keeps of an online run: its figure's, and the token and loss shares
# by source that results.md's notes quote.
FIGURE_SCALARS = (
    "online/",
    "train/loss_share/",
    "train/token_share/",
    "monitor/",
    "time/",
    "rewrite/",
)
# What a record of an offline method on rewritten data keeps of its rewrite's summary.
REWRITE_SCALARS = ("expert_share", "problems")


def run_record(
    out: Path, name: str, seed: int, lr: float | None, settings: Mapping[str, Any] | None = None,
    world: str | None = None, rewrite_dir: str = "rewrite",
) -> RunRecord:  # fmt: skip
    """Run `name` of the seed folder `out`, evaluated, as the study keeps it (`settings`: what
    it was made with, `run_settings`; `world`: its tiny world's recipe hash, None for none;
    `rewrite_dir`: its data's rewrite, `run_cost`; an offline method on rewritten data keeps
    that rewrite's expert share and problem count, at step 0, for the report's controls)."""
    metrics = json.loads((out / name / "eval.json").read_text())
    samples = out / name / "eval_samples.jsonl"
    online = name != "base" and name not in METHODS
    scalars = read_scalars(out / "tb" / name) if online else {}
    if name in METHODS and METHODS[name].dataset == "rewritten":
        summary = json.loads((out / rewrite_dir / "summary.json").read_text())
        scalars = {f"rewrite/{k}": {0: float(summary[k])} for k in REWRITE_SCALARS}
    drawn, seconds = online_cost(scalars) if online else run_cost(out, name, rewrite_dir)
    return RunRecord(
        name=name,
        seed=seed,
        metrics=metrics,
        accuracy={b: problem_accuracy(samples, b) for b in metrics},
        samples=drawn,
        rewrite_s=seconds,
        lr=lr,
        scalars={t: s for t, s in scalars.items() if t.startswith(FIGURE_SCALARS)},
        levels={b: problem_levels(samples, b) for b in metrics},
        settings=dict(settings or {}),
        world=world,
    )


def kept_runs(
    root: Path, seed: int, lrs: Mapping[str, float | None], out: Path,
    settings: Mapping[str, Mapping[str, Any]] | None = None, *, world: str | None,
) -> dict[str, RunRecord]:  # fmt: skip
    """The records kept under `root` for seed `seed`'s planned runs (`lrs`; run folders in
    `out`), each checked to be of the tiny `world` (recipe hash; None: none), lr and `settings`
    (by run name) it would be made with."""
    kept = {}
    for name, lr in lrs.items():
        if (record := load_record(root, seed, name)) is not None:
            check_world(record, world, root, out / name)
            check_lr(record, lr, root, out / name)
            if settings is not None:
                check_settings(record, settings[name], root, out / name)
            kept[name] = record
    return kept


def keep_run(
    root: Path, out: Path, seed: int, name: str, lr: float | None,
    settings: Mapping[str, Any] | None = None, *, world: str | None, rewrite_dir: str = "rewrite",
) -> bool:  # fmt: skip
    """Keep run `name` (evaluated in `out` on the tiny `world`) as a record under `root`, unless
    kept already; whether it was kept now."""
    if record_path(root, seed, name).is_file():
        return False
    save_record(root, run_record(out, name, seed, lr, settings, world, rewrite_dir))
    return True


def restore_runs(records: Mapping[str, RunRecord], out: Path) -> None:
    """Put each kept run's metrics where the seed's jobs look for a finished run
    (`<out>/<name>/eval.json`), so they are not trained again."""
    for name, record in records.items():
        path = out / name / "eval.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(record.metrics, indent=1))


def trial_folders(out: Path) -> list[tuple[str, float | None, Path]]:
    """(candidate, lr, validation.json) of every lr selection trial that has validated in `out`,
    the base model's score (lr None) among them."""
    base = out / "select_lr" / BASE / "validation.json"
    kept: list[tuple[str, float | None, Path]] = [(BASE, None, base)] if base.is_file() else []
    return kept + [
        (path.parent.parent.name, float(path.parent.name.removeprefix("lr-")), path)
        for path in sorted((out / "select_lr").glob("*/lr-*/validation.json"))
    ]


def with_selected_lrs(
    cfg: JobConfig, results_dir: Path, designs: Sequence[Mapping[str, Any]] = ()
) -> tuple[JobConfig, dict]:
    """Select lrs (for `cfg.methods` and the online `designs`) in seed 0's run, its trials kept
    under `<results_dir>/runs/select_lr/` and read back from there; `cfg` training the methods
    at theirs, and the selection (also written to `<results_dir>/lr_selection.json`)."""
    run, root = start(seed_config(cfg, 0)), results_dir / "runs"
    for name, lr, validation in trials(root):
        path = trial_result(run, name, lr)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(validation, indent=1))
    try:
        if missing_trials(run, designs):
            with groups(run) as rollout:
                selection = select_lr(run, rollout, designs)
        else:  # every trial kept: no engine, no rewrite
            selection = select_lr(run, None, designs)
    finally:
        for name, lr, path in trial_folders(run.out):
            save_trial(root, name, lr, json.loads(path.read_text()))
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
    run: `online_figure`). Returns the `study:` line (mean avg@n per run)."""
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    unknown = [m for m in [*online, *(m for m, _ in controls)] if m not in ONLINE_METHODS]
    if unknown:
        raise ValueError(f"--online/--controls take methods of {ONLINE_METHODS}, got {unknown}")
    bad = [c for _, c in controls if c not in CONTROLS[1:]]
    if bad:
        raise ValueError(f"--controls takes controls of {CONTROLS[1:]}, got {bad}")
    log = InvocationLog(results_dir / "runs", command)
    selection = None
    if select:
        cfg, selection = with_selected_lrs(cfg, results_dir, designs)
    selected = selection["selected"] if selection else None
    try:
        records, names = run_seeds(cfg, seeds, results_dir / "runs", log, online, controls,
                                   designs, selected)  # fmt: skip
    finally:
        log.close()
    return write_study(cfg, seeds, command, records, log.rows(), selection, results_dir, names)


def run_seeds(
    cfg: JobConfig, seeds: int, root: Path, log: InvocationLog, online: Sequence[str],
    controls: Sequence[tuple[str, str]], designs: Sequence[Mapping[str, Any]],
    selected: Mapping[str, float] | None,
) -> tuple[dict[str, list[RunRecord]], list[str]]:  # fmt: skip
    """Each seed's planned runs (`study_job`), made unless kept under `root` (each kept as it
    is made, and logged in `log`). Returns run name -> one record per seed, and the online
    runs' names."""
    world = world_hash(cfg)
    records: dict[str, list[RunRecord]] = {}
    candidates: list[JobConfig] = []
    for s in range(seeds):
        seed_cfg = seed_config(cfg, s)
        candidates = online_candidates(seed_cfg, online, controls, designs, selected)
        lrs = planned_lrs(seed_cfg, candidates)
        made_with = planned_settings(seed_cfg, candidates)
        kept = kept_runs(root, s, lrs, Path(seed_cfg.output_dir), made_with, world=world)
        if len(kept) < len(lrs):
            log.running()
            run = start(seed_cfg)
            restore_runs(kept, run.out)

            def keep(name: str, out: Path = run.out, s: int = s, lrs: dict = lrs,
                     made_with: dict = made_with, cfg: JobConfig = seed_cfg) -> None:  # fmt: skip
                folder = rewrite_name(cfg.rewrite_of(name)) if name in METHODS else "rewrite"
                if keep_run(root, out, s, name, lrs[name], made_with[name], world=world,
                            rewrite_dir=folder):  # fmt: skip
                    log.made(f"seed-{s}/{name}")

            with groups(run) as rollout:  # one rollout and one learner group for the seed
                main_job(run, rollout, finished=keep)
                online_runs(run, rollout, candidates, finished=keep)
            kept = kept_runs(root, s, lrs, Path(seed_cfg.output_dir), made_with, world=world)
        for name in lrs:
            records.setdefault(name, []).append(kept[name])
    return records, [online_name(c) for c in candidates]  # the last seed's: the same names
