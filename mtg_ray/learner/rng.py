"""Random-number state of a learner rank: seeded at start, saved and restored with checkpoints
so a resumed run draws exactly what an uninterrupted one would."""

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resume_seed(seed: int, step: int, rank: int) -> int:
    """The seed of a rank resuming a checkpoint that holds no RNG state for it (saved on fewer
    ranks): a function of (learner.seed, step, rank) alone, different for each rank."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
