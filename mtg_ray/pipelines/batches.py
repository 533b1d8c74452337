"""Where the training loop's batches come from.

`RecordBatches` (offline): a fixed record set, reshuffled each epoch. `OnlineBatches`: each
step's problems rewritten by the rollout group's current weights, optionally sampling the next
step's batch while this one trains (bounded by `online.max_policy_lag`).
"""

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mtg_ray.data import Problem, Record, write_records
from mtg_ray.online import OnlineConfig, may_prefetch, must_sync, step_metrics


class RecordBatches:
    """Offline: step s trains on `records[i] for i in schedule[s]`; never samples."""

    samples_policy = False

    def __init__(self, records: Sequence[Record], schedule: list[list[int]]) -> None:
        self.records, self.schedule = records, schedule
        self.timing: dict[str, float] = {}

    def batch(self, step: int, version: int) -> tuple[list[Record], dict[str, float]]:
        return [self.records[i] for i in self.schedule[step]], {}

    def wants_sync(self, steps_done: int, version: int) -> bool:
        return False

    def before_sync(self) -> None:
        pass

    def close(self) -> None:
        pass


Rewriter = Callable[[list[Problem]], list[Record]]


class OnlineBatches:
    """Online: step s's batch is `rewrite([problems[i] for i in schedule[s]])`, sampled by the
    rollout group at its current version; each batch is kept as
    `<data_dir>/step-<s>.parquet`."""

    samples_policy = True

    def __init__(
        self,
        problems: Sequence[Problem],
        schedule: list[list[int]],
        rewrite: Rewriter,
        cfg: OnlineConfig,
        data_dir: Path,
    ) -> None:
        self.problems, self.schedule, self.rewrite = problems, schedule, rewrite
        self.cfg, self.data_dir = cfg, data_dir
        self.timing = {"generate_s": 0.0, "wait_s": 0.0}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-prefetch")
        self._pending: Future | None = None

    def _generate(self, step: int) -> tuple[list[Record], float]:
        start = time.monotonic()
        records = self.rewrite([self.problems[i] for i in self.schedule[step]])
        return records, time.monotonic() - start

    def batch(self, step: int, version: int) -> tuple[list[Record], dict[str, float]]:
        """Step `step`'s records (prefetched or sampled now) and their `online/*` metrics; then
        the next step's batch starts sampling if its lag would stay within bounds."""
        start = time.monotonic()
        if self._pending is not None:
            records, gen_s = self._pending.result()
            self.timing["wait_s"] += time.monotonic() - start
            self._pending = None
        else:
            records, gen_s = self._generate(step)
            self.timing["generate_s"] += gen_s
        write_records(self.data_dir / f"step-{step:05d}.parquet", records)
        if step + 1 < len(self.schedule) and may_prefetch(step + 1, version, self.cfg):
            self._pending = self._pool.submit(self._generate, step + 1)
        return records, {**step_metrics(step, records), "time/generate_s": gen_s}

    def wants_sync(self, steps_done: int, version: int) -> bool:
        return must_sync(steps_done, version, self.cfg)

    def before_sync(self) -> None:
        """The engines finish a prefetched batch before their weights change."""
        if self._pending is not None:
            start = time.monotonic()
            self._pending.result()
            self.timing["wait_s"] += time.monotonic() - start

    def close(self) -> None:
        self._pool.shutdown(wait=True)
