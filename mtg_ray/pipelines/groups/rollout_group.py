"""The vLLM rollout group: N engine actors behind one object, kept in sync with the learner.

`RolloutGroup` hosts `RolloutActor`s where `engine_placement` says (one placement-group bundle
per GPU), spreads requests over the engines, restarts a dead engine, and hands every weight
push (and a restarted engine's weights) to its backend's driver side
(`mtg_ray.pipelines.groups.weight_push`). It never decides a policy version: each push is told which
version it carries.
"""

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.placement_group import (
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from torch import Tensor

from actors.rollout import RolloutActor
from mtg_ray.pipelines.groups.cluster import SharedGpus, wait_placed
from mtg_ray.pipelines.groups.weight_push import (
    SHM_AWAY,
    SyncStats,
    WeightPush,
    WeightSource,
    weight_push,
)
from mtg_ray.rollout import RolloutConfig, Sample, SamplingConfig, merge_in_order, split_by_weight
from mtg_ray.rollout.config import per_prompt
from mtg_ray.rollout.placement import engine_placement
from mtg_ray.tempdirs import OwnedTempDir

log = logging.getLogger(__name__)


class RolloutGroup:
    """N engines serving the HF model at `model`; requests are split evenly and merged back in
    order. `version` is the policy version of the weights last pushed (0: `model` itself).
    `stop_token_ids`: every sample also stops on these (the prompt format's end of turn)."""

    def __init__(
        self, cfg: RolloutConfig, model: str, stop_token_ids: Sequence[int] = (),
        shared: SharedGpus | None = None,
    ) -> None:  # fmt: skip
        self.cfg, self.model, self.stop_token_ids = cfg, model, tuple(stop_token_ids)
        self.shared = shared  # colocated with the learner: engine GPUs are its bundles too
        self.placement = engine_placement(
            cfg.num_engines, cfg.gpus_per_engine, cfg.device == "cuda", cfg.cpus_per_engine,
            cfg.node_resource,
        )  # fmt: skip
        if shared is None:
            self.pg = placement_group(self.placement.bundles, strategy=cfg.placement_strategy)
            wait_placed(self.pg, "rollout engines")
        else:
            self.pg = shared.pg
        self.asleep: set[int] = set()  # engines sleeping while the colocated learner trains
        if cfg.weight_backend == "shm":
            placed = placement_group_table(self.pg)["bundles_to_node_id"].values()
            away = set(placed) - {ray.get_runtime_context().get_node_id()}
            if away:
                remove_placement_group(self.pg)
                raise ValueError(SHM_AWAY.format(where=f"placed on node(s) {sorted(away)}"))
        # The engines' temp folder (vLLM leaves a rendezvous file per engine there): removed
        # at shutdown, or by the next group on this machine if this process dies first.
        self.tmp = OwnedTempDir("mtg-ray-engines-")
        self.engines = [self._start(i) for i in range(cfg.num_engines)]
        ray.get([e.ready.remote() for e in self.engines])
        self.version = 0
        self.restarts = 0
        self.in_flight = 0  # requests submitted to engines and not yet answered
        self.push: WeightPush = weight_push(cfg)  # the backend's driver side, and what it keeps

    def _start(self, index: int) -> Any:
        cfg = self.cfg
        threads = str(cfg.cpus_per_engine)
        env = {
            "OMP_NUM_THREADS": threads, "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "TMPDIR": self.tmp.path, **self.placement.env(index),
        }  # fmt: skip
        share = 1.0 if self.shared is None else self.shared.share
        if self.shared is not None:  # vLLM's Ray workers (TP x PP > 1) ask a share too
            env["VLLM_RAY_PER_WORKER_GPUS"] = str(share)
        actor = ray.remote(RolloutActor).options(
            num_cpus=cfg.cpus_per_engine,
            num_gpus=self.placement.actor_gpus * share,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                self.pg,
                placement_group_bundle_index=self.placement.actor_bundle[index],
                placement_group_capture_child_tasks=True,  # vLLM's workers join this group
            ),
            runtime_env={"env_vars": env},
        )
        return actor.remote(
            cfg, index, self.model, self.stop_token_ids, sleep_mode=self.shared is not None
        )

    # ---- requests -------------------------------------------------------------------------

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig | Sequence[SamplingConfig]
    ) -> list[list[Sample]]:
        """`n` samples per prompt, in prompt order; one sampling config for all prompts or one
        per prompt. Engines get contiguous runs of prompts with about equal numbers of samples."""
        configs = per_prompt(sampling, len(prompts))
        parts = split_by_weight([c.n for c in configs], len(self.engines))
        return self._map("generate", parts, prompts, configs)

    def score(
        self, prompts: list[list[int]], responses: list[list[int]]
    ) -> list[list[float] | None]:
        """Per-token log-probs of each response under the engines' current weights; None for a
        pair of `rollout.max_model_len` tokens or more, never sent: vLLM refuses such a prompt
        and would fail the whole call (callers skip and count it: `too_long_to_score`)."""
        pairs = list(zip(prompts, responses, strict=True))
        fits = [i for i, (p, r) in enumerate(pairs) if len(p) + len(r) < self.cfg.max_model_len]
        sent = [pairs[i] for i in fits]
        parts = split_by_weight([len(p) + len(r) for p, r in sent], len(self.engines))
        out: list[list[float] | None] = [None] * len(pairs)
        for i, scores in zip(fits, self._map("score", parts, sent), strict=True):
            out[i] = scores
        return out

    def _map(self, method: str, parts: list[range], *columns: list[Any]) -> list[Any]:
        """Engine i answers `method(*[column[j] for j in parts[i]])`; answers back in order."""
        self.wake()
        results: list[Any] = [None] * len(parts)
        attempts = [0] * len(parts)

        def submit(i: int) -> Any:
            args = [[column[j] for j in parts[i]] for column in columns]
            return getattr(self.engines[i], method).remote(*args)

        pending = {submit(i): i for i, part in enumerate(parts) if len(part)}
        for i, part in enumerate(parts):
            if not len(part):
                results[i] = []
        while pending:
            self.in_flight = len(pending)
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            try:
                results[i] = ray.get(done[0])
            except RayActorError as err:
                attempts[i] += 1
                if attempts[i] > self.cfg.max_retries:
                    raise RuntimeError(f"rollout engine {i} failed {attempts[i]} times") from err
                log.warning("rollout engine %d died (%s); restarting", i, err)
                self._restart(i)
                pending[submit(i)] = i
        self.in_flight = 0
        return merge_in_order(parts, results, len(columns[0]))

    def _killed(self, engine: Any) -> None:
        """Kill `engine` and wait (`rollout.start_memory_timeout_s` at most) until Ray reports
        it dead: `ray.kill` only asks, and a successor started at once may find its GPU still
        held."""
        ray.kill(engine, no_restart=True)
        deadline = time.monotonic() + self.cfg.start_memory_timeout_s
        while time.monotonic() < deadline:
            try:
                ray.get(engine.ready.remote(), timeout=max(0.0, deadline - time.monotonic()))
            except (RayActorError, GetTimeoutError):
                return
            time.sleep(0.05)  # it still answered: the kill has not landed yet

    def release(self) -> None:
        """Colocated with the learner: put every engine to sleep (vLLM's sleep mode, level 1:
        KV cache dropped, weights moved to host memory), so the learner has the GPUs while it
        trains. Any request or weight sync wakes them (`wake`). Separate GPUs: nothing."""
        if self.shared is not None:
            awake = [i for i in range(len(self.engines)) if i not in self.asleep]
            ray.get([self.engines[i].sleep.remote() for i in awake])
            self.asleep.update(awake)

    def wake(self) -> None:
        """Wake the engines `release` put to sleep (a restarted engine starts awake)."""
        if self.asleep:
            ray.get([self.engines[i].wake_up.remote() for i in sorted(self.asleep)])
            self.asleep.clear()

    def _restart(self, index: int) -> None:
        self._killed(self.engines[index])
        self.asleep.discard(index)
        self.engines[index] = self._start(index)
        ray.get(self.engines[index].ready.remote())
        self.restarts += 1
        self.push.restore(self, self.engines[index], index)

    def restart_all(self) -> None:
        """Every engine started over from `model` (version 0)."""
        for engine in self.engines:
            ray.kill(engine, no_restart=True)
        for i, engine in enumerate(self.engines):
            self._killed(engine)
            self.engines[i] = self._start(i)
        self.asleep.clear()
        ray.get([e.ready.remote() for e in self.engines])
        self.restarts += len(self.engines)
        self.version = 0

    # ---- weights --------------------------------------------------------------------------

    @property
    def bucket_bytes(self) -> int:
        """Size of one weight-sync bucket: what a sender should gather at a time."""
        return self.cfg.bucket_bytes

    def update_weights(self, named: Iterable[tuple[str, Tensor]], version: int) -> SyncStats:
        """Push (name, tensor) pairs to every engine in buckets; the engines then stamp their
        samples with `version` (the caller's: the training loop owns policy versions).

        Call it in the process that holds the weights (the learner's rank 0, or the driver the
        learner streams them to): with gloo it is rank 0 of the transfer group, with shm it
        writes the bucket files; direct backends refuse (ValueError). Tensors are pulled one
        bucket at a time.
        """
        self.wake()
        stats = self.push.push(self, named, version)
        self.version = version
        return stats

    def sync_from(self, learner: WeightSource, version: int) -> SyncStats:
        """The learner's current weights into every engine as `version`: sent by learner rank
        0 straight to the engines (direct backends, `DirectPush.sync_from`), otherwise streamed
        through this process as `update_weights` does."""
        self.wake()
        stats = self.push.sync_from(self, learner, version)
        self.version = version
        return stats

    def load_folder(self, folder: str | Path, version: int) -> None:
        """The weights of an HF folder (a finished run's export) into every engine as
        `version`. Direct backends: each engine reads the folder, which must be on storage
        every engine's node sees; otherwise this process reads it and pushes it."""
        self.wake()
        self.push.load_folder(self, folder, version)
        self.version = version

    def versions(self) -> list[int]:
        return ray.get([e.ready.remote() for e in self.engines])

    def shutdown(self) -> None:
        for e in self.engines:
            ray.kill(e, no_restart=True)
        if self.shared is None:  # a shared group is its owner's to remove
            remove_placement_group(self.pg)
        self.push.close()
        self.tmp.close()
