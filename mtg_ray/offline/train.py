"""The train job: the learner group over a record dataset, with checkpoints that resume.

Batches are a fixed function of (records, seed, epoch), so the data cursor (the number of
optimizer steps taken) is all a checkpoint needs to continue with exactly the next batch.
"""

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mtg_ray.config import TrainConfig
from mtg_ray.data import Record, write_text
from mtg_ray.monitor import Monitor
from mtg_ray.objectives import ObjectiveConfig


def batch_schedule(
    num_records: int, batch_size: int, epochs: int, seed: int, max_steps: int = 0
) -> list[list[int]]:
    """Record indices of every optimizer step: each epoch a fresh shuffle cut into full
    batches (a last partial batch is dropped), capped at max_steps (0 = no cap)."""
    if num_records < batch_size:
        raise ValueError(
            f"{num_records} training records are fewer than learner.train_batch_size={batch_size}"
        )
    steps = []
    for epoch in range(epochs):
        order = list(range(num_records))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        steps += [
            order[i : i + batch_size] for i in range(0, num_records - batch_size + 1, batch_size)
        ]
    return steps[:max_steps] if max_steps else steps


def total_steps(num_records: int, batch_size: int, cfg: TrainConfig) -> int:
    per_epoch = num_records // batch_size
    steps = per_epoch * cfg.epochs
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def run_train(
    learner: Any,
    records: Sequence[Record],
    objective: ObjectiveConfig,
    cfg: TrainConfig,
    out_dir: Path,
    monitor: Monitor | None = None,
    on_eval: Callable[[int], dict[str, float]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train to the end of the schedule, resuming from `out_dir/ckpt`; export the final model
    to `out_dir/model`. Returns the last step's metrics and the final evaluation (if any)."""
    done_path = out_dir / "train_done.json"
    if done_path.is_file():
        return json.loads(done_path.read_text())
    schedule = batch_schedule(
        len(records), learner.cfg.train_batch_size, cfg.epochs, seed, cfg.max_steps
    )
    ckpt = out_dir / "ckpt"
    state = learner.load_checkpoint(ckpt) or {"cursor": 0}
    cursor = int(state["cursor"])
    metrics: dict[str, float] = {}
    evals: dict[str, float] = {}
    with tqdm(
        total=len(schedule), initial=cursor, desc=f"train {out_dir.name}", unit="step"
    ) as bar:
        for step in range(cursor, len(schedule)):
            metrics = learner.train_step([records[i] for i in schedule[step]], objective)
            if monitor is not None:
                monitor.scalars(metrics, step + 1)
                monitor.histogram("is/log_ratio", learner.last_log_ratios, step + 1)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['train/loss']:.3f}")
            last = step + 1 == len(schedule)
            if (cfg.save_every and (step + 1) % cfg.save_every == 0) or last:
                learner.save_checkpoint(ckpt, {"cursor": step + 1})
            if on_eval is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
                evals = on_eval(step + 1)
    learner.export_hf(out_dir / "model")
    result = {"steps": len(schedule), "last": metrics, "eval": evals}
    write_text(done_path, json.dumps(result, indent=1))
    return result
