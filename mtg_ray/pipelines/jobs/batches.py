"""Where the training loop's batches come from.

`RecordBatches` (offline): a fixed record set, reshuffled each epoch. `OnlineBatches`: each
step's problems rewritten by the rollout group's current weights, optionally sampling the next
step's batch while this one trains (bounded by `online.max_policy_lag`).
"""

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mtg_ray.data import Problem, Record, read_records, write_records, write_text
from mtg_ray.online import OnlineConfig, may_prefetch, must_sync, step_metrics
from mtg_ray.online.designs import (
    anchor_count,
    anchor_indices,
    drifted,
    mean_logprob,
    place_retries,
    round_bounds,
)
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
    """Online (`online.design=per_batch`): step s's batch is `rewrite([problems[i] for i in
    schedule[s]])`, sampled by the rollout group at its current version; each batch is kept as
    `<data_dir>/step-<s>.parquet`. Each step logs its batch's `online/dropped_*` (samples the
    rewrite's rules rejected); `faithful` (the tiny world's step check), if given, adds the
    batch's `online/faithful_<source>` share.

    `online.anchor_share`: the last anchor_count(...) problems of each step are not rewritten;
    their places go to records of the offline round (`anchors`, `anchor_indices`).
    `online.expert_rows=drop`: each step's rewrite is also kept as
    `<data_dir>/rewritten-<s>.parquet`; its expert-fallback problems return once,
    `online.retry_after` steps later, rewritten with that step's problems, and take the places
    of that step's expert rows (`place_retries`; the rest train nothing).

    With `online.control=frozen_sampler` the batches do not sample the learner's policy: the
    rollout group is given the base weights (`base_weights`) before the first batch this
    process samples, and no sync follows until the loop's final one (so a resumed run samples
    at version 0 too); prefetching is then never bounded by the lag.

    `timing` (in its `train_done.json`: the steps this process ran; the whole run's cost is
    the sum of its steps' logged `online/generated_*` and `time/generate_s`): generate_s,
    seconds spent rewriting batches (in the background too, when overlapped); wait_s, the
    loop's wait for a prefetched batch; samples, samples drawn (`generated_*` counts)."""

    def __init__(
        self,
        problems: Sequence[Problem],
        schedule: list[list[int]],
        rewrite: Rewriter,
        cfg: OnlineConfig,
        data_dir: Path,
        faithful: Callable[[Record], bool] | None = None,
        base_weights: Callable[[], None] | None = None,
        anchors: Sequence[Record] = (),
        seed: int = 0,
    ) -> None:
        self.problems, self.schedule, self.rewrite = problems, schedule, rewrite
        self.faithful = faithful
        if cfg.anchor_share and not anchors:
            raise ValueError("online.anchor_share needs the offline round's records (anchors)")
        self.anchors, self.seed = list(anchors), seed
        self._by_id = {p.problem_id: p for p in problems}
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
        idx = self.schedule[step]
        n_anchor = anchor_count(len(idx), self.cfg.anchor_share) if self.anchors else 0
        fresh = [self.problems[i] for i in idx[: len(idx) - n_anchor]]
        returning = self._returning(step)
        records, counts = self.rewrite(fresh + returning) if fresh or returning else ([], {})
        records, retried = records[: len(fresh)], records[len(fresh) :]
        if self.cfg.expert_rows == "drop":
            write_records(self.data_dir / f"rewritten-{step:05d}.parquet", records)
            records, placed = place_retries(records, retried)
            counts = {**counts, **placed}
        chosen = anchor_indices(step, n_anchor, len(self.anchors), self.seed)
        return records + [self.anchors[i] for i in chosen], counts, time.monotonic() - start

    def _returning(self, step: int) -> list[Problem]:
        """The problems that fell back to the expert `online.retry_after` steps before `step`
        (`online.expert_rows=drop`), read from that step's kept rewrite."""
        back = step - self.cfg.retry_after
        if self.cfg.expert_rows != "drop" or back < 0:
            return []
        earlier = read_records(self.data_dir / f"rewritten-{back:05d}.parquet")
        return [self._by_id[r.problem_id] for r in earlier if r.source == "expert"]

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


class RoundBatches(OnlineBatches):
    """`online.design=rounds`: the steps fall into `online.rounds` rounds
    (`round_bounds`); at a round's first step the rollout group, just synced, rewrites all of
    the round's problems in one call (kept as `<data_dir>/round-<first step>.parquet`, read
    back on resume), and each step of the round trains its slice. Syncs only between rounds."""

    def _generate(self, step: int) -> tuple[list[Record], dict[str, int], float]:
        start = time.monotonic()
        first, end = round_bounds(step, len(self.schedule), self.cfg.rounds)
        path = self.data_dir / f"round-{first:05d}.parquet"
        counts: dict[str, int] = {}
        if path.is_file():
            records = read_records(path)
        else:
            idx = [i for t in range(first, end) for i in self.schedule[t]]
            records, counts = self.rewrite([self.problems[i] for i in idx])
            write_records(path, records)
        at = sum(len(self.schedule[t]) for t in range(first, step))
        mine = records[at : at + len(self.schedule[step])]
        return mine, counts, time.monotonic() - start

    def wants_sync(self, steps_done: int, version: int) -> bool:
        first, _ = round_bounds(steps_done, len(self.schedule), self.cfg.rounds)
        return first == steps_done != version


