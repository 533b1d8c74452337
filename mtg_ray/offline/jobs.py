"""The offline jobs on Ray: rewrite, train, evaluate, and `main` (all of them, compared).

Every job reads one JobConfig, writes under `output_dir`, and can be rerun after a crash: what is
finished is read back, what is not is redone (rewrite shards, train checkpoints, eval results).
"""

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import ray
from safetensors.torch import load_file
from transformers import AutoTokenizer

from actors.cluster import init_local_ray
from actors.grading import grade_parallel
from actors.learner import LearnerGroup
from actors.rollout import RolloutGroup
from mtg_ray.config import JobConfig
from mtg_ray.data import Problem, Record, read_records, read_sft_parquet, write_text
from mtg_ray.evaluate.run import evaluate, load_eval_sets
from mtg_ray.monitor import Monitor
from mtg_ray.objectives import ObjectiveConfig
from mtg_ray.offline.report import demo_line, headline_accuracy, write_report
from mtg_ray.offline.rewrite import expert_records, run_rewrite
from mtg_ray.offline.summary import summarize
from mtg_ray.offline.train import run_train, total_steps
from mtg_ray.rewriting.prompts import get_template
from mtg_ray.tinyworld import World, build_world

log = logging.getLogger(__name__)

# method -> (training data, objective): baselines on raw expert data, ours on rewritten data.
METHODS = {
    "sft": ("expert", "sft"),
    "dft": ("expert", "dft"),
    "dr_is": ("rewritten", "is"),
    "dr_dft": ("rewritten", "dr_dft"),
}


@dataclass
class Run:
    """What every job needs: the resolved config, the world (if any), problems, tokenizer.

    Problem sets and the expert records are read once per Run and shared by every job."""

    cfg: JobConfig
    world: World | None
    out: Path
    tokenizer: Any

    @property
    def template(self):
        return get_template(self.cfg.model.template)

    @cached_property
    def train_problems(self) -> list[Problem]:
        data = self.cfg.data
        if data.train == "tinyworld":
            assert self.world is not None
            problems = self.world.train_problems()
        else:
            problems = read_sft_parquet(data.train)
        return problems[: data.max_train_problems] if data.max_train_problems else problems

    @cached_property
    def eval_sets(self) -> dict[str, list[Problem]]:
        return load_eval_sets(self.cfg.data.test, self.world, self.cfg.data.max_test_problems)

    @cached_property
    def expert(self) -> list[Record]:
        """The raw SFT data: every train problem's expert demonstration as a record."""
        return expert_records(self.train_problems, self.tokenizer, self.template)


def start(cfg: JobConfig) -> Run:
    """Join or start Ray, build (or load) the tiny world when the config uses it."""
    res = cfg.resources
    if not ray.is_initialized():
        if res.address:
            ray.init(address=res.address, log_to_driver=False)
        else:
            init_local_ray(res.num_cpus or None, res.host)
    world = None
    if not cfg.model.path or cfg.data.train == "tinyworld" or "tinyworld" in cfg.data.test:
        world = build_world(cfg.world, cfg.cache_dir or None, log=print)
        print(f"tiny world: {world.root}")
    if not cfg.model.path:
        assert world is not None
        cfg = cfg.with_model(world.model_dir)
    else:
        cfg = cfg.with_model(cfg.model.path)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Run(cfg, world, out, AutoTokenizer.from_pretrained(cfg.model.path))


@contextmanager
def rollout_group(run: Run) -> Iterator[RolloutGroup]:
    group = RolloutGroup(run.cfg.rollout)
    try:
        yield group
    finally:
        group.shutdown()


def grader(run: Run):
    """Grade (response, answer) pairs in parallel Ray tasks."""
    return lambda pairs: grade_parallel(pairs, run.cfg.rewrite.grading_tasks)


