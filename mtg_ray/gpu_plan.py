"""How a job's GPUs are shared between the rollout engines and the learner ranks, and whether
a cluster can hold that at all, decided before any model loads.

`resources.gpu_mode`:
- `separate`: every engine GPU and every learner rank's GPU is its own (the engines' GPUs
  are engines x TP x PP; the ranks', ranks x learner.gpus_per_worker).
- `colocate`: one placement group of one-GPU bundles serves both groups (verl's hybrid
  engine, OpenRLHF's colocation): learner rank i shares bundle i's GPU with the engine (or
  engine worker) placed there, each asking `GPU_SHARE` of it. The engines sleep (vLLM's sleep
  mode: KV cache dropped, weights moved to host memory) while the learner trains and wake for
  every request and weight sync; the learner empties its CUDA cache after each step.

Pure functions: the session checks the plan against the cluster's nodes (`check_fits`), and
the groups take their bundles from it.
"""

from dataclasses import dataclass

from mtg_ray.learner import LearnerConfig
from mtg_ray.rollout import RolloutConfig

GPU_MODES = ("separate", "colocate")
GPU_SHARE = 0.5  # what an engine (worker) and a learner rank each ask of a shared GPU


@dataclass(frozen=True)
class GpuPlan:
    """mode: resources.gpu_mode. engine_gpus: engines x TP x PP. learner_gpus: ranks x
    learner.gpus_per_worker. shared_bundles: one-GPU bundles of the shared placement group
    (colocate; 0 otherwise). bundle_cpus: CPUs of each shared bundle (an engine's and a
    rank's)."""

    mode: str
    engine_gpus: int
    learner_gpus: int
    shared_bundles: int
    bundle_cpus: int
    teacher_gpus: int = 0

    @property
    def gpus(self) -> int:
        """GPUs the job holds at once."""
        if self.mode == "colocate":
            return self.shared_bundles + self.teacher_gpus
        return self.engine_gpus + self.learner_gpus + self.teacher_gpus

    def describe(self) -> str:
        """One line: what the plan needs, and why."""
        teacher = (
            f" + {self.teacher_gpus} for the teacher (teacher.num_engines x "
            "tensor_parallel_size)" if self.teacher_gpus else ""
        )  # fmt: skip
        if self.mode == "colocate":
            return (
                f"{self.gpus} GPUs: {self.shared_bundles} shared by {self.engine_gpus} engine "
                f"GPU(s) and {self.learner_gpus} learner rank GPU(s){teacher} "
                "(resources.gpu_mode=colocate)"
            )
        return (
            f"{self.gpus} GPUs: {self.engine_gpus} for the engines (rollout.num_engines x "
            f"tensor_parallel_size x pipeline_parallel_size) + {self.learner_gpus} for the "
            f"learner (learner.num_workers x gpus_per_worker){teacher}, "
            "resources.gpu_mode=separate"
        )


def gpu_plan(
    rollout: RolloutConfig, learner: LearnerConfig, mode: str, teacher_gpus: int = 0
) -> GpuPlan | None:
    """The GPUs a job of these settings holds; None when it uses none (CPU engines and
    learner). `colocate` needs engines and learner both on GPUs, one GPU per rank.
    `teacher_gpus`: the teacher's engines' (`teacher.*`), always GPUs of their own."""
    if mode not in GPU_MODES:
        raise ValueError(f"resources.gpu_mode={mode!r}: one of {list(GPU_MODES)}")
    on_gpu = rollout.device == "cuda"
    engine_gpus = rollout.num_engines * rollout.gpus_per_engine if on_gpu else 0
    learner_gpus = learner.num_workers * learner.gpus_per_worker
    if not engine_gpus and not learner_gpus and not teacher_gpus:
        if mode == "colocate":
            raise ValueError(
                "resources.gpu_mode=colocate shares GPUs between engines and learner, but "
                "neither uses one (rollout.device=cpu, learner.gpus_per_worker=0)"
            )
        return None
    if mode == "colocate":
        if not engine_gpus or learner.gpus_per_worker != 1:
            raise ValueError(
                "resources.gpu_mode=colocate needs rollout.device=cuda and "
                f"learner.gpus_per_worker=1 (got {rollout.device}, {learner.gpus_per_worker})"
            )
        bundles = max(engine_gpus, learner_gpus)
        return GpuPlan(mode, engine_gpus, learner_gpus, bundles,
                       rollout.cpus_per_engine + learner.cpus_per_worker, teacher_gpus)  # fmt: skip
    return GpuPlan(mode, engine_gpus, learner_gpus, 0, 0, teacher_gpus)


def check_fits(plan: GpuPlan, node_gpus: list[int]) -> None:
    """Raise ValueError (one line: what the plan needs, what the cluster has, what to change)
    when the cluster's nodes (`node_gpus`: each alive node's GPUs) cannot hold `plan`: Ray
    would otherwise wait for ever for the last placement group."""
    have = sum(node_gpus)
    if plan.gpus <= have:
        return
    nodes = f"{len(node_gpus)} node(s) of {sorted(set(node_gpus))} GPUs"
    fix = (
        "set resources.gpu_mode=colocate (engines and learner share GPUs), or fewer "
        "rollout.num_engines / learner.num_workers"
        if plan.mode == "separate"
        else "use fewer rollout.num_engines / learner.num_workers"
    )
    raise ValueError(
        f"the job needs {plan.describe()}; the cluster has {have} GPUs ({nodes}): {fix}; "
        "or resources.autoscaler=true if nodes are still to come"
    )
