"""Policy versions in the online loop, as pure functions.

Versions count optimizer steps: the learner is at version s before step s (0-based), and the
rollout group holds the version it was last synced to. A batch sampled at rollout version v and
trained at step s trails the learner by s - v ("policy lag"); the behaviour log-probs recorded
at sampling make the importance ratio exact for any lag, but the larger the lag, the larger the
weights' variance, so the driver bounds it by `max_policy_lag`.
"""

from collections.abc import Sequence

from mtg_ray.data import Record
from mtg_ray.online.config import OnlineConfig


def must_sync(steps_done: int, rollout_version: int, cfg: OnlineConfig) -> bool:
    """Sync after `steps_done` steps? On the `sync_every` beat, or when a batch sampled now
    would trail the learner by more than `max_policy_lag` when trained next."""
    return steps_done % cfg.sync_every == 0 or steps_done - rollout_version > cfg.max_policy_lag


def may_prefetch(next_step: int, rollout_version: int, cfg: OnlineConfig) -> bool:
    """Sample `next_step`'s batch now, while the current step trains? Only with overlap on and
    if that batch, sampled at `rollout_version`, stays within `max_policy_lag` of the learner."""
    return cfg.overlap and next_step - rollout_version <= cfg.max_policy_lag


def batch_lag(step: int, records: Sequence[Record]) -> list[int]:
    """Policy lag of each record the policy sampled, trained at `step` (expert records have no
    policy; a teacher's records carry the teacher group's version, which never changes)."""
    return [step - r.policy_version for r in records if r.source in ("self", "guided")]
