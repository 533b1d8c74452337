"""The methods the jobs compare: which data a run trains on, with which objective.

The paper's four rows: SFT and DFT on the raw expert demonstrations (baselines), DR+SFT and
DR+DFT, the same losses on the rewritten data. Our extensions train on the rewritten data with
a true importance ratio against the recorded behaviour log-probs: dr_is (expert rows weighted
by `objective.expert_weight`) and dr_is_dft (expert rows always DFT-weighted). Offline: one
rewriting round before training; online: every batch rewritten by the live policy.
"""

from dataclasses import dataclass

DATASETS = ("expert", "rewritten")


@dataclass(frozen=True)
class Method:
    """dataset: expert | rewritten. objective: a registered objective name."""

    dataset: str
    objective: str


METHODS: dict[str, Method] = {
    "sft": Method("expert", "sft"),
    "dft": Method("expert", "dft"),
    "dr_sft": Method("rewritten", "sft"),
    "dr_dft": Method("rewritten", "dft"),
    "dr_is": Method("rewritten", "is"),
    "dr_is_dft": Method("rewritten", "is_dft"),
}
# The paper's rows (its presets train these).
PAPER_METHODS = ("sft", "dft", "dr_sft", "dr_dft")

# Methods that train on rewritten data: the ones online mode can run.
ONLINE_METHODS = tuple(name for name, m in METHODS.items() if m.dataset == "rewritten")
