"""The rollout group's placement, as vLLM's Ray executor accepts it: one GPU per bundle, an
engine's workers in its own consecutive bundles, its actor in the first."""

import pytest

from mtg_ray.rollout import RolloutConfig
from mtg_ray.rollout.placement import engine_placement


@pytest.mark.parametrize(("engines", "tp", "pp"), [(2, 2, 1), (3, 1, 1), (2, 2, 2), (1, 4, 1)])
def test_gpu_engines_get_one_bundle_per_gpu_and_their_own_workers(engines, tp, pp) -> None:
    cfg = RolloutConfig(device="cuda", num_engines=engines, tensor_parallel_size=tp,
                        pipeline_parallel_size=pp, cpus_per_engine=3)  # fmt: skip
    placed = engine_placement(
        cfg.num_engines, cfg.gpus_per_engine, True, cfg.cpus_per_engine, "engine_node"
    )
    size = tp * pp
    assert len(placed.bundles) == engines * size
    assert all(b["GPU"] == 1 for b in placed.bundles)  # vLLM rejects a bundle of 2 GPUs
    for i in range(engines):
        first = placed.actor_bundle[i]
        assert first == i * size and placed.bundles[first]["CPU"] == 3
        assert placed.bundles[first]["engine_node"] == 1
        if size == 1:  # vLLM runs in the actor, which takes the bundle's GPU
            assert placed.worker_bundles[i] == [] and placed.env(i) == {}
        else:  # vLLM's Ray workers take the GPUs, told where by VLLM_RAY_BUNDLE_INDICES
            assert placed.worker_bundles[i] == list(range(first, first + size))
            assert placed.env(i) == {
                "VLLM_RAY_BUNDLE_INDICES": ",".join(map(str, range(first, first + size)))
            }
    assert placed.actor_gpus == (1.0 if size == 1 else 0.0)
    owned = [b for w in placed.worker_bundles for b in w]
    assert len(owned) == len(set(owned))  # no two engines share a bundle


def test_cpu_engines_are_one_cpu_bundle_each() -> None:
    placed = engine_placement(2, 4, False, 1)
    assert placed.bundles == [{"CPU": 1}, {"CPU": 1}]
    assert placed.actor_bundle == [0, 1] and placed.actor_gpus == 0.0 and placed.env(1) == {}
