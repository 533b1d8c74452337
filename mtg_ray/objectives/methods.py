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
"""

from dataclasses import dataclass

DATASETS = ("expert", "rewritten")


@dataclass(frozen=True)
class Method:
    """dataset: expert | rewritten. objective: a registered objective name. rewriter: who
    rewrites (policy | teacher | distill; None: `rewrite.rewriter`)."""

    dataset: str
    objective: str
    rewriter: str | None = None


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
}
# The paper's rows (its presets train these).
PAPER_METHODS = ("sft", "dft", "dr_sft", "dr_dft")

# Methods that train on rewritten data: the ones online mode can run.
ONLINE_METHODS = tuple(name for name, m in METHODS.items() if m.dataset == "rewritten")
