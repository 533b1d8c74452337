"""A study's finished runs, small enough to commit: one JSON file per run under a study's
`<results_dir>/runs/`, so a study longer than one session reads back what earlier sessions
finished and reruns only the rest.

`seed-<s>/<run>.json` keeps what the study's tables and figures read from a run: its metrics
(eval.json), each problem's share of correct samples, its cost, its lr and the TensorBoard
scalars its figure draws. `select_lr/<candidate>/lr-<lr>.json` keeps one lr selection trial's
validation metrics and the settings it was made with (`trial_settings`), and
`select_lr/base.json` the base model's score on the same validation problems (`base_settings`).
A record is written once its run has evaluated and is keyed by run name and seed, and holds the
settings the run was made with (`run_settings`) and the recipe hash of the tiny world it was
made on (`world`; None: no tiny world). A study reading it back refuses a record made on
another world (`check_world`: a world's runs are not another's), at another lr (a new
selection; `check_lr`) or with other settings (`check_settings`) rather than report a run it
did not make, and the selection refuses a trial made on another world or with other settings
likewise. A record or trial kept before worlds were named names none: a study on a tiny world
refuses it (it was made on a world since replaced), one on none reads it. Those kept before
settings were have none: a record is checked on its world and lr only, a trial on its world.
"""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtg_ray.data import write_text
from mtg_ray.data.errors import DataError
from mtg_ray.rewriting.config import LATER_REWRITE_DEFAULTS

# Keys that do not change what a run is: where it writes, which other runs the study makes,
# how lrs are chosen (the chosen lr is checked on its own, `check_lr`), and where its processes
# run and meet (a study may continue on another machine or cluster).
NOT_SETTINGS = (
    "output_dir", "cache_dir", "methods", "train.lr_grid", "train.method_lr",
    "train.validation_problems", "train.validation_n", "world.num_threads",
    "rollout.max_retries", "rollout.keep_weights_for_recovery", "rollout.sync_host",
    "rollout.weight_backend", "rollout.bucket_bytes",
    "rollout.sync_timeout_s", "rollout.shm_dir", "rollout.placement_strategy",
    "rollout.node_resource", "learner.node_resource", "resources.address", "resources.num_cpus",
    "resources.host", "resources.private_network", "resources.gpu_mode", "resources.autoscaler",
    "rollout.start_memory_timeout_s",
)  # fmt: skip
# Keys added after runs were kept: at the value every earlier run had, a key is left out of a
# run's settings, so those runs still match.
LATER_DEFAULTS = {f"rewrite.{k}": v for k, v in LATER_REWRITE_DEFAULTS.items()}
# The teacher's settings belong to a run's only when its data is rewritten with the teacher.
TEACHER = ("teacher",)

# What an lr trial is made with beyond its run's settings (its validation), and what in those
# it replaces (a trial validates with `train.validation_n` samples, never greedily).
TRIAL_SETTINGS = ("train.validation_problems", "train.validation_n")
NOT_TRIAL_SETTINGS = ("eval.n", "eval.greedy")
# What of a trial's settings the base model's score does not depend on: its training.
TRAINING = ("learner", "objective", "rewrite", "train")


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in prefixes)


def run_settings(
    config: Mapping[str, Any], online: bool, uses_teacher: bool = False
) -> dict[str, Any]:
    """The settings a run is made with (`RunRecord.settings`), of its `config` (`JobConfig.flat`):
    every key but NOT_SETTINGS and those at their LATER_DEFAULTS, `online.*` only for an online
    run, and `teacher.*` only for one whose data the teacher rewrites (`uses_teacher`)."""
    left_out = (*NOT_SETTINGS, *(() if online else ("online",)), *(() if uses_teacher else TEACHER))
    return {
        key: value for key, value in config.items()
        if not _under(key, left_out) and LATER_DEFAULTS.get(key, _ABSENT) != value
    }  # fmt: skip


_ABSENT = object()


def trial_settings(
    config: Mapping[str, Any], online: bool, uses_teacher: bool = False
) -> dict[str, Any]:
    """The settings an lr selection trial is made with (its lr aside), of its `config`
    (`JobConfig.flat`): its run's (`run_settings`) less what its validation replaces, plus the
    validation's size and n."""
    settings = run_settings(config, online, uses_teacher)
    for key in NOT_TRIAL_SETTINGS:
        settings.pop(key, None)
    return settings | {key: config[key] for key in TRIAL_SETTINGS}


def base_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the lr selection's score of the base model is made with, of its `config`
    (`JobConfig.flat`): an offline trial's (`trial_settings`) less its training (TRAINING)."""
    settings = trial_settings(config, online=False)
    return {k: v for k, v in settings.items() if k in TRIAL_SETTINGS or not _under(k, TRAINING)}


