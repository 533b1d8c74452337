"""The learning-rate selection: one procedure, one budget, for every method.

Each method trains once per `train.lr_grid` value, on the train split less its last
`train.validation_problems` problems (their rewritten records, or their expert ones), and is
evaluated with `train.validation_n` samples per held-out problem; the lr with the best avg@n is
chosen, ties going to the smaller. The base model (the untrained policy) is scored once on the
same problems with the same sampling, before any trial trains, and every method or candidate
whose best lr does not beat it is named in the log and in selection.json (`base_not_beaten`);
this is reported, the choice stays the best lr. The rewrite is the run's own (`rewrite_job`,
shared with the main job of the same run), so selecting costs training and validation only.
Every trial lives in `<out>/select_lr/<method>/lr-<lr>` (the base model's score in
`<out>/select_lr/base`) and resumes like any run; its validation.json keeps the settings it was
made with (`trial_settings`; the base's: `base_settings`) and the recipe hash of the run's tiny
world (`world`, None for none), and a trial made on another world (or naming none, on a run
with one) or with other settings than a later call's is refused, not read. The selection is
made from the trials' validation results on every call (a call with another candidate or grid
trains only the trials it lacks) and written to `<out>/select_lr/selection.json`. Online
candidates are selected the same way: trained online on the same split (their offline records,
where a design reads them: the same split's).
"""

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtg_ray.config import JobConfig, uses_teacher
from mtg_ray.data import Record, write_text
from mtg_ray.evaluate.ledger import (
    BASE,
    base_settings,
    refuse_other_settings,
    refuse_other_world,
    trial_path,
    trial_settings,
)
from mtg_ray.learner.lr_selection import choose_lr, grid_edge
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.jobs.evaluate import evaluate
from mtg_ray.pipelines.jobs.offline import (
    method_data,
    method_objective,
    method_rewrites,
    train_job,
)
from mtg_ray.pipelines.jobs.online import online_job, online_name
from mtg_ray.pipelines.jobs.session import Run

VALIDATION = "validation"

log = logging.getLogger(__name__)


def at_lr(cfg: JobConfig, lr: float) -> JobConfig:
    """`cfg` with `online.method` training at `lr` (its entry of `train.method_lr`)."""
    method_lr = {**cfg.train.method_lr, cfg.online.method: lr}
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, method_lr=method_lr))


def on_split(run: Run, cfg: JobConfig, out: Path, held_ids: set[str]) -> Run:
    """`run` with `cfg`, writing into `out`, its train problems less the held-out ones."""
    trial = dataclasses.replace(run, cfg=cfg, out=out)
    trial.__dict__["train_problems"] = [
        p for p in run.train_problems if p.problem_id not in held_ids
    ]  # a cached_property: set once, read by every job on `trial`
    return trial


def candidate_configs(
    cfg: JobConfig, candidates: Sequence[Mapping[str, Any]]
) -> dict[str, JobConfig]:
    """Online candidate name (`online_name`) -> its config, for `candidates` (`online.*`)."""
    configs = {}
    for candidate in candidates:
        online_cfg = dataclasses.replace(cfg, online=dataclasses.replace(cfg.online, **candidate))
        configs[online_name(online_cfg)] = online_cfg
    return configs


def planned_trials(
    cfg: JobConfig, candidates: Sequence[Mapping[str, Any]] = ()
) -> dict[str, dict[str, Any]]:
    """Trial name (BASE, a method or `online_name`) -> the settings its trials are made with."""
    plan = {BASE: base_settings(cfg.flat())}
    plan.update({m: trial_settings(cfg.flat(), False, uses_teacher(cfg, m)) for m in cfg.methods})
    for name, online_cfg in candidate_configs(cfg, candidates).items():
        plan[name] = trial_settings(
            online_cfg.flat(), True, uses_teacher(online_cfg, online_cfg.online.method)
        )
    return plan


def trial_keys(cfg: JobConfig, names: Sequence[str]) -> list[tuple[str, float | None]]:
    """(name, lr) of each trial of `names`: the base model's once (lr None), every other's at
    each `train.lr_grid` value."""
    return [(n, lr) for n in names for lr in ((None,) if n == BASE else cfg.train.lr_grid)]


def check_kept_trials(run: Run, plan: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse a validated trial of `run`'s selection (the base model's score among them) that
    was made on another tiny world than `run`'s (`Run.world_hash`; one kept before trials named
    their world names none) or with other settings than this selection would make it with
    (`plan`: `planned_trials`; trials kept without settings are not checked on them)."""
    for name, lr in trial_keys(run.cfg, list(plan)):
        path = trial_result(run, name, lr)
        if path.is_file():
            kept = json.loads(path.read_text())
            copy = trial_path(Path("<results_dir>/runs"), name, lr)
            again = (
                f"{'score' if lr is None else 'train'} it again, move its folder {path.parent} "
                f"away (and a study's copy, {copy})"
            )
            refuse_other_world(path, kept.get("world"), run.world_hash, again)
            refuse_other_settings(path, kept.get("settings", {}), plan[name], again)


def trial_result(run: Run, name: str, lr: float | None) -> Path:
    """Where trial (`name`, `lr`) of `run`'s selection keeps its validation metrics (lr None:
    the base model's score, `select_lr/base/validation.json`)."""
    folder = run.out / "select_lr" / name
    return (folder if lr is None else folder / f"lr-{lr:g}") / "validation.json"


