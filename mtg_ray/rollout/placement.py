"""Where the rollout group's engines and their workers go, as vLLM's Ray executor expects.

vLLM's Ray executor adopts the placement group its engine runs in and rejects any bundle with
more than one GPU (vllm/v1/executor/ray_utils.py). So the group holds one bundle per GPU: an
engine of TP x PP GPUs owns that many consecutive bundles; its actor sits in the first one
(without a GPU of its own when vLLM's Ray workers take the GPUs: TP x PP > 1) and tells vLLM its
workers' bundles through `VLLM_RAY_BUNDLE_INDICES`. A one-GPU engine runs in its actor's
process, which then takes the bundle's GPU. CPU engines are one bundle each.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class EnginePlacement:
    """bundles: the placement group's. actor_bundle[i]: where engine i's actor goes.
    worker_bundles[i]: its workers' bundles (VLLM_RAY_BUNDLE_INDICES; empty: vLLM runs in the
    actor's process). actor_gpus: the GPUs an engine actor asks for."""

    bundles: list[dict[str, float]]
    actor_bundle: list[int]
    worker_bundles: list[list[int]]
    actor_gpus: float

    def env(self, engine: int) -> dict[str, str]:
        """Environment variables engine `engine`'s actor gives vLLM."""
        workers = self.worker_bundles[engine]
        return {"VLLM_RAY_BUNDLE_INDICES": ",".join(map(str, workers))} if workers else {}


def engine_placement(
    num_engines: int, gpus_per_engine: int, on_gpu: bool, cpus_per_engine: int,
    node_resource: str = "",
) -> EnginePlacement:  # fmt: skip
    """The layout of `num_engines` engines of `gpus_per_engine` GPUs each (TP x PP; ignored on
    CPU). `node_resource`, if set, is asked once per engine (in its actor's bundle) to pin it
    to the nodes that offer it."""
    if num_engines < 1 or gpus_per_engine < 1:
        raise ValueError(f"need engines and GPUs per engine >= 1, got {num_engines}, "
                         f"{gpus_per_engine}")  # fmt: skip
    size = gpus_per_engine if on_gpu else 1
    bundles: list[dict[str, float]] = []
    actor_bundle, worker_bundles = [], []
    for _ in range(num_engines):
        first = len(bundles)
        for k in range(size):
            bundle: dict[str, float] = {"GPU": 1} if on_gpu else {}
            if k == 0:
                bundle["CPU"] = cpus_per_engine
                if node_resource:
                    bundle[node_resource] = 1
            bundles.append(bundle)
        actor_bundle.append(first)
        worker_bundles.append(list(range(first, first + size)) if size > 1 else [])
    actor_gpus = 1.0 if on_gpu and size == 1 else 0.0
    return EnginePlacement(bundles, actor_bundle, worker_bundles, actor_gpus)