def rewrite_job(run: Run, rollout: RolloutGroup) -> tuple[list[Record], dict[str, float]]:
    """Stages 1-3 with the base policy, then the summary against the raw expert data."""
    cfg, out = run.cfg, run.out / "rewrite"
    problems = run.train_problems
    records = run_rewrite(
        problems, rollout, run.tokenizer, run.template, cfg.rewrite, out, grader(run),
        model=cfg.model.path,
    )  # fmt: skip
    summary_path = out / "summary.json"
    if summary_path.is_file():
        return records, json.loads(summary_path.read_text())
    expert = run.expert
    score = lambda recs: rollout.score(  # noqa: E731
        [r.prompt_token_ids for r in recs], [r.response_token_ids for r in recs]
    )
    summary = summarize(records, score(records), expert, score(expert))
    write_text(summary_path, json.dumps(summary, indent=1))
    monitor = Monitor(run.out / "tb" / "rewrite")
    monitor.scalars(summary, 0, prefix="rewrite/")
    monitor.close()
    return records, summary


def dataset(run: Run, name: str) -> list[Record]:
    """Records by name: rewritten (this run's rewrite), expert, or a parquet file/folder."""
    if name == "expert":
        return run.expert
    path = run.out / "rewrite" / "shards" if name == "rewritten" else Path(name)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"no training records at {path}: run the rewrite job first")
    return [r for f in files for r in read_records(f)]


def evaluate_job(run: Run, rollout: RolloutGroup, name: str) -> dict[str, dict[str, float]]:
    """Evaluate the rollout group's current weights; cached in `<out>/<name>/eval.json`."""
    path = run.out / name / "eval.json"
    if path.is_file():
        return json.loads(path.read_text())
    results = evaluate(
        rollout, run.tokenizer, run.template, run.eval_sets, run.cfg.eval, grader(run),
        run.out / name / "eval_samples.jsonl",
    )  # fmt: skip
    write_text(path, json.dumps(results, indent=1))
    return results


def train_job(
    run: Run, records: list[Record], objective: ObjectiveConfig, name: str,
    rollout: RolloutGroup | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train a fresh learner group from the base model; sync it into `rollout` when done."""
    cfg = run.cfg
    steps = total_steps(len(records), cfg.learner.train_batch_size, cfg.train)
    learner = LearnerGroup(dataclasses.replace(cfg.learner, total_steps=max(1, steps)))
    monitor = Monitor(run.out / "tb" / name)
    out = run.out / name

    def on_eval(step: int) -> dict[str, float]:
        assert rollout is not None
        rollout.update_weights(learner.named_weights(cfg.rollout.bucket_bytes), version=step)
        results = evaluate(
            rollout, run.tokenizer, run.template, run.eval_sets, cfg.eval, grader(run)
        )  # fmt: skip
        flat = {f"eval/{b}/{m}": v for b, ms in results.items() for m, v in ms.items()}
        monitor.scalars(flat, step)
        return flat

    trained_here = not (out / "train_done.json").is_file()
    try:
        result = run_train(
            learner, records, objective, cfg.train, out, monitor,
            on_eval if rollout is not None else None, seed=cfg.learner.seed,
        )  # fmt: skip
        if rollout is not None and trained_here:
            rollout.update_weights(learner.named_weights(cfg.rollout.bucket_bytes))
        elif rollout is not None:
            push_export(rollout, out)
    finally:
        monitor.close()
        learner.shutdown()
    return result


def push_export(rollout: RolloutGroup, out: Path) -> None:
    """Give `rollout` the weights of a run that finished earlier: its export is the final model."""
    rollout.update_weights(load_file(out / "model" / "model.safetensors").items())


def main_job(run: Run) -> str:
    """World -> rewrite -> train the baselines and ours -> evaluate -> table. Returns the
    `demo:` line."""
    cfg = run.cfg
    start_time = time.monotonic()
    with rollout_group(run) as rollout:
        results = {"base": evaluate_job(run, rollout, "base")}
        rewritten, summary = rewrite_job(run, rollout)
        for method in cfg.methods:
            data, objective_name = METHODS[method]
            objective = dataclasses.replace(cfg.objective, name=objective_name)
            eval_path = run.out / method / "eval.json"
            if not eval_path.is_file():
                train_job(
                    run, run.expert if data == "expert" else rewritten, objective, method, rollout
                )
            results[method] = evaluate_job(run, rollout, method)
    _, accuracy = headline_accuracy(results)
    table = write_report(run.out, results, accuracy, summary)
    print(table)
    print(f"wall time: {time.monotonic() - start_time:.0f} s; outputs in {run.out}")
    line = demo_line(accuracy, summary["var_expert"], summary["var_rewritten"])
    write_text(run.out / "demo.txt", line + "\n")
    return line
