"""GPU check for users with vLLM: engines on GPU, NCCL weight sync, logits that match.

A one-rank learner group (DeepSpeed, bf16, NCCL) and a rollout group of one vLLM engine on
another GPU, both Ray actors, on the project's tiny model: two training steps, one
`rollout.weight_backend=nccl` sync (learner rank 0 broadcasts to the engine worker through vLLM's
NCCL weight-transfer backend), then the engine's token log-probs must match the learner's within
bf16 rounding, and a second sync must reuse the group. Needs 2 GPUs, Ray and CUDA vLLM; where any
is missing it says which and exits 0 without checking anything.

    python scripts/device/rollout_gpu_check.py
"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

TOLERANCE = 0.05  # per token |log p|: bf16 engine vs bf16 learner


def missing() -> str | None:
    for module in ("ray", "vllm", "deepspeed"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device"
    if torch.cuda.device_count() < 2:
        return f"{torch.cuda.device_count()} GPU(s); the learner and the engine need one each"
    return None


def main() -> None:
    reason = missing()
    if reason:
        print(f"SKIPPED rollout_gpu_check: {reason}; nothing was checked")
        return
    from mtg_ray.data.synthetic import arithmetic_records
    from mtg_ray.learner import LearnerConfig
    from mtg_ray.models import build_tiny_model, build_tokenizer
    from mtg_ray.objectives import Objective
    from mtg_ray.pipelines.groups.cluster import init_local_ray
    from mtg_ray.pipelines.groups.learner_group import LearnerGroup
    from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
    from mtg_ray.rollout import RolloutConfig

    init_local_ray(4)
    model = str(build_tiny_model(Path(tempfile.mkdtemp()) / "m"))
    records = arithmetic_records(8, build_tokenizer())
    learner = LearnerGroup(
        LearnerConfig(
            num_workers=1, gpus_per_worker=1, backend="nccl", train_batch_size=8,
            micro_batch_size=4, lr=1e-3, max_length=128,
        ),
        model, total_steps=8,
    )  # fmt: skip
    rollout = RolloutGroup(
        RolloutConfig(
            num_engines=1, device="cuda", dtype="bfloat16", max_model_len=256,
            gpu_memory_utilization=0.3, weight_backend="nccl", bucket_bytes=1 << 20,
        ),
        model,
    )  # fmt: skip
    pairs = [(r.prompt_token_ids, r.response_token_ids) for r in records]
    try:
        for version in (1, 2):
            for _ in range(2):
                learner.train_step(records, Objective("sft"))
            stats = rollout.sync_from(learner, version)
            engine = rollout.score([p for p, _ in pairs], [r for _, r in pairs])
            live = learner.score(records)
            diff = max(
                abs(a - b)
                for xs, ys in zip(engine, live, strict=True)
                for a, b in zip(xs, ys, strict=True)
            )
            print(f"sync {version}: {stats.bytes / 2**20:.1f} MiB in {stats.buckets} chunks, "
                  f"{stats.seconds:.3f} s; max |dlogp| engine vs learner {diff:.4f}")  # fmt: skip
            assert rollout.versions() == [version] and diff < TOLERANCE
    finally:
        learner.shutdown()
        rollout.shutdown()
    print("ROLLOUT GPU CHECK OK")


if __name__ == "__main__":
    sys.exit(main())
