"""Run an offline job: `python scripts/run.py <job> [--config tiny] [key=value ...]`.

Jobs: world (build the tiny world and print its facts), rewrite, train, evaluate, main (world ->
rewrite -> train baselines and ours -> evaluate -> results table), online (per-batch rewriting
against the live policy, `online.*` keys; see configs/online.yaml), compare_online (offline
vs online DR+IS, or `online.method=dr_dft`, at equal steps). Overrides use the config keys
of configs/ (hydra syntax), e.g. `learner.lr=1e-4 world=small objective=dft`.
Under `ray job submit`, add `resources=cluster` to join the job's cluster.
"""

import argparse
import dataclasses
import json

from mtg_ray.config import compose
from mtg_ray.objectives import ObjectiveConfig
from mtg_ray.offline import jobs
from mtg_ray.online import jobs as online

JOBS = ("world", "rewrite", "train", "evaluate", "main", "online", "compare_online")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=JOBS)
    parser.add_argument("--config", default="tiny", help="preset under configs/")
    parser.add_argument("overrides", nargs="*", help="hydra overrides, e.g. learner.lr=1e-4")
    args = parser.parse_intermixed_args()  # overrides may come before or after --config
    cfg = compose(args.config, args.overrides)
    run = jobs.start(cfg)
    if args.job == "world":
        assert run.world is not None, "this config uses no tiny world"
        print(json.dumps(run.world.facts, indent=1))
    elif args.job == "rewrite":
        with jobs.rollout_group(run) as rollout:
            _, summary = jobs.rewrite_job(run, rollout)
        print(json.dumps(summary, indent=1))
    elif args.job == "train":
        objective: ObjectiveConfig = run.cfg.objective
        records = jobs.dataset(run, run.cfg.train.dataset)
        name = f"train-{objective.name}"
        result = jobs.train_job(run, records, dataclasses.replace(objective), name)
        print(json.dumps(result["last"], indent=1))
    elif args.job == "evaluate":
        with jobs.rollout_group(run) as rollout:
            print(json.dumps(jobs.evaluate_job(run, rollout, "evaluate"), indent=1))
    elif args.job == "online":
        name = f"online_{run.cfg.objective.name}"
        with jobs.rollout_group(run) as rollout:
            result = online.online_job(run, rollout, run.cfg.objective, name)
            evaluation = jobs.evaluate_job(run, rollout, name)
        print(json.dumps({"last": result["last"], "eval": evaluation}, indent=1))
    elif args.job == "compare_online":
        print(online.compare_job(run))
    else:
        print(jobs.main_job(run))


if __name__ == "__main__":
    main()
