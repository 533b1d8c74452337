"""Policy-version bookkeeping of the online loop: when to sync, when to prefetch, the lag."""

import pytest

from mtg_ray.data import Problem
from mtg_ray.online import OnlineConfig, batch_lag, may_prefetch, must_sync
from mtg_ray.rewriting import SelectionConfig, expert_record, rewrite
from mtg_ray.rollout import Graded, Sample, SamplingConfig


def test_bad_configs_are_refused_by_name() -> None:
    for bad, key in (({"sync_every": 0}, "sync_every"), ({"max_policy_lag": -1}, "max_policy_lag"),
                     ({"steps": -1}, "steps"), ({"save_every": 0}, "save_every"),
                     ({"sync_every": 3, "max_policy_lag": 1}, "max_policy_lag=1"),
                     ({"method": "sft"}, "method")):  # fmt: skip
        with pytest.raises(ValueError, match=f"online.{key}"):
            OnlineConfig(**bad)


def test_serial_syncing_every_step_keeps_batches_on_policy() -> None:
    cfg = OnlineConfig(sync_every=1, max_policy_lag=0)
    version = 0
    for step in range(5):
        assert step - version == 0  # the batch of `step` is sampled at the learner's version
        assert not may_prefetch(step + 1, version, cfg)
        assert must_sync(step + 1, version, cfg)
        version = step + 1


def test_sync_every_k_lets_the_lag_grow_to_k_minus_1_then_syncs() -> None:
    cfg = OnlineConfig(sync_every=3, max_policy_lag=2)
    version, lags = 0, []
    for step in range(9):
        lags.append(step - version)
        if must_sync(step + 1, version, cfg):
            version = step + 1
    assert lags == [0, 1, 2] * 3


def test_a_lag_beyond_the_bound_forces_a_sync_off_the_beat() -> None:
    cfg = OnlineConfig(sync_every=2, max_policy_lag=1)
    assert not must_sync(1, 0, cfg)  # lag 1 allowed
    assert must_sync(3, 1, cfg)  # lag 2 not: sync although 3 is off the beat


def test_prefetch_only_with_overlap_and_within_the_lag() -> None:
    on = OnlineConfig(overlap=True, max_policy_lag=1)
    assert may_prefetch(1, 0, on) and not may_prefetch(2, 0, on)
    assert not may_prefetch(1, 0, OnlineConfig(overlap=False))
    assert not may_prefetch(1, 0, OnlineConfig(overlap=True, max_policy_lag=0))


def test_batch_lag_counts_sampled_records_only() -> None:
    problem = Problem("p", "What is 1+1?", "2", "Add 1 to 1 to get 2. \\boxed{2}", "t")
    sample = Sample("\\boxed{2}", (5, 6), (-0.1, -0.2), "stop", 3)
    graded = Graded((sample,), (True,), SamplingConfig(max_tokens=8))
    (sampled,) = rewrite(problem, "Q", [1, 2], [7, 8], graded, None, SelectionConfig())
    records = [sampled, expert_record(problem, "Q", [1, 2], [7, 8])]
    assert sampled.source == "self" and sampled.policy_version == 3
    assert batch_lag(5, records) == [2]


def test_controls_are_named_and_set_the_lr_and_the_sampler() -> None:
    from mtg_ray.config import compose
    from mtg_ray.pipelines.jobs.online import online_name

    with pytest.raises(ValueError, match="online.control"):
        OnlineConfig(control="frozen")
    plain = compose("online", ["online.method=dr_sft"])
    frozen = compose("online", ["online.method=dr_sft", "online.control=frozen_sampler"])
    tiny = compose("online", ["online.method=dr_sft", "online.control=near_zero_lr"])
    assert online_name(frozen) == "online_dr_sft_frozen_sampler" and frozen.online.frozen
    assert online_name(tiny) == "online_dr_sft_near_zero_lr" and not tiny.online.frozen
    assert frozen.online_lr() == plain.online_lr() == plain.lr_of("dr_sft")
    assert tiny.online_lr() == pytest.approx(plain.lr_of("dr_sft") * 1e-3)