# Prompts and responses -> the rollout group's per-token log-probs of each response (None: a
# pair too long for the group to score).
Scorer = Callable[[list[list[int]], list[list[int]]], list[list[float] | None]]


class RefreshBatches(OnlineBatches):
    """`online.design=refresh`: step s trains the offline round's records of its problems
    (`records`, one per problem) as the offline run would, except that the rollout group (synced
    as `online.sync_every` says) first scores them, and a record whose per-token geometric-mean
    weight under the live policy left [1 / online.refresh_band, online.refresh_band]
    (`drifted`) is rewritten by the live policy; the new record trains now and replaces the old
    one for later epochs (kept as `<data_dir>/refresh-<s>.parquet`, applied again on resume).

    A sampled record's weight is against its behaviour log-probs; an expert record's against
    the base model's (its stand-in): `experts`, every problem's expert record, are scored once
    at version 0 and kept in `<data_dir>/expert_base.json`, so a sampled record refreshed into
    an expert fallback is weighed against the base too when its problem comes round again.
    Each step logs `online/refreshed_<source>` (the source of the record replaced). A guided
    record's behaviour is the guided prompt and the live policy scores it on the plain one, so
    its weight is below 1 before the policy moves at all; the band sees that gap too."""

    def __init__(
        self, problems: Sequence[Problem], schedule: list[list[int]], rewrite: Rewriter,
        cfg: OnlineConfig, data_dir: Path, records: Sequence[Record], score: Scorer,
        faithful: Callable[[Record], bool] | None = None, *, experts: Sequence[Record],
    ) -> None:  # fmt: skip
        super().__init__(problems, schedule, rewrite, cfg, data_dir, faithful)
        wanted = {p.problem_id for p in problems}
        self.experts = [r for r in experts if r.problem_id in wanted]
        by_id = {r.problem_id: r for r in records}
        missing = [p.problem_id for p in problems if p.problem_id not in by_id]
        if missing:
            raise ValueError(f"the offline round has no record of problems {missing[:5]}")
        self.current = [by_id[p.problem_id] for p in problems]
        self.score = score
        self._version = 0
        self._applied = False

    def batch(self, step: int, version: int) -> tuple[list[Record], dict[str, float]]:
        self._version = version
        return super().batch(step, version)

    def _generate(self, step: int) -> tuple[list[Record], dict[str, int], float]:
        start = time.monotonic()
        if not self._applied:  # a resumed run: the refreshes of the steps already trained
            self._apply_refreshes(before=step)
        base = self._expert_base()
        idx = self.schedule[step]
        batch = [self.current[i] for i in idx]
        live = self.score(
            [r.prompt_token_ids for r in batch], [r.response_token_ids for r in batch]
        )
        counts: Counter[str] = Counter(scored=len(batch))
        counts["too_long_to_score"] = sum(lp is None for lp in live)  # never refreshed
        stale = [
            j for j, (r, lp) in enumerate(zip(batch, live, strict=True))
            if lp is not None
            and drifted(mean_logprob(lp), self._base_of(base, r.problem_id) if r.source == "expert"
                        else mean_logprob(r.behaviour_logprobs or []), self.cfg.refresh_band)
        ]  # fmt: skip
        if stale:
            new, rewrite_counts = self.rewrite([self.problems[idx[j]] for j in stale])
            counts.update(rewrite_counts)
            for j, rec in zip(stale, new, strict=True):
                counts[f"refreshed_{batch[j].source}"] += 1
                batch[j] = self.current[idx[j]] = rec
            write_records(self.data_dir / f"refresh-{step:05d}.parquet", new)
        return batch, dict(counts), time.monotonic() - start

    def _apply_refreshes(self, before: int) -> None:
        at = {p.problem_id: i for i, p in enumerate(self.problems)}
        for path in sorted(self.data_dir.glob("refresh-*.parquet")):
            if int(path.stem.removeprefix("refresh-")) < before:
                for rec in read_records(path):
                    self.current[at[rec.problem_id]] = rec
        self._applied = True

    def _expert_base(self) -> dict[str, float]:
        """problem_id -> mean log-prob of its expert record under the base model."""
        path = self.data_dir / "expert_base.json"
        if path.is_file():
            return json.loads(path.read_text())
        if self._version != 0:
            raise ValueError(f"{path}: missing, and the rollout group no longer holds the base")
        experts = self.experts
        scores = self.score(
            [r.prompt_token_ids for r in experts], [r.response_token_ids for r in experts]
        )
        base = {  # a record too long to score has no base score, and is never scored live
            r.problem_id: mean_logprob(lp)
            for r, lp in zip(experts, scores, strict=True)
            if lp is not None
        }
        write_text(path, json.dumps(base))
        return base

    def _base_of(self, base: dict[str, float], problem_id: str) -> float:
        if problem_id not in base:
            raise ValueError(
                f"{self.data_dir / 'expert_base.json'}: no base-model score of problem "
                f"{problem_id!r}'s expert record (written before every problem was scored?)"
            )
        return base[problem_id]