def missing_trials(
    run: Run, candidates: Sequence[Mapping[str, Any]] = ()
) -> list[tuple[str, float | None]]:
    """The (name, lr) trials of `run`'s selection not validated yet (the base model's score:
    (BASE, None), first)."""
    names = [BASE, *run.cfg.methods, *candidate_configs(run.cfg, candidates)]
    return [t for t in trial_keys(run.cfg, names) if not trial_result(run, *t).is_file()]


def select_lr(
    run: Run, rollout: Rollout | None, candidates: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Run (or read back) the selection for `run.cfg.methods` and the online `candidates`
    (`online.*` settings, `parse_candidate`; each trained online on the same split, at the
    same steps as its method offline, and named as its run is: `online_name`); returns
    selection.json's dict: grid, validation size and n, avg@n per method or candidate and lr,
    the base model's avg@n (`base`), `selected` (name -> lr), the names whose best lr does not
    beat the base (`base_not_beaten`) and those selected at an end of the grid. `rollout` may
    be None when no trial is missing; when the base model's score is, `rollout` must still hold
    the base policy (as a fresh group does)."""
    cfg, path = run.cfg, run.out / "select_lr" / "selection.json"
    k = cfg.train.validation_problems
    if k >= len(run.train_problems):
        raise ValueError(
            f"train.validation_problems ({k}) must be fewer than the {len(run.train_problems)} "
            "train problems"
        )
    plan = planned_trials(cfg, candidates)
    check_kept_trials(run, plan)
    missing = missing_trials(run, candidates)
    if missing:
        if rollout is None:
            raise ValueError(
                f"select_lr: trials {missing} are missing and no rollout group was given"
            )
        _run_trials(run, rollout, candidates, missing, plan)
    metric = f"avg@{cfg.train.validation_n}"

    def score(name: str, lr: float | None) -> float:
        return json.loads(trial_result(run, name, lr).read_text())[VALIDATION][metric]

    accuracy = {
        name: {f"{lr:g}": score(name, lr) for lr in cfg.train.lr_grid}
        for name in [*cfg.methods, *candidate_configs(cfg, candidates)]
    }
    base = score(BASE, None)
    selected = {m: choose_lr(a) for m, a in accuracy.items()}
    not_beaten = [m for m, a in accuracy.items() if max(a.values()) <= base]
    if not_beaten:
        log.warning(
            "select_lr: no lr of the grid beats the base model (%s %.4f on the validation "
            "problems) for: %s", metric, base, ", ".join(not_beaten),
        )  # fmt: skip
    edges = {m: e for m, lr in selected.items() if (e := grid_edge(cfg.train.lr_grid, lr))}
    for method, edge in edges.items():
        log.warning(
            "select_lr: %s's best lr %g is the %s of train.lr_grid %s; the best may lie beyond "
            "it (extend the grid)", method, selected[method], edge, list(cfg.train.lr_grid),
        )  # fmt: skip
    selection = {
        "lr_grid": list(cfg.train.lr_grid),
        "validation_problems": k,
        "validation_n": cfg.train.validation_n,
        "accuracy": accuracy,
        "base": base,
        "selected": selected,
        "base_not_beaten": not_beaten,
        "at_grid_edge": edges,
    }
    write_text(path, json.dumps(selection, indent=1) + "\n")
    return selection


def _run_trials(
    run: Run, rollout: Rollout, candidates: Sequence[Mapping[str, Any]],
    trials: Sequence[tuple[str, float | None]], plan: Mapping[str, Mapping[str, Any]],
) -> None:  # fmt: skip
    """Train and validate each (name, lr) of `trials` on the selection's split (the base model
    (BASE, None) only validated, and first, while `rollout` holds it), its result keeping the
    settings `plan` (`planned_trials`) gives its name and the run's world."""
    cfg = run.cfg
    held_out = run.train_problems[-cfg.train.validation_problems :]
    held_ids = {p.problem_id for p in held_out}
    trains = any(lr is not None for _, lr in trials)  # not only the base: the rewrite is needed
    online_cfgs = candidate_configs(cfg, candidates)
    used = [*cfg.methods, *(c.online.method for c in online_cfgs.values())]
    rewrites = method_rewrites(run, rollout, used) if trains else {}  # from the base, first
    eval_cfg = dataclasses.replace(cfg.eval, n=cfg.train.validation_n, greedy=False)

    def data_of(method: str) -> list[Record]:
        return [r for r in method_data(run, method, rewrites) if r.problem_id not in held_ids]

    def offline(method: str) -> Callable[[float, Path], Any]:
        records = data_of(method) if trains else []
        return lambda lr, folder: train_job(
            run, records, method_objective(run, method), str(folder.relative_to(run.out)),
            rollout, lr,
        )  # fmt: skip

    def online(online_cfg: JobConfig) -> Callable[[float, Path], Any]:
        return lambda lr, folder: online_job(
            on_split(run, at_lr(online_cfg, lr), folder, held_ids), rollout,
            offline=data_of(online_cfg.online.method),
        )  # fmt: skip

    trainers = {m: offline(m) for m in cfg.methods}
    trainers.update({n: online(c) for n, c in online_cfgs.items()})
    for name, lr in sorted(trials, key=lambda t: t[0] != BASE):  # the base before any training
        result = trial_result(run, name, lr)
        if lr is not None:
            trainers[name](lr, result.parent)
        results = evaluate(
            rollout, run.tokenizer, run.template, {VALIDATION: held_out}, eval_cfg, run.grader(),
        )  # fmt: skip
        kept = {**results, "settings": plan[name], "world": run.world_hash}
        write_text(result, json.dumps(kept, indent=1))
