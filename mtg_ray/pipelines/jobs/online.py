"""The online jobs: train `online.method` with every batch rewritten by the live policy, and
compare that with the offline run of the same method at equal steps.

The online job is the training loop (`mtg_ray.pipelines.jobs.loop`) with an `OnlineBatches` source;
each step's records are kept as `<out>/<run>/data/step-<s>.parquet` with their provenance and
policy version.
"""

import dataclasses
from collections import Counter
from contextlib import nullcontext
from typing import Any

from mtg_ray.config import JobConfig
from mtg_ray.data import Problem, Record, write_text
from mtg_ray.evaluate.report import headline_accuracy
from mtg_ray.grading import Grader
from mtg_ray.learner import num_steps
from mtg_ray.monitor import Monitor, mean_scalar
from mtg_ray.objectives import Objective
from mtg_ray.online import problem_schedule
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.jobs.batches import OnlineBatches, RefreshBatches, RoundBatches
from mtg_ray.pipelines.jobs.evaluate import evaluate
from mtg_ray.pipelines.jobs.loop import TrainLoop
from mtg_ray.pipelines.jobs.offline import (
    evaluate_job,
    method_objective,
    rewrite_job,
    rewrite_name,
    train_job,
)
from mtg_ray.pipelines.jobs.rewrite import rewrite_problems, score_standins
from mtg_ray.pipelines.jobs.session import Run, groups


def online_steps(cfg: JobConfig, num_problems: int) -> int:
    """`online.steps`, or as many as the offline run: `train.epochs` passes over the problems in
    batches of `learner.train_batch_size`, capped at `train.max_steps`."""
    per_step = cfg.learner.train_batch_size
    return cfg.online.steps or num_steps(
        num_problems, per_step, cfg.train.epochs, cfg.train.max_steps
    )


# A run's name starts with its design's: online (per batch), rounds or refresh.
DESIGN_PREFIX = {"per_batch": "online", "rounds": "rounds", "refresh": "refresh"}


def online_name(cfg: JobConfig) -> str:
    """The run's folder and TensorBoard name:
    <online|rounds|refresh>_<method>[_overlap][_expert_<rows>][_anchor][_<control>]."""
    o = cfg.online
    parts = [DESIGN_PREFIX[o.design], o.method]
    parts += ["overlap"] if o.overlap else []
    parts += [f"expert_{o.expert_rows}"] if o.expert_rows != "keep" else []
    parts += ["anchor"] if o.anchor_share else []
    parts += [o.control] if o.control != "none" else []
    return "_".join(parts)


def online_objective(run: Run) -> Objective:
    """`online.method`'s objective, its expert rows weighed as `online.expert_rows` says."""
    objective = method_objective(run, run.cfg.online.method)
    return dataclasses.replace(objective, expert_rows=run.cfg.online.expert_rows)


def offline_round(run: Run, rollout: Rollout) -> list[Record]:
    """The offline round's records (the main job's rewrite, made now with the base weights if
    it is not on disk), for the anchor and refresh designs."""
    cfg = run.cfg.rewrite_of(run.cfg.online.method)
    if not (run.out / rewrite_name(cfg) / "summary.json").is_file():
        rollout.load_folder(run.model_path, 0)
    records, _ = rewrite_job(run, rollout, cfg)
    return records


