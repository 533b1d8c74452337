"""Schedules of a training run: the learning rate (linear warmup, then cosine decay, the verl
SFT trainer's shape) and the data order (which records each optimizer step trains on).

Batches are a fixed function of (number of records, batch size, seed, epoch), so the data cursor
(the number of optimizer steps taken) is all a checkpoint needs to continue with the next batch.
"""

import math
import random


def lr_multiplier(step: int, total_steps: int, warmup_ratio: float, min_lr_ratio: float) -> float:
    """Factor on the base lr for optimizer step `step` (0-based).

    Warmup ramps linearly to 1 over ceil(warmup_ratio * total_steps) steps, starting above 0 so
    the first step trains; cosine then decays to `min_lr_ratio` at `total_steps`, and stays.
    """
    warmup = math.ceil(warmup_ratio * total_steps)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def num_steps(num_records: int, batch_size: int, epochs: int, max_steps: int = 0) -> int:
    """Optimizer steps of `epochs` passes in full batches, capped at max_steps (0 = no cap)."""
    steps = (num_records // batch_size) * epochs
    return min(steps, max_steps) if max_steps else steps


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
