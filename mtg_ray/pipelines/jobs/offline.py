"""The offline jobs: rewrite, train, evaluate, and `main` (all of them, compared).

Every job reads one JobConfig, writes under `output_dir`, and can be rerun after a crash: what is
finished is read back, what is not is redone (rewrite shards, train checkpoints, eval results).
"""

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from mtg_ray.data import Record, read_records, write_text
from mtg_ray.evaluate.report import demo_line, headline_accuracy, write_report
from mtg_ray.learner import batch_schedule
from mtg_ray.monitor import Monitor
from mtg_ray.objectives import METHODS, Objective
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.jobs.batches import RecordBatches
from mtg_ray.pipelines.jobs.evaluate import evaluate
from mtg_ray.pipelines.jobs.loop import TrainLoop
from mtg_ray.pipelines.jobs.rewrite import (
    keep_rewrite,
    kept_rewrite,
    problems_digest,
    reuse_rewrite,
    rewrite_counts,
    rewrite_manifest,
    run_rewrite,
)
from mtg_ray.pipelines.jobs.session import Run, groups
from mtg_ray.rewriting import RewriteConfig
from mtg_ray.rewriting.summary import faithful_shares, summarize


def rewrite_name(cfg: RewriteConfig) -> str:
    """The folder (and TensorBoard run) of a rewrite: `rewrite` for the policy's, else
    `rewrite_<rewriter>[_after_guided]`."""
    if cfg.rewriter == "policy":
        return "rewrite"
    return f"rewrite_{cfg.rewriter}" + ("_after_guided" if cfg.teacher_after_guided else "")


def rewrite_job(
    run: Run, rollout: Rollout, cfg: RewriteConfig | None = None
) -> tuple[list[Record], dict[str, float]]:
    """The rewriting stages of `cfg` (default `rewrite`) with the rollout group's policy (and
    the teacher, if `cfg.rewriter` asks for it), then the summary against the raw expert data
    (both scored by that policy)."""
    cfg = run.cfg.rewrite if cfg is None else cfg
    name = rewrite_name(cfg)
    out = run.out / name
    teacher = run.teacher(cfg)
    kept = None
    if teacher is not None:  # one teacher rewrite serves every run that shares it
        kept = kept_rewrite(
            run.cache_root,
            rewrite_manifest(run.train_problems, cfg, run.model_path, teacher, run.teacher_path),
            {"problems": problems_digest(run.train_problems),
             "rollout": [run.cfg.rollout.seed, run.cfg.rollout.num_engines],
             "teacher": dataclasses.asdict(run.cfg.teacher)},
        )  # fmt: skip
        if reuse_rewrite(kept, out):
            print(f"{name}: the rewrite kept at {kept} (its cost is charged to this run too)")
    records = run_rewrite(
        run.train_problems, rollout, run.tokenizer, run.template, cfg, out, run.grader(),
        model=run.model_path, steps_check=run.steps_check(), teacher=teacher,
        teacher_model=run.teacher_path,
    )  # fmt: skip
    if kept is not None:
        keep_rewrite(out, kept)
    summary_path = out / "summary.json"
    if summary_path.is_file():
        return records, json.loads(summary_path.read_text())
    scored_records, records_scores = scored(rollout, records)
    scored_expert, expert_scores = scored(rollout, run.expert)
    summary = summarize(scored_records, records_scores, scored_expert, expert_scores)
    summary["too_long_to_score"] = float(
        len(records) - len(scored_records) + len(run.expert) - len(scored_expert)
    )
    summary.update(rewrite_counts(out))
    if (faithful := run.faithful()) is not None:
        levels = {p.problem_id: p.level for p in run.train_problems}
        summary.update(faithful_shares(records, levels, faithful))
    write_text(summary_path, json.dumps(summary, indent=1))
    monitor = Monitor(run.out / "tb" / name)
    monitor.scalars(summary, 0, prefix="rewrite/")
    monitor.close()
    return records, summary


def dataset(run: Run, name: str) -> list[Record]:
    """Records by name: rewritten (this run's rewrite), expert, or a parquet file/folder."""
    if name == "expert":
        return run.expert
    path = run.out / rewrite_name(run.cfg.rewrite) / "shards" if name == "rewritten" else Path(name)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"no training records at {path}: run the rewrite job first")
    return [r for f in files for r in read_records(f)]


def scored(rollout: Rollout, records: list[Record]) -> tuple[list[Record], list[list[float]]]:
    """The records the rollout group could score (a pair too long for it is left out of the
    summary's diagnostics, and counted there), and their per-token log-probs."""
    scores = rollout.score(
        [r.prompt_token_ids for r in records], [r.response_token_ids for r in records]
    )
    kept = [(r, s) for r, s in zip(records, scores, strict=True) if s is not None]
    return [r for r, _ in kept], [s for _, s in kept]