def online_job(
    run: Run, rollout: Rollout, grader: Grader | None = None,
    offline: list[Record] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train `online.method` online from the base policy (at the method's lr, as offline); the
    rollout group ends holding the final weights. `offline`: the offline round's records, for
    the designs that read them (default: `offline_round`). Returns the loop's result (last
    step's metrics, timings)."""
    cfg = run.cfg
    if cfg.rewrite.keep != "one":
        raise ValueError("online mode needs rewrite.keep=one (one record per problem per step)")
    name = online_name(cfg)
    problems = run.train_problems
    steps = online_steps(cfg, len(problems))
    schedule = problem_schedule(
        len(problems), cfg.learner.train_batch_size, steps, cfg.learner.seed
    )
    grade = grader or run.grader()
    rewrite_cfg = cfg.rewrite_of(cfg.online.method)
    teacher = run.teacher(rewrite_cfg)  # what the live policy misses, rewritten by the teacher

    def rewrite(batch: list[Problem]) -> tuple[list[Record], dict[str, int]]:
        counts: Counter[str] = Counter()
        records = rewrite_problems(
            batch, rollout, run.tokenizer, run.template, rewrite_cfg, grade, counts,
            run.steps_check(), teacher,
        )  # fmt: skip
        if cfg.online.expert_rows == "ratio":
            records = score_standins(
                records, batch, rollout, run.tokenizer, run.template, rewrite_cfg, counts
            )
        return records, dict(counts)

    data_dir = run.out / name / "data"
    reads_offline = cfg.online.design == "refresh" or cfg.online.anchor_share > 0
    if reads_offline and offline is None:
        offline = offline_round(run, rollout)
    if cfg.online.design == "rounds":
        source: OnlineBatches = RoundBatches(
            problems, schedule, rewrite, cfg.online, data_dir, run.faithful()
        )
    elif cfg.online.design == "refresh":
        source = RefreshBatches(
            problems, schedule, rewrite, cfg.online, data_dir, offline or [], rollout.score,
            run.faithful(), experts=run.expert,
        )  # fmt: skip
    else:
        source = OnlineBatches(
            problems, schedule, rewrite, cfg.online, data_dir, run.faithful(),
            base_weights=lambda: rollout.load_folder(run.model_path, 0),
            anchors=offline or (),
            seed=cfg.learner.seed,
        )  # fmt: skip

    def on_eval() -> dict[str, float]:
        n = cfg.online.eval_problems
        cut = {b: problems[:n] for b, problems in run.eval_sets.items()}
        eval_cfg = dataclasses.replace(cfg.eval, n=cfg.train.validation_n, greedy=False)
        results = evaluate(rollout, run.tokenizer, run.template, cut, eval_cfg, run.grader())
        return {f"monitor/{b}/{m}": v for b, ms in results.items() for m, v in ms.items()}

    monitor = Monitor(run.out / "tb" / name)
    loop = TrainLoop(
        make_learner=lambda: run.learner_group(steps, cfg.online_lr()),
        source=source,
        objective=online_objective(run),
        steps=steps,
        out_dir=run.out / name,
        monitor=monitor,
        rollout=rollout,
        save_every=cfg.online.save_every,
        evaluate=on_eval,
        eval_every=cfg.online.eval_every,
        evaluate_at_start=True,  # the monitor's curve starts at the start weights
    )
    try:
        return loop.run()
    finally:
        monitor.close()


def compare_job(run: Run, rollout: Rollout | None = None) -> str:
    """Offline vs online `online.method` (the main job's offline run is reused if present) at
    the same number of steps, with `rollout` on the base policy (default: the run's own groups,
    for this job only): test accuracy and the mean per-step importance-weight variance.
    Returns the `online:` line; the table goes to `<out>/results_<online run>.md`."""
    cfg = run.cfg
    method, name = cfg.online.method, online_name(cfg)
    with groups(run) if rollout is None else nullcontext(rollout) as rollout:
        results = {"base": evaluate_job(run, rollout, "base")}
        rewritten, _ = rewrite_job(run, rollout, cfg.rewrite_of(method))
        if not (run.out / method / "eval.json").is_file():
            train_job(run, rewritten, method_objective(run, method), method, rollout)
        results[method] = evaluate_job(run, rollout, method)
        if not (run.out / name / "eval.json").is_file():
            online_job(run, rollout)
        results[name] = evaluate_job(run, rollout, name)
    offline = num_steps(
        len(rewritten), cfg.learner.train_batch_size, cfg.train.epochs, cfg.train.max_steps
    )
    online = online_steps(cfg, len(run.train_problems))
    main_set, accuracy = headline_accuracy(results)
    variance = {m: mean_scalar(run.out / "tb" / m, "is/all/variance") for m in results}
    lines = [
        f"| method | steps | {main_set} accuracy | mean per-step IS weight variance |",
        "|---|---|---|---|",
    ]
    for m in results:
        n = {"base": "-", method: offline}.get(m, online)
        lines.append(f"| {m} | {n} | {accuracy[m]:.4f} | {variance[m]:.4f} |")
    table = "\n".join(lines) + "\n"
    write_text(run.out / f"results_{name}.md", table)
    print(table)
    line = (
        f"online: offline_{method}={accuracy[method]:.4f} online_{method}={accuracy[name]:.4f} "
        f"is_var_offline={variance[method]:.4f} is_var_online={variance[name]:.4f} "
        f"steps={offline}/{online} overlap={cfg.online.overlap}"
    )
    write_text(run.out / f"{name}.txt", line + "\n")
    return line