@dataclass(frozen=True)
class RunRecord:
    """One finished run of a study. metrics: benchmark -> metric -> value (its eval.json).
    accuracy: benchmark -> problem_id -> share of its sampled responses graded correct.
    samples, rewrite_s: samples drawn and seconds spent rewriting for its data (`run_cost`).
    lr: the peak lr it trained at (None: not trained). scalars: tag -> step -> value.
    levels: benchmark -> problem_id -> its level ("" for none; empty in records written before
    levels were kept). settings: the run's config as flat `key: value` pairs (the study's
    `run_settings`; empty in records written before settings were kept). world: the recipe hash
    of the tiny world it was made on (None: no tiny world, or written before worlds were
    named)."""

    name: str
    seed: int
    metrics: dict[str, dict[str, float]]
    accuracy: dict[str, dict[str, float]]
    samples: float
    rewrite_s: float
    lr: float | None
    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    levels: dict[str, dict[str, str]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    world: str | None = None


def record_path(root: Path, seed: int, name: str) -> Path:
    return root / f"seed-{seed}" / f"{name}.json"


def save_record(root: Path, record: RunRecord) -> Path:
    """Write `record` (atomically) under `root`; returns its path."""
    path = record_path(root, record.seed, record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(asdict(record), indent=None, separators=(",", ":")) + "\n")
    return path


def load_record(root: Path, seed: int, name: str) -> RunRecord | None:
    """The record of run `name` of seed `seed` under `root`, or None if there is none."""
    path = record_path(root, seed, name)
    if not path.is_file():
        return None
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        scalars = raw.pop("scalars", {})
        record = RunRecord(
            **raw,
            scalars={
                tag: {int(s): float(v) for s, v in steps.items()} for tag, steps in scalars.items()
            },
        )
    except (ValueError, TypeError, AttributeError) as e:
        raise DataError(path, f"not a run record ({e})") from e
    for key, want in (("name", name), ("seed", seed)):
        if getattr(record, key) != want:
            raise DataError(path, f"is {getattr(record, key)!r}, expected {want!r}", field=key)
    return record


def check_lr(record: RunRecord, lr: float | None, root: Path, run_folder: Path) -> None:
    """Refuse a record made at another lr than the study would train its run at (`run_folder`:
    the run's output, which must go too for the run to be trained again)."""
    same = record.lr == lr or (
        record.lr is not None and lr is not None and abs(record.lr - lr) <= 1e-9 * abs(lr)
    )
    if not same:
        raise DataError(
            record_path(root, record.seed, record.name),
            f"is {record.lr}, but this study trains {record.name} at {lr} (to train it again, "
            f"move this record and the run's folder {run_folder} away)",
            field="lr",
        )


def check_world(record: RunRecord, world: str | None, root: Path, run_folder: Path) -> None:
    """Refuse a record made on another tiny world than `world`, the study's (recipe hashes;
    `refuse_other_world`)."""
    refuse_other_world(
        record_path(root, record.seed, record.name), record.world, world,
        f"train it again, move this record and the run's folder {run_folder} away",
    )  # fmt: skip


def refuse_other_world(path: Path, made: str | None, world: str | None, again: str) -> None:
    """Raise a DataError naming `path` if what it keeps was `made` on another tiny world than
    `world` (recipe hashes; None: none, or kept before worlds were named; `again`: as for
    `refuse_other_settings`)."""
    if made != world:
        was = f"was made on tiny world {made}" if made else "names no tiny world"
        now = f"tiny world {world}" if world else "none"
        raise DataError(path, f"{was}, but this study runs on {now} (to {again})", field="world")


def check_settings(
    record: RunRecord, settings: Mapping[str, Any], root: Path, run_folder: Path
) -> None:
    """Refuse a record whose run was made with other settings than the study would make it with
    now (`refuse_other_settings`)."""
    refuse_other_settings(
        record_path(root, record.seed, record.name), record.settings, settings,
        f"train it again, move this record and the run's folder {run_folder} away",
    )  # fmt: skip


def refuse_other_settings(
    path: Path, made: Mapping[str, Any], settings: Mapping[str, Any], again: str
) -> None:
    """Raise a DataError naming `path` if what it keeps was `made` with other settings than
    `settings` (`again`: how to make it anew, "train it again, move ... away"). Only keys both
    hold are compared: what predates a key (or settings) had that key's behaviour by default,
    and a key since removed no longer means anything."""
    changed = {
        key: (value, settings[key])
        for key, value in made.items()
        if key in settings and value != settings[key]
    }
    if changed:
        shown = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in list(changed.items())[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        raise DataError(
            path,
            f"was made with other settings than this study's ({shown}{more}; to {again})",
            field="settings",
        )


# The base model's name among the lr selection's trials (its score, at no lr) and a study's runs.
BASE = "base"


def trial_path(root: Path, candidate: str, lr: float | None) -> Path:
    """Where trial (`candidate`, `lr`) is kept under `root`; lr None: the base model's score
    (`candidate` BASE), `select_lr/base.json`."""
    folder = root / "select_lr"
    return folder / f"{candidate}.json" if lr is None else folder / candidate / f"lr-{lr:g}.json"


def save_trial(root: Path, candidate: str, lr: float | None, validation: dict[str, Any]) -> None:
    """Keep one lr selection trial's (or, lr None, the base model's) validation metrics (and
    settings and world, as its result has them)."""
    path = trial_path(root, candidate, lr)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(validation, indent=1) + "\n")


def trials(root: Path) -> list[tuple[str, float | None, dict[str, Any]]]:
    """(candidate, lr, validation metrics) of every trial kept under `root`, the base model's
    score first (lr None)."""
    base = trial_path(root, BASE, None)
    kept: list[tuple[str, float | None, dict[str, Any]]] = (
        [(BASE, None, json.loads(base.read_text()))] if base.is_file() else []
    )
    return kept + [
        (path.parent.name, float(path.stem.removeprefix("lr-")), json.loads(path.read_text()))
        for path in sorted((root / "select_lr").glob("*/lr-*.json"))
    ]
