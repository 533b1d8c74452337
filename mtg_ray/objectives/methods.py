"""The methods the jobs compare: which data a run trains on, with which objective.

Baselines train on the raw expert demonstrations; ours on the rewritten data (offline: one
rewriting round before training; online: every batch rewritten by the live policy).
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
    "dr_is": Method("rewritten", "is"),
    "dr_dft": Method("rewritten", "dr_dft"),
}

# Methods that train on rewritten data: the ones online mode can run.
ONLINE_METHODS = tuple(name for name, m in METHODS.items() if m.dataset == "rewritten")
