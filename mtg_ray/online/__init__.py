"""Online mode: every training step rewrites its own batch with the current policy.

Pure parts: `config` (OnlineConfig), `staleness` (policy-version bookkeeping: when to prefetch,
when to sync, how stale a batch is) and `steps` (which problems a step rewrites, what it
reports). The driver is the training loop (`mtg_ray.pipelines.jobs.loop`) with the online batch
source (`mtg_ray.pipelines.jobs.batches.OnlineBatches`). The importance ratio needs nothing special:
each record keeps the behaviour log-probs of the policy version that sampled it, and the learner
divides its live log-probs by those inside the training forward, so a stale batch is corrected
like any off-policy one.
"""

from mtg_ray.online.config import OnlineConfig
from mtg_ray.online.staleness import batch_lag, may_prefetch, must_sync
from mtg_ray.online.steps import problem_schedule, step_metrics

__all__ = [
    "OnlineConfig",
    "batch_lag",
    "may_prefetch",
    "must_sync",
    "problem_schedule",
    "step_metrics",
]
