"""Settings of the online driver (`configs/online.yaml`, key `online`)."""

from dataclasses import dataclass, fields, replace
from typing import Any

from mtg_ray.objectives import EXPERT_ROWS, ONLINE_METHODS

# Controls: runs of the online loop that separate a bug from a property of online rewriting.
# frozen_sampler: the rollout group keeps the base weights until the end (every batch sampled
# at version 0), so the run must match the offline run of the same method. near_zero_lr: the
# method's lr times NEAR_ZERO_LR, so the expert share must stay flat and accuracy at the base's.
CONTROLS = ("none", "frozen_sampler", "near_zero_lr")
NEAR_ZERO_LR = 1e-3
# When the live policy rewrites: per_batch (every batch, as sampled), rounds (K rounds, each
# rewriting its problems in one go with the policy at its start), refresh (the offline round's
# records, a record rewritten again only when its weight under the live policy left the band).
DESIGNS = ("per_batch", "rounds", "refresh")


@dataclass(frozen=True)
class OnlineConfig:
    """steps: optimizer steps, each on a fresh batch of `learner.train_batch_size` problems
    rewritten by the current rollout policy (0 = as many as the offline run of the same data:
    `train.epochs` passes over the problems, capped at `train.max_steps`).
    sync_every: steps between weight syncs learner -> rollout group.
    overlap: generate step t+1's batch while step t trains (Ray actors run both at once).
    max_policy_lag: most optimizer steps a batch's sampling policy may trail the learner when it
    is trained on; a prefetch or a late sync that would exceed it is not allowed.
    save_every: steps between checkpoints (the last step always saves); a checkpoint is also a
    weight sync, so a resumed run restarts from exactly the policy version it saved.
    method: what the online job trains (and `compare_online` compares with its offline run),
    one of ONLINE_METHODS. control: none, or a control run of the loop (CONTROLS).

    design: when the live policy rewrites (DESIGNS). rounds: K for design=rounds.
    refresh_band: design=refresh rewrites a record again when its per-token geometric-mean
    weight pi_theta / pi_behaviour (expert rows: against the base model) leaves
    [1 / refresh_band, refresh_band].
    expert_rows: how expert rows train (mtg_ray.objectives.EXPERT_ROWS): keep, dft, ratio
    (against the sampling policy shown the reference, scored when the batch is rewritten), drop
    (the problem trains nothing that step and returns once, retry_after steps later, in the
    place of a row that step drops). anchor_share: the share of each batch taken from the
    offline round's records (behaviour: the base model) instead of rewritten now.
    eval_every: steps between monitor evaluations (0 = none): avg@`train.validation_n` on the
    first `eval_problems` problems of each test set, logged as `monitor/<set>/avg@<n>` (a
    curve to watch, never used to choose anything)."""

    steps: int = 0
    sync_every: int = 1
    overlap: bool = False
    max_policy_lag: int = 1
    save_every: int = 16
    method: str = "dr_dft"
    control: str = "none"
    design: str = "per_batch"
    rounds: int = 3
    refresh_band: float = 2.0
    expert_rows: str = "keep"
    retry_after: int = 8
    anchor_share: float = 0.0
    eval_every: int = 0
    eval_problems: int = 100

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 0:
            problems.append(f"online.steps must be >= 0, got {self.steps}")
        if self.sync_every < 1:
            problems.append(f"online.sync_every must be >= 1, got {self.sync_every}")
        if self.max_policy_lag < 0:
            problems.append(f"online.max_policy_lag must be >= 0, got {self.max_policy_lag}")
        if self.max_policy_lag < self.sync_every - 1:
            problems.append(
                f"online.max_policy_lag={self.max_policy_lag} < sync_every - 1: with syncs every "
                f"{self.sync_every} steps batches trail by up to {self.sync_every - 1}"
            )
        if self.save_every < 1:
            problems.append(f"online.save_every must be >= 1, got {self.save_every}")
        if self.method not in ONLINE_METHODS:
            problems.append(f"online.method must be one of {ONLINE_METHODS}, got {self.method!r}")
        if self.control not in CONTROLS:
            problems.append(f"online.control must be one of {CONTROLS}, got {self.control!r}")
        if self.design not in DESIGNS:
            problems.append(f"online.design must be one of {DESIGNS}, got {self.design!r}")
        if self.rounds < 1:
            problems.append(f"online.rounds must be >= 1, got {self.rounds}")
        if not self.refresh_band > 1.0:
            problems.append(f"online.refresh_band must be > 1, got {self.refresh_band}")
        if self.expert_rows not in EXPERT_ROWS:
            problems.append(
                f"online.expert_rows must be one of {EXPERT_ROWS}, got {self.expert_rows!r}"
            )
        if self.eval_every < 0 or self.eval_problems < 1:
            problems.append(
                f"online.eval_every must be >= 0 and online.eval_problems >= 1, got "
                f"{self.eval_every} and {self.eval_problems}"
            )
        if self.eval_every and self.control == "frozen_sampler":
            problems.append(
                "online.eval_every needs the learner's weights in the rollout group, which the "
                "frozen_sampler control never gives it"
            )
        if self.retry_after < 1:
            problems.append(f"online.retry_after must be >= 1, got {self.retry_after}")
        if not 0.0 <= self.anchor_share <= 1.0:
            problems.append(f"online.anchor_share must be in [0, 1], got {self.anchor_share}")
        if self.anchor_share and self.expert_rows == "ratio":
            problems.append(
                "online.expert_rows=ratio scores the expert rows of fresh batches only; the "
                "offline round's (online.anchor_share) have no stand-in"
            )
        if self.design != "per_batch" and (
            self.anchor_share or self.expert_rows == "drop" or self.overlap
            or self.control != "none"
        ):  # fmt: skip
            problems.append(
                "online.anchor_share, expert_rows=drop, overlap and the controls apply to "
                f"design=per_batch only (design={self.design})"
            )
        if problems:
            raise ValueError("bad OnlineConfig: " + "; ".join(problems))

    @property
    def frozen(self) -> bool:
        """Whether the sampler keeps the base weights (the frozen_sampler control)."""
        return self.control == "frozen_sampler"


def parse_candidate(spec: str) -> dict[str, Any]:
    """An online candidate of the study from `method[:key=value[+key=value...]]` (keys of
    OnlineConfig, values cast to the field's type), e.g. `dr_dft:design=rounds+rounds=3`;
    raises ValueError naming what is wrong."""
    method, _, rest = spec.partition(":")
    settings: dict[str, Any] = {"method": method}
    types = {f.name: type(getattr(OnlineConfig(), f.name)) for f in fields(OnlineConfig)}
    for item in filter(None, rest.split("+")):
        key, eq, value = item.partition("=")
        if not eq or key not in types or key == "method":
            raise ValueError(f"candidate {spec!r}: {item!r} is not key=value of an online.* key")
        kind = types[key]
        try:
            settings[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except ValueError as e:
            raise ValueError(f"candidate {spec!r}: {key}={value!r} is not a {kind.__name__}") from e
    replace(OnlineConfig(), **settings)  # validates, naming the key
    return settings
