"""The methods the jobs compare: which data a run trains on, with which objective.

The paper's four rows: SFT and DFT on the raw expert demonstrations (baselines), DR+SFT and
DR+DFT, the same losses on the rewritten data. Our extensions train on the rewritten data with
a true importance ratio against the recorded behaviour log-probs: dr_is (expert rows weighted
by `objective.expert_weight`) and dr_is_dft (expert rows always DFT-weighted). Offline: one
rewriting round before training; online: every batch rewritten by the live policy.

A method's `rewriter` says who rewrites its data (`rewrite.rewriter`; None: the config's):
teacher_dr_dft and teacher_dr_is have the teacher re-solve what the policy misses (DR+IS's
ratio then stands against the teacher's recorded log-probs); distill trains (SFT) on the
teacher's own solutions, the baseline that tells rewriting with a teacher from distilling one.

A method's `expert_rows` weighs the expert fallback rows of its data as `online.expert_rows`
does online (mtg_ray.objectives.EXPERT_ROWS): dr_dft_expert_drop and dr_is_expert_drop train
the offline round's batches with those rows out of the loss, the offline twins of the online
runs with `online.expert_rows=drop` (online, such a problem comes back later to a policy that
may solve it; offline no later policy exists, so the row only leaves the loss).
"""

from dataclasses import dataclass

DATASETS = ("expert", "rewritten")


@dataclass(frozen=True)
class Method:
    """dataset: expert | rewritten. objective: a registered objective name. rewriter: who
    rewrites (policy | teacher | distill; None: `rewrite.rewriter`). expert_rows: how its
    expert rows train (EXPERT_ROWS' keep or drop)."""

    dataset: str
    objective: str
    rewriter: str | None = None
    expert_rows: str = "keep"


METHODS: dict[str, Method] = {
    "sft": Method("expert", "sft"),
    "dft": Method("expert", "dft"),
    "dr_sft": Method("rewritten", "sft"),
    "dr_dft": Method("rewritten", "dft"),
    "dr_is": Method("rewritten", "is"),
    "dr_is_dft": Method("rewritten", "is_dft"),
    "teacher_dr_dft": Method("rewritten", "dft", "teacher"),
    "teacher_dr_is": Method("rewritten", "is", "teacher"),
    "distill": Method("rewritten", "sft", "distill"),
    "dr_dft_expert_drop": Method("rewritten", "dft", expert_rows="drop"),
    "dr_is_expert_drop": Method("rewritten", "is", expert_rows="drop"),
}
# The paper's rows (its presets train these).
PAPER_METHODS = ("sft", "dft", "dr_sft", "dr_dft")

# Methods that train on rewritten data, their expert rows kept: the ones online mode can run
# (online, `online.expert_rows` weighs the expert rows).
ONLINE_METHODS = tuple(
    name for name, m in METHODS.items() if m.dataset == "rewritten" and m.expert_rows == "keep"
)
