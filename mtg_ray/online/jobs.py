"""The online job on Ray: rewrite each batch with the current policy, train one step, sync.

    for step s:
        batch  <- three stages on learner.train_batch_size problems, sampled by the rollout
                  group at its current version v (prefetched during step s-1 if overlap is on)
        train  <- one learner step; the ratio is live log-probs / behaviour log-probs at v
        sync   <- learner -> rollout group when `must_sync` (then v = s + 1)

Each step's records are kept as a parquet file (`<out>/online/data/step-<s>.parquet`) with
their provenance and policy version. A checkpoint holds the learner state, the data cursor and
the policy version; on resume the rollout group gets the checkpoint's weights before sampling.
"""

import dataclasses
import json
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from actors.learner import LearnerGroup
from actors.rollout import RolloutGroup
from mtg_ray.data import Problem, Record, write_records, write_text
from mtg_ray.monitor import Monitor
from mtg_ray.objectives import ObjectiveConfig
from mtg_ray.offline.jobs import (
    METHODS,
    Run,
    evaluate_job,
    grader,
    push_export,
    rewrite_job,
    rollout_group,
    train_job,
)
from mtg_ray.offline.report import headline_accuracy
from mtg_ray.offline.rewrite import rewrite_problems
from mtg_ray.offline.train import batch_schedule, total_steps
from mtg_ray.online.staleness import batch_lag, may_prefetch, must_sync


def online_steps(run: Run, num_problems: int) -> int:
    """`online.steps`, or one pass over the problems when it is 0."""
    per_step = run.cfg.learner.train_batch_size
    return run.cfg.online.steps or num_problems // per_step


