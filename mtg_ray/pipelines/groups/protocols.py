"""What the drivers need of the two groups. `LearnerGroup` and `RolloutGroup` implement these on
Ray; the fast tests implement them in process (stand-ins, named as such), so the driver logic
runs in milliseconds without Ray, vLLM or DeepSpeed."""

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

from mtg_ray.data import Record
from mtg_ray.learner import StepResult
from mtg_ray.objectives import Objective
from mtg_ray.rollout import Sample, SamplingConfig


class Rollout(Protocol):
    """Samples and scores with the policy it was last given (`update_weights` from weights held
    here, `sync_from` a learner, `load_folder` from an HF export)."""

    @property
    def bucket_bytes(self) -> int: ...

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig | Sequence[SamplingConfig]
    ) -> list[list[Sample]]: ...

    def score(
        self, prompts: list[list[int]], responses: list[list[int]]
    ) -> list[list[float] | None]: ...

    def update_weights(self, named: Iterable[tuple[str, Tensor]], version: int) -> Any: ...

    def sync_from(self, learner: "Learner", version: int) -> Any: ...

    def load_folder(self, folder: str | Path, version: int) -> None: ...

    def release(self) -> None:
        """Give the GPUs it shares with the learner back until its next call (or nothing)."""
        ...


class Learner(Protocol):
    """Trains the policy one optimizer step at a time; checkpoints and exports it."""

    def train_step(self, records: Sequence[Record], objective: Objective) -> StepResult: ...

    def save_checkpoint(self, ckpt_dir: str | Path, client_state: dict[str, Any]) -> str: ...

    def load_checkpoint(self, ckpt_dir: str | Path) -> dict[str, Any] | None: ...

    def named_weights(self, bucket_bytes: int) -> Iterator[tuple[str, Tensor]]: ...

    def export_hf(self, out_dir: str | Path) -> Path: ...

    def shutdown(self) -> None: ...
