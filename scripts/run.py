"""Run a job: `python scripts/run.py <job> [--config tiny] [key=value ...]`.

Jobs: world (build the tiny world and print its facts), rewrite, train (`train.dataset` with
`train.objective`), evaluate, select_lr (each method at each `train.lr_grid` value, chosen on
a validation split cut from train), main (world -> rewrite -> train baselines and ours ->
evaluate -> results table), online (`online.method` with per-batch rewriting against the live
policy, keys `online.*`; see configs/online.yaml), compare_online (offline vs online
`online.method` at equal steps), study (`--seeds N`: select_lr once, then the main job once per
seed at the selected lrs, then mean and spread over seeds, paired differences with
problem-bootstrap intervals, into `<--results-dir>/results.md` and `results.png`; `--online
dr_sft,dr_dft,dr_is` adds those methods' online runs at equal steps, `--controls` control runs,
`--design` online candidates at their own selected lrs, each with a `results_<run>.png`).
Overrides use the config keys of configs/ (hydra syntax), e.g. `world=small
train.method_lr.dr_dft=3e-5`; an override no run of the job reads (`learner.lr` where
`train.method_lr` or `train.lr_grid` sets every lr) fails, naming the key that does. Under
`ray job submit`, add `resources=cluster` to join the job's cluster.
"""

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from mtg_ray.config import JobConfig, check_lr_override, check_paths, compose, trained_lrs
from mtg_ray.objectives import Objective
from mtg_ray.online.config import parse_candidate
from mtg_ray.pipelines.jobs import offline, online
from mtg_ray.pipelines.jobs.select_lr import select_lr
from mtg_ray.pipelines.jobs.session import enter_private_network, groups, start
from mtg_ray.pipelines.jobs.study import study_job

JOBS = (
    "world", "rewrite", "train", "evaluate", "select_lr", "main", "online", "compare_online",
    "study",
)  # fmt: skip


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line: the job, its flags and the hydra overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=JOBS)
    parser.add_argument("--config", default="tiny", help="preset under configs/")
    parser.add_argument("--seeds", type=int, default=3, help="study: seeds (runs per method)")
    parser.add_argument("--results-dir", default="docs", help="study: where results.md goes")
    parser.add_argument(
        "--online", default="", help="study: methods also run online, e.g. dr_sft,dr_dft,dr_is"
    )
    parser.add_argument(
        "--controls",
        default="",
        help="study: control runs of the online loop, method:control items, e.g. "
        "dr_sft:frozen_sampler,dr_sft:near_zero_lr",
    )
    parser.add_argument(
        "--design",
        action="append",
        default=[],
        help="study: an online candidate trained at its own selected lr, "
        "method[:key=value[+key=value]] of online.* keys, e.g. dr_dft:design=rounds+rounds=3 "
        "(repeat for more)",
    )
    parser.add_argument(
        "--no-select-lr",
        action="store_true",
        help="study: train at train.method_lr instead of selecting lrs first",
    )
    parser.add_argument("overrides", nargs="*", help="hydra overrides, e.g. world=small")
    return parser.parse_intermixed_args(argv)  # overrides may come before or after --config


def job_lrs(args: argparse.Namespace, cfg: JobConfig) -> dict[str, tuple[float, str]]:
    """What each run of the job trains at and the key that sets it (`trained_lrs`): a study
    trains as `select_lr` chooses, or with `--no-select-lr` as the main job (and its online
    methods)."""
    job = {"study": "main" if args.no_select_lr else "select_lr"}.get(args.job, args.job)
    return trained_lrs(cfg, job, [m for m in args.online.split(",") if m])


def main() -> None:
    args = parse(sys.argv[1:])
    try:
        cfg = check_paths(compose(args.config, args.overrides))
        check_lr_override(job_lrs(args, cfg), args.overrides)
    except ValueError as e:  # every config error is one line, before Ray or a model starts
        sys.exit(f"config error: {e}")
    enter_private_network(cfg)
    if args.job == "study":  # starts Ray itself, once per seed's run
        command = "python " + shlex.join(["scripts/run.py", *sys.argv[1:]])
        methods = [m for m in args.online.split(",") if m]
        controls = [tuple(c.split(":", 1)) for c in args.controls.split(",") if c]
        if any(len(c) != 2 for c in controls):
            sys.exit(f"--controls takes method:control items, got {args.controls!r}")
        try:
            designs = [parse_candidate(spec) for spec in args.design]
        except ValueError as e:
            sys.exit(f"--design: {e}")
        results_dir = Path(args.results_dir)
        select = not args.no_select_lr
        print(study_job(cfg, args.seeds, results_dir, command, methods, select, controls, designs))
        return
    run = start(cfg)
    if args.job == "world":
        assert run.world is not None, "this config uses no tiny world"
        print(json.dumps(run.world.facts, indent=1))
    elif args.job == "rewrite":
        with groups(run) as rollout:
            _, summary = offline.rewrite_job(run, rollout)
        print(json.dumps(summary, indent=1))
    elif args.job == "train":
        records = offline.dataset(run, cfg.train.dataset)
        objective = Objective(cfg.train.objective, cfg.objective)
        try:
            result = offline.train_job(run, records, objective, f"train-{objective.name}")
        finally:
            run.learner.close()
        print(json.dumps(result["last"], indent=1))
    elif args.job == "evaluate":
        with groups(run) as rollout:
            print(json.dumps(offline.evaluate_job(run, rollout, "evaluate"), indent=1))
    elif args.job == "select_lr":
        with groups(run) as rollout:
            print(json.dumps(select_lr(run, rollout), indent=1))
    elif args.job == "online":
        with groups(run) as rollout:
            result = online.online_job(run, rollout)
            evaluation = offline.evaluate_job(run, rollout, online.online_name(cfg))
        print(json.dumps({"last": result["last"], "eval": evaluation}, indent=1))
    elif args.job == "compare_online":
        print(online.compare_job(run))
    else:
        print(offline.main_job(run))


if __name__ == "__main__":
    main()
