"""The GPU plans of the paper presets on one and two 8-GPU nodes, checked before any model
loads (`mtg_ray.gpu_plan`; no Ray, no GPU)."""

import dataclasses

import pytest

from mtg_ray.checks import ConfigError
from mtg_ray.config import JobConfig, compose
from mtg_ray.gpu_plan import GpuPlan, check_fits, gpu_plan
from mtg_ray.rollout.placement import engine_placement

ONE_NODE, TWO_NODES = [8], [8, 8]


def preset(*overrides: str) -> JobConfig:
    return compose("paper_qwen2.5-math-1.5b", list(overrides))


def plan_of(cfg: JobConfig) -> GpuPlan:
    plan = gpu_plan(cfg.rollout, cfg.learner, cfg.resources.gpu_mode)
    assert plan is not None
    return plan


def test_the_preset_shares_one_8_gpu_node_and_fits_two() -> None:
    cfg = preset()
    assert cfg.resources.gpu_mode == "colocate"
    plan = plan_of(cfg)
    assert (plan.engine_gpus, plan.learner_gpus, plan.gpus) == (4, 8, 8)
    check_fits(plan, ONE_NODE)
    check_fits(plan, TWO_NODES)
    # engine i's actor and learner rank i sit in shared bundle i, each asking half its GPU
    placement = engine_placement(4, 1, True, cfg.rollout.cpus_per_engine)
    assert placement.actor_bundle == [0, 1, 2, 3] and placement.actor_gpus == 1.0
    assert plan.shared_bundles == cfg.learner.num_workers == 8
    assert plan.bundle_cpus == cfg.rollout.cpus_per_engine + cfg.learner.cpus_per_worker


def test_separate_gpus_need_12_and_fail_on_one_node_in_one_line() -> None:
    plan = plan_of(preset("resources.gpu_mode=separate"))
    assert plan.gpus == 12
    check_fits(plan, TWO_NODES)
    with pytest.raises(ValueError) as raised:
        check_fits(plan, ONE_NODE)
    message = str(raised.value)
    assert "\n" not in message and "needs 12 GPUs" in message and "has 8 GPUs" in message
    assert "resources.gpu_mode=colocate" in message and "resources.autoscaler" in message


def test_tensor_parallel_engines_count_every_gpu() -> None:
    cfg = preset("rollout.tensor_parallel_size=2")
    assert plan_of(cfg).gpus == 8  # 4 engines x 2 GPUs share the 8 ranks' GPUs
    cfg = preset("rollout.tensor_parallel_size=4")
    plan = plan_of(cfg)
    assert plan.gpus == 16
    check_fits(plan, TWO_NODES)
    with pytest.raises(ValueError, match="needs 16 GPUs"):
        check_fits(plan, ONE_NODE)


def test_cpu_runs_hold_no_gpus_and_cannot_colocate() -> None:
    cfg = compose("tiny", [])
    assert gpu_plan(cfg.rollout, cfg.learner, "separate") is None
    with pytest.raises(ConfigError, match="colocate shares GPUs"):
        compose("tiny", ["resources.gpu_mode=colocate"])


def test_colocated_engines_cannot_sample_while_the_learner_trains() -> None:
    with pytest.raises(ConfigError, match="online.overlap"):
        dataclasses.replace(preset(), online=dataclasses.replace(preset().online, overlap=True))


def test_colocated_groups_take_no_node_resource() -> None:
    cfg = preset()
    pinned = dataclasses.replace(cfg.learner, node_resource="learner")
    with pytest.raises(ConfigError, match="learner.node_resource"):
        dataclasses.replace(cfg, learner=pinned)
    separate = preset("resources.gpu_mode=separate")
    assert dataclasses.replace(separate, learner=pinned).learner.node_resource == "learner"


def test_teacher_gpus_are_their_own_and_counted_only_when_a_method_uses_it() -> None:
    from mtg_ray.pipelines.jobs.session import teacher_gpus

    assert teacher_gpus(preset()) == 0  # the paper's rows use no teacher
    cfg = preset("methods=[dr_dft,teacher_dr_dft]")
    assert teacher_gpus(cfg) == 1
    plan = gpu_plan(cfg.rollout, cfg.learner, cfg.resources.gpu_mode, teacher_gpus(cfg))
    assert plan is not None and plan.gpus == 9
    check_fits(plan, TWO_NODES)
    with pytest.raises(ValueError, match=r"needs 9 GPUs: 8 shared .* \+ 1 for the teacher"):
        check_fits(plan, ONE_NODE)