def problem_schedule(run: Run, num_problems: int, steps: int) -> list[list[int]]:
    """Problem indices of every step: shuffled passes over the problems, as many as needed."""
    per_step = run.cfg.learner.train_batch_size
    epochs = math.ceil(steps / max(1, num_problems // per_step))
    return batch_schedule(num_problems, per_step, epochs, run.cfg.learner.seed, steps)


def _sync(rollout: RolloutGroup, learner: LearnerGroup, run: Run, version: int) -> float:
    start = time.monotonic()
    rollout.update_weights(learner.named_weights(run.cfg.rollout.bucket_bytes), version=version)
    return time.monotonic() - start


def online_job(
    run: Run, rollout: RolloutGroup, objective: ObjectiveConfig, name: str = "online"
) -> dict[str, Any]:
    """Train `name` online from the base model to `online.steps`; leaves the rollout group
    holding the final weights. Returns the last step's metrics and timing shares."""
    cfg, ocfg = run.cfg, run.cfg.online
    if cfg.rewrite.keep != "one":
        raise ValueError("online mode needs rewrite.keep=one (one record per problem per step)")
    out = run.out / name
    done_path = out / "train_done.json"
    if done_path.is_file():
        push_export(rollout, out)
        return json.loads(done_path.read_text())
    problems = run.train_problems
    steps = online_steps(run, len(problems))
    schedule = problem_schedule(run, len(problems), steps)
    learner = LearnerGroup(dataclasses.replace(cfg.learner, total_steps=max(1, steps)))
    monitor = Monitor(run.out / "tb" / name)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-prefetch")
    grade = grader(run)

    def generate(step: int) -> tuple[list[Record], float]:
        start = time.monotonic()
        batch: list[Problem] = [problems[i] for i in schedule[step]]
        records = rewrite_problems(
            batch, rollout, run.tokenizer, run.template, cfg.rewrite, grade
        )  # fmt: skip
        return records, time.monotonic() - start

    try:
        state = learner.load_checkpoint(out / "ckpt") or {"cursor": 0, "policy_version": 0}
        cursor, version = int(state["cursor"]), 0
        if cursor > 0:  # the rollout group restarted from the base model: give it the live one
            version = cursor
            _sync(rollout, learner, run, version)
        pending: Future | None = None
        metrics: dict[str, float] = {}
        timing = {"generate_s": 0.0, "wait_s": 0.0, "train_s": 0.0, "sync_s": 0.0}
        loop_start = time.monotonic()
        with tqdm(total=steps, initial=cursor, desc=f"online {name}", unit="step") as bar:
            for step in range(cursor, steps):
                start = time.monotonic()
                if pending is None:
                    records, gen_s = generate(step)
                    timing["generate_s"] += gen_s
                else:
                    records, gen_s = pending.result()
                    timing["wait_s"] += time.monotonic() - start
                    pending = None
                write_records(out / "data" / f"step-{step:05d}.parquet", records)
                if step + 1 < steps and may_prefetch(step + 1, version, ocfg):
                    pending = pool.submit(generate, step + 1)
                lags = batch_lag(step, records)

                start = time.monotonic()
                metrics = learner.train_step(records, objective)
                train_s = time.monotonic() - start
                timing["train_s"] += train_s

                sync_s = 0.0
                if step + 1 < steps and must_sync(step + 1, version, ocfg):
                    if pending is not None:  # the engines finish that batch before syncing
                        start = time.monotonic()
                        pending.result()
                        timing["wait_s"] += time.monotonic() - start
                    sync_s = _sync(rollout, learner, run, step + 1)
                    version = step + 1
                    timing["sync_s"] += sync_s
                metrics.update(_step_metrics(records, lags, gen_s, train_s, sync_s))
                monitor.scalars(metrics, step + 1)
                monitor.histogram("is/log_ratio", learner.last_log_ratios, step + 1)
                if (step + 1) % ocfg.save_every == 0 or step + 1 == steps:
                    learner.save_checkpoint(
                        out / "ckpt", {"cursor": step + 1, "policy_version": version}
                    )
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['train/loss']:.3f}", lag=max(lags, default=0))
        timing["loop_s"] = time.monotonic() - loop_start
        timing["steps_run"] = steps - cursor
        rollout.update_weights(learner.named_weights(cfg.rollout.bucket_bytes), version=steps)
        learner.export_hf(out / "model")
        result = {"steps": steps, "last": metrics, "timing": timing}
        write_text(done_path, json.dumps(result, indent=1))
        return result
    finally:
        pool.shutdown(wait=True)
        monitor.close()
        learner.shutdown()


def _step_metrics(
    records: list[Record], lags: list[int], gen_s: float, train_s: float, sync_s: float
) -> dict[str, float]:
    """`online/*`: stage fractions of the batch, policy lag, and where the time went."""
    n = max(1, len(records))
    out = {f"online/{s}_fraction": sum(r.source == s for r in records) / n for s in SOURCES}
    out["online/policy_lag_mean"] = float(np.mean(lags)) if lags else 0.0
    out["online/policy_lag_max"] = float(max(lags, default=0))
    out.update({"online/generate_s": gen_s, "online/train_s": train_s, "online/sync_s": sync_s})
    return out


SOURCES = ("self", "guided", "expert")


def mean_scalar(log_dir: Path, tag: str) -> float:
    """Mean over steps of a TensorBoard scalar written under `log_dir` (nan if absent)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not log_dir.is_dir():
        return float("nan")
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}).Reload()
    if tag not in events.Tags()["scalars"]:
        return float("nan")
    return float(np.mean([e.value for e in events.Scalars(tag)]))


def compare_job(run: Run) -> str:
    """Offline vs online `online.method` (DR+IS or DR+DFT; the main job's offline run is reused
    if present) at the same number of steps: test accuracy and the mean per-step
    importance-weight variance. Returns the `online:` line; the table goes to
    `<out>/results_<online run>.md`."""
    cfg = run.cfg
    method = cfg.online.method
    objective = dataclasses.replace(cfg.objective, name=METHODS[method][1])
    with rollout_group(run) as rollout:
        results = {"base": evaluate_job(run, rollout, "base")}
        rewritten, _ = rewrite_job(run, rollout)
        if not (run.out / method / "eval.json").is_file():
            train_job(run, rewritten, objective, method, rollout)
        results[method] = evaluate_job(run, rollout, method)
        steps = total_steps(len(rewritten), cfg.learner.train_batch_size, cfg.train)
        online = dataclasses.replace(cfg.online, steps=cfg.online.steps or steps)
        online_run = dataclasses.replace(run, cfg=dataclasses.replace(cfg, online=online))
        name = f"online_{method}" + ("_overlap" if online.overlap else "")
        if not (run.out / name / "eval.json").is_file():
            online_job(online_run, rollout, objective, name)
        results[name] = evaluate_job(run, rollout, name)
    main_set, accuracy = headline_accuracy(results)
    variance = {m: mean_scalar(run.out / "tb" / m, "is/all/variance") for m in results}
    lines = [
        f"| method | steps | {main_set} accuracy | mean per-step IS weight variance |",
        "|---|---|---|---|",
    ]
    for m in results:
        n = {"base": "-", method: steps}.get(m, online.steps)
        lines.append(f"| {m} | {n} | {accuracy[m]:.4f} | {variance[m]:.4f} |")
    table = "\n".join(lines) + "\n"
    write_text(run.out / f"results_{name}.md", table)
    print(table)
    line = (
        f"online: offline_{method}={accuracy[method]:.4f} online_{method}={accuracy[name]:.4f} "
        f"is_var_offline={variance[method]:.4f} is_var_online={variance[name]:.4f} "
        f"steps={steps}/{online.steps} overlap={online.overlap}"
    )
    write_text(run.out / f"{name}.txt", line + "\n")
    return line
