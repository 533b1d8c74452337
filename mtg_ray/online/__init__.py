"""Online mode: every training step rewrites its own batch with the current policy.

`config` holds `OnlineConfig`; `staleness` the pure bookkeeping of policy versions (when to
prefetch, when to sync, how stale a batch is); `jobs` the driver on Ray (rollout group +
learner group). The importance ratio needs nothing special: each record keeps the behaviour
log-probs of the policy version that sampled it, and the learner divides its live log-probs by
those inside the training forward, so a stale batch is corrected like any off-policy one.
"""

from mtg_ray.online.config import OnlineConfig
from mtg_ray.online.staleness import batch_lag, may_prefetch, must_sync

__all__ = ["OnlineConfig", "batch_lag", "may_prefetch", "must_sync"]
