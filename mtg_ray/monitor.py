"""TensorBoard logging: metric dicts whose keys are the tags (`train/loss`, `is/self/ess`)."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


class Monitor:
    """A SummaryWriter under `log_dir`; non-finite values are skipped, not logged."""

    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, metrics: Mapping[str, float], step: int, prefix: str = "") -> None:
        for tag, value in metrics.items():
            if np.isfinite(value):
                self.writer.add_scalar(f"{prefix}{tag}", float(value), step)

    def histogram(self, tag: str, values: Sequence[float], step: int) -> None:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            self.writer.add_histogram(tag, values, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def read_scalars(log_dir: Path) -> dict[str, dict[int, float]]:
    """tag -> step -> value of every TensorBoard scalar written under `log_dir`, read once (the
    last value written for a step: a resumed run redoes steps); empty if there is no log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not log_dir.is_dir():
        return {}
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}).Reload()
    return {
        tag: {e.step: e.value for e in sorted(events.Scalars(tag), key=lambda e: e.wall_time)}
        for tag in events.Tags()["scalars"]
    }


def scalar_series(log_dir: Path, tag: str) -> dict[int, float]:
    """step -> value of one TensorBoard scalar written under `log_dir`; empty if absent."""
    return read_scalars(log_dir).get(tag, {})


def mean_scalar(log_dir: Path, tag: str) -> float:
    """Mean over steps of a TensorBoard scalar written under `log_dir` (nan if absent)."""
    series = scalar_series(log_dir, tag)
    return float(np.mean(list(series.values()))) if series else float("nan")
