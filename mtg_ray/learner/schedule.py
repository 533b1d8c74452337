"""Learning-rate schedule: linear warmup, then cosine decay (the verl SFT trainer's shape)."""

import math


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
