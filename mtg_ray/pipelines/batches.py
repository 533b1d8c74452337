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
from mtg_ray.rewriting.summary import faithful_shares


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


# A batch of problems -> its records, and the rewrite's counts (samples each `screen` rule
# dropped, samples drawn and scored: `rewrite_problems`).
Rewriter = Callable[[list[Problem]], tuple[list[Record], dict[str, int]]]


class OnlineBatches:
    """Online: step s's batch is `rewrite([problems[i] for i in schedule[s]])`, sampled by the
    rollout group at its current version; each batch is kept as
    `<data_dir>/step-<s>.parquet`. Each step logs its batch's `online/dropped_*` (samples the
    rewrite's rules rejected); `faithful` (the tiny world's step check), if given, adds the
    batch's `online/faithful_<source>` share.

    With `online.control=frozen_sampler` the batches do not sample the learner's policy: the
    rollout group is given the base weights (`base_weights`) before the first batch this
    process samples, and no sync follows until the loop's final one (so a resumed run samples
    at version 0 too); prefetching is then never bounded by the lag.

    `timing` (the run's cost, in its `train_done.json`): generate_s, seconds spent rewriting
    batches (in the background too, when overlapped); wait_s, the loop's wait for a prefetched
    batch; samples, samples drawn (`generated_*` counts)."""

    def __init__(
        self,
        problems: Sequence[Problem],
        schedule: list[list[int]],
        rewrite: Rewriter,
        cfg: OnlineConfig,
        data_dir: Path,
        faithful: Callable[[Record], bool] | None = None,
        base_weights: Callable[[], None] | None = None,
    ) -> None:
        self.problems, self.schedule, self.rewrite = problems, schedule, rewrite
        self.faithful = faithful
        self.samples_policy = not cfg.frozen
        if cfg.frozen and base_weights is None:
            raise ValueError("a frozen sampler needs base_weights to give the rollout group")
        self._base_weights = base_weights if cfg.frozen else None
        self.cfg, self.data_dir = cfg, data_dir
        self.timing = {"generate_s": 0.0, "wait_s": 0.0, "samples": 0.0}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-prefetch")
        self._pending: Future | None = None

    def _generate(self, step: int) -> tuple[list[Record], dict[str, int], float]:
        if self._base_weights is not None:  # frozen: once, before the first batch
            self._base_weights()
            self._base_weights = None
        start = time.monotonic()
        records, counts = self.rewrite([self.problems[i] for i in self.schedule[step]])
        return records, counts, time.monotonic() - start

    def batch(self, step: int, version: int) -> tuple[list[Record], dict[str, float]]:
        """Step `step`'s records (prefetched or sampled now) and their `online/*` metrics; then
        the next step's batch starts sampling if its lag would stay within bounds."""
        start = time.monotonic()
        if self._pending is not None:
            records, counts, gen_s = self._pending.result()
            self.timing["wait_s"] += time.monotonic() - start
            self._pending = None
        else:
            records, counts, gen_s = self._generate(step)
        self.timing["generate_s"] += gen_s
        self.timing["samples"] += sum(n for k, n in counts.items() if k.startswith("generated_"))
        write_records(self.data_dir / f"step-{step:05d}.parquet", records)
        ahead = self.cfg.frozen or may_prefetch(step + 1, version, self.cfg)
        if step + 1 < len(self.schedule) and ahead:
            self._pending = self._pool.submit(self._generate, step + 1)
        metrics = {**step_metrics(step, records), "time/generate_s": gen_s}
        metrics.update({f"online/{key}": float(n) for key, n in counts.items()})
        if self.faithful is not None:  # the rewrite summary's shares, without levels
            shares = faithful_shares(records, {}, self.faithful)
            metrics.update({f"online/{key}": share for key, share in shares.items()})
        return records, metrics

    def wants_sync(self, steps_done: int, version: int) -> bool:
        return self.samples_policy and must_sync(steps_done, version, self.cfg)

    def before_sync(self) -> None:
        """The engines finish a prefetched batch before their weights change."""
        if self._pending is not None:
            start = time.monotonic()
            self._pending.result()
            self.timing["wait_s"] += time.monotonic() - start

    def close(self) -> None:
        self._pool.shutdown(wait=True)