def evaluate_job(run: Run, rollout: Rollout, name: str) -> dict[str, dict[str, float]]:
    """Evaluate the rollout group's current weights; cached in `<out>/<name>/eval.json`."""
    path = run.out / name / "eval.json"
    if path.is_file():
        return json.loads(path.read_text())
    results = evaluate(
        rollout, run.tokenizer, run.template, run.eval_sets, run.cfg.eval, run.grader(),
        run.out / name / "eval_samples.jsonl",
    )  # fmt: skip
    write_text(path, json.dumps(results, indent=1))
    return results


def train_job(
    run: Run, records: list[Record], objective: Objective, name: str,
    rollout: Rollout | None = None, lr: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train a fresh learner group from the base policy on `records` at peak `lr` (default
    `learner.lr`; `train.*` decides epochs, checkpoints and evaluations); `rollout`, if given,
    ends holding the trained weights."""
    cfg = run.cfg
    schedule = batch_schedule(
        len(records),
        cfg.learner.train_batch_size,
        cfg.train.epochs,
        cfg.learner.seed,
        cfg.train.max_steps,
    )
    steps = len(schedule)
    monitor = Monitor(run.out / "tb" / name)

    def on_eval() -> dict[str, float]:
        assert rollout is not None
        results = evaluate(
            rollout, run.tokenizer, run.template, run.eval_sets, cfg.eval, run.grader()
        )  # fmt: skip
        return {f"eval/{b}/{m}": v for b, ms in results.items() for m, v in ms.items()}

    loop = TrainLoop(
        make_learner=lambda: run.learner_group(steps, lr),
        source=RecordBatches(records, schedule),
        objective=objective,
        steps=steps,
        out_dir=run.out / name,
        monitor=monitor,
        rollout=rollout,
        evaluate=on_eval if rollout is not None else None,
        eval_every=cfg.train.eval_every,
        save_every=cfg.train.save_every,
    )
    try:
        return loop.run()
    finally:
        monitor.close()


def method_rewrites(
    run: Run, rollout: Rollout, methods: Sequence[str], with_own: bool = False
) -> dict[str, tuple[list[Record], dict[str, float]]]:
    """Rewrite name (`rewrite_name`) -> (records, summary) of every rewrite `methods` train on
    (and the config's own `rewrite` first, `with_own`), each made by `rollout` as it holds the
    policy now: call it before any training, with the base policy."""
    cfgs = [run.cfg.rewrite] if with_own else []
    cfgs += [run.cfg.rewrite_of(m) for m in methods if METHODS[m].dataset == "rewritten"]
    rewrites: dict[str, tuple[list[Record], dict[str, float]]] = {}
    for cfg in cfgs:
        if rewrite_name(cfg) not in rewrites:
            rewrites[rewrite_name(cfg)] = rewrite_job(run, rollout, cfg)
    return rewrites


def method_data(
    run: Run, method: str, rewrites: Mapping[str, tuple[list[Record], Any]]
) -> list[Record]:
    """The records `method` trains on: the expert data, or its rewrite's (`method_rewrites`)."""
    if METHODS[method].dataset == "expert":
        return run.expert
    return rewrites[rewrite_name(run.cfg.rewrite_of(method))][0]


def method_objective(run: Run, method: str) -> Objective:
    """`method`'s objective with this run's objective settings, its expert rows weighed as the
    method says."""
    m = METHODS[method]
    return Objective(m.objective, run.cfg.objective, expert_rows=m.expert_rows)


def main_job(
    run: Run, rollout: Rollout | None = None, finished: Callable[[str], None] = lambda name: None
) -> str:
    """World -> rewrite -> train the baselines and ours -> evaluate -> table, with `rollout`
    (default: the run's own groups, for this job only); `finished(name)` once each run (the
    base model, each method) has evaluated. Returns the `demo:` line."""
    start_time = time.monotonic()
    with groups(run) if rollout is None else nullcontext(rollout) as rollout:
        results = {"base": evaluate_job(run, rollout, "base")}
        finished("base")
        rewrites = method_rewrites(run, rollout, run.cfg.methods, with_own=True)
        for method in run.cfg.methods:
            if not (run.out / method / "eval.json").is_file():
                objective = method_objective(run, method)
                data = method_data(run, method, rewrites)
                train_job(run, data, objective, method, rollout, run.cfg.lr_of(method))
            results[method] = evaluate_job(run, rollout, method)
            finished(method)
    _, accuracy = headline_accuracy(results)
    summary = rewrites[rewrite_name(run.cfg.rewrite)][1]
    teacher = next((s for name, (_, s) in rewrites.items() if name != "rewrite"), None)
    table = write_report(run.out, results, accuracy, summary, teacher)
    print(table)
    print(f"wall time: {time.monotonic() - start_time:.0f} s; outputs in {run.out}")
    line = demo_line(accuracy, summary, teacher)
    write_text(run.out / "demo.txt", line + "\n")
    return line
