"""The one training loop. Offline training and online mode are this loop with different batch
sources (`mtg_ray.pipelines.jobs.batches`):

    for step s from the checkpoint's cursor:
        batch   <- source.batch(s, policy_version)   (online: sampled by the rollout group)
        train   <- one learner step; metrics and the log-ratio histogram to TensorBoard
        sync    <- learner -> rollout group when the source asks (online), before evaluating,
                   and at the end: the rollout group is told the version it now holds
        save    <- every save_every steps and at the end: learner state + LoopState
    export the final model to <out>/model; write <out>/train_done.json

It owns a run's state: the data cursor and the policy version (`LoopState`), both saved with
each checkpoint and read back on resume. A run that samples from its policy (online) syncs at
every checkpoint, so its saved version always equals its cursor and a resumed run gives the
rollout group exactly the weights of the version it saved.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from mtg_ray.data import Record, write_text
from mtg_ray.monitor import Monitor
from mtg_ray.objectives import Objective
from mtg_ray.pipelines.groups.protocols import Learner, Rollout

DONE = "train_done.json"


@dataclass
class LoopState:
    """cursor: optimizer steps taken (the next batch's index). policy_version: the learner step
    whose weights the rollout group was last given (0: the start weights)."""

    cursor: int = 0
    policy_version: int = 0


class BatchSource(Protocol):
    """Batches by step. `samples_policy`: batches are sampled from the rollout group's current
    weights, so the group must hold the learner's weights whenever a batch is sampled."""

    samples_policy: bool
    timing: dict[str, float]

    def batch(self, step: int, version: int) -> tuple[list[Record], dict[str, float]]: ...

    def wants_sync(self, steps_done: int, version: int) -> bool: ...

    def before_sync(self) -> None: ...

    def close(self) -> None: ...


def push_weights(learner: Learner, rollout: Rollout, version: int) -> float:
    """The weight push: the learner's current weights into the rollout group as `version`.
    Returns its seconds."""
    start = time.monotonic()
    rollout.sync_from(learner, version)
    return time.monotonic() - start


def finished(out_dir: Path) -> dict[str, Any] | None:
    """The result of a run that completed in `out_dir`, or None."""
    path = out_dir / DONE
    return json.loads(path.read_text()) if path.is_file() else None


def push_export(rollout: Rollout, out_dir: Path, version: int) -> None:
    """Give `rollout` the final weights of a run that finished earlier (its HF export)."""
    rollout.load_folder(out_dir / "model", version)


@dataclass
class TrainLoop:
    """Train `steps` optimizer steps into `out_dir` (checkpoints in `ckpt/`, export in `model/`).

    make_learner gives the learner group, on the start policy, only when there is training left
    to do; whoever makes it owns it (the run keeps it for its next training). rollout: the
    group to keep in sync (None: train without one). evaluate: called every eval_every steps on
    the rollout group's (then synced) weights, and with evaluate_at_start on the start weights
    too (logged at step 0 when the run starts fresh: where a monitor curve starts); returns
    `eval/...` metrics."""

    make_learner: Callable[[], Learner]
    source: BatchSource
    objective: Objective
    steps: int
    out_dir: Path
    monitor: Monitor | None = None
    rollout: Rollout | None = None
    evaluate: Callable[[], dict[str, float]] | None = None
    eval_every: int = 0
    evaluate_at_start: bool = False
    save_every: int = 0

    @property
    def ckpt_dir(self) -> Path:
        return self.out_dir / "ckpt"

    def run(self) -> dict[str, Any]:
        """Train to the end (resuming from the last checkpoint); a finished run only hands the
        rollout group its final weights. Returns steps, policy_version, the last step's
        metrics, the last evaluation and timings."""
        result = finished(self.out_dir)
        if result is not None:
            if self.rollout is not None:  # runs finished before versions were saved: steps
                version = result.get("policy_version", result["steps"])
                push_export(self.rollout, self.out_dir, version)
            self.source.close()
            return result
        learner = self.make_learner()
        try:
            return self._train(learner)
        finally:
            self.source.close()

    def _resume(self, learner: Learner) -> LoopState:
        saved = learner.load_checkpoint(self.ckpt_dir)
        if saved is None:
            return LoopState()
        state = LoopState(int(saved["cursor"]), int(saved.get("policy_version", 0)))
        if self.source.samples_policy and state.policy_version != state.cursor:
            raise ValueError(
                f"{self.ckpt_dir}: checkpoint at step {state.cursor} holds policy version "
                f"{state.policy_version}; a run that samples from its policy saves only right "
                "after a sync (was it written by another kind of run?)"
            )
        return state

    def _sync(self, learner: Learner, state: LoopState, version: int) -> float:
        assert self.rollout is not None
        self.source.before_sync()
        seconds = push_weights(learner, self.rollout, version)
        state.policy_version = version
        return seconds

    def _train(self, learner: Learner) -> dict[str, Any]:
        state = self._resume(learner)
        first = state.cursor
        timing = {"train_s": 0.0, "sync_s": 0.0}
        start = time.monotonic()
        if self.source.samples_policy:  # a fresh or restarted rollout group: give it the policy
            timing["sync_s"] += self._sync(learner, state, state.policy_version)
        scalars: dict[str, float] = {}
        evals: dict[str, float] = {}
        if first == 0 and self.evaluate is not None and self.eval_every and self.evaluate_at_start:
            evals = self._evaluate_start(learner, state, timing)
        desc = f"train {self.out_dir.name}"
        with tqdm(total=self.steps, initial=first, desc=desc, unit="step") as bar:
            for step in range(first, self.steps):
                scalars, evaluated = self._step(learner, state, step, timing)
                evals = evaluated or evals
                bar.update(1)
                bar.set_postfix(loss=f"{scalars['train/loss']:.3f}")
        timing.update(
            self.source.timing, loop_s=time.monotonic() - start, steps_run=self.steps - first
        )
        learner.export_hf(self.out_dir / "model")
        result = {
            "steps": self.steps,
            "policy_version": state.policy_version,
            "last": scalars,
            "eval": evals,
            "timing": timing,
        }
        write_text(self.out_dir / DONE, json.dumps(result, indent=1))
        return result

    def _evaluate_start(
        self, learner: Learner, state: LoopState, timing: dict[str, float]
    ) -> dict[str, float]:
        """The evaluation at step 0 (the start weights, pushed first if the rollout group does
        not hold them), logged at step 0: where a curve of `evaluate` starts."""
        if self.rollout is not None and not self.source.samples_policy:
            timing["sync_s"] += self._sync(learner, state, 0)
        evals = self.evaluate()
        if self.monitor is not None:
            self.monitor.scalars(evals, 0)
        return evals

    def _step(
        self, learner: Learner, state: LoopState, step: int, timing: dict[str, float]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """One step: batch, train, sync, save, evaluate, log. Returns its metrics and the
        evaluation it ran (empty if none)."""
        records, source_metrics = self.source.batch(step, state.policy_version)
        if self.rollout is not None:  # colocated engines give the learner their GPUs
            self.rollout.release()
        start = time.monotonic()
        result = learner.train_step(records, self.objective)
        train_s = time.monotonic() - start
        state.cursor = step + 1
        last = state.cursor == self.steps
        save = last or (self.save_every > 0 and state.cursor % self.save_every == 0)
        sync_s = 0.0
        if self.source.samples_policy and not last:
            wanted = self.source.wants_sync(state.cursor, state.policy_version)
            if wanted or (save and state.policy_version != state.cursor):
                sync_s += self._sync(learner, state, state.cursor)
        if last and self.rollout is not None:  # the rollout group ends on the final weights
            sync_s += self._sync(learner, state, state.cursor)
        if save:
            learner.save_checkpoint(self.ckpt_dir, asdict(state))
        evals: dict[str, float] = {}
        if self.evaluate is not None and self.eval_every and state.cursor % self.eval_every == 0:
            if state.policy_version != state.cursor:
                sync_s += self._sync(learner, state, state.cursor)
            evals = self.evaluate()
        timing["train_s"] += train_s
        timing["sync_s"] += sync_s
        scalars = {
            **result.scalars,
            **source_metrics,
            "time/train_s": train_s,
            "time/sync_s": sync_s,
        }
        if self.monitor is not None:
            self.monitor.scalars({**scalars, **evals}, state.cursor)
            self.monitor.histogram("is/log_ratio", result.log_ratios, state.cursor)
        return scalars, evals
