"""Methods: the offline twins of online.expert_rows=drop train dr_dft's and dr_is's data and
losses with the expert rows out of the loss, and online mode refuses them (online, the
`online.expert_rows` key says how expert rows train)."""

from types import SimpleNamespace

import pytest

from mtg_ray.objectives import METHODS, ONLINE_METHODS, ObjectiveConfig
from mtg_ray.online.config import OnlineConfig
from mtg_ray.pipelines.jobs.offline import method_objective


@pytest.mark.parametrize("twin,method", [("dr_dft_expert_drop", "dr_dft"),
                                         ("dr_is_expert_drop", "dr_is")])  # fmt: skip
def test_expert_drop_twin_trains_its_methods_data_without_expert_rows(twin, method):
    run = SimpleNamespace(cfg=SimpleNamespace(objective=ObjectiveConfig()))
    dropped, kept = method_objective(run, twin), method_objective(run, method)
    assert (METHODS[twin].dataset, METHODS[twin].rewriter) == ("rewritten", None)
    assert dropped.name == kept.name and dropped.config == kept.config
    assert not dropped.trains("expert") and kept.trains("expert")
    assert dropped.trains("self") and dropped.trains("guided")


def test_online_mode_takes_only_methods_that_keep_expert_rows():
    assert "dr_dft" in ONLINE_METHODS and "dr_dft_expert_drop" not in ONLINE_METHODS
    with pytest.raises(ValueError, match="online.method must be one of"):
        OnlineConfig(method="dr_dft_expert_drop")
