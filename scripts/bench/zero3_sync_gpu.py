"""What ZeRO-3's gathers cost a direct weight sync, side by side in one run: the same weights
synced from two learner ranks under ZeRO-2 (rank 0 holds every weight: no gathers) and under
ZeRO-3 (each bucket gathered first; DeepSpeed synchronises the whole device after each gather,
which also waits for the chunk still on the wire, so the send's double buffering may be lost)
into one engine over NCCL. Last line:

    zero3_sync: zero2_s=<s> zero3_s=<s> ratio=<zero3_s / zero2_s>

each the mean of `--syncs` syncs after one warm-up. A ratio near 1 says the gathers cost the
sync little; well above it says to overlap differently (issue 24, point 6).

    python scripts/bench/zero3_sync_gpu.py [--syncs 3] [--cpu]

GPU: 3 GPUs, Ray, CUDA vLLM 0.32, DeepSpeed; Qwen2.5-Math-1.5B's shape (random weights), bf16.
`--cpu` runs the same on CPU at a small shape (gloo learners, the stand-in for NCCL, fp32): its
ratio says nothing about GPUs; it shows the script runs (about 3 minutes here, so the suite
leaves it out: `scripts/device/cluster_checks.py --cpu`, in the suite, drives the same groups
and sync). Not yet run on GPUs.
"""

import argparse
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path

import torch

STANDIN = "nccl_standin_gloo"  # the NCCL path with a gloo group, on CPU


def missing(gpu: bool) -> str | None:
    for module in ("ray", "vllm", "deepspeed"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if gpu and (not torch.cuda.is_available() or torch.cuda.device_count() < 3):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return f"{count} GPU(s); two learner ranks and one engine need 3 (--cpu runs it on CPU)"
    return None


def mean_sync_s(model: str, zero_stage: int, gpu: bool, syncs: int) -> float:
    """Mean seconds of `syncs` syncs (after one warm-up) from a fresh two-rank learner group at
    `zero_stage` into a fresh one-engine rollout group."""
    from mtg_ray.learner import LearnerConfig
    from mtg_ray.pipelines.groups.learner_group import LearnerGroup
    from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
    from mtg_ray.rollout import RolloutConfig

    learner = LearnerGroup(
        LearnerConfig(
            num_workers=2, gpus_per_worker=1 if gpu else 0, backend="nccl" if gpu else "gloo",
            zero_stage=zero_stage, train_batch_size=8,
            micro_batch_size=4, max_length=128,
        ),
        model, total_steps=1,
    )  # fmt: skip
    on_gpu = dict(device="cuda", dtype="bfloat16", gpu_memory_utilization=0.5)
    engine = {**on_gpu, "weight_backend": "nccl"} if gpu else {"weight_backend": STANDIN}
    rollout = RolloutGroup(
        RolloutConfig(num_engines=1, max_model_len=256, bucket_bytes=64 << 20, **engine), model
    )
    try:
        times = [rollout.sync_from(learner, version).seconds for version in range(1, syncs + 2)]
    finally:
        rollout.shutdown()
        learner.shutdown()
    print(f"zero_stage {zero_stage}: sync seconds {', '.join(f'{t:.3f}' for t in times)} "
          "(the first is the warm-up)")  # fmt: skip
    return statistics.mean(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syncs", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="run on CPU at a small shape")
    args = parser.parse_args()
    gpu = not args.cpu
    reason = missing(gpu)
    if reason:
        print(f"SKIPPED zero3_sync_gpu: {reason}; nothing was measured")
        return 0
    from mtg_ray.models.shapes import QWEN_1_5B, SMALL, build_random_model
    from mtg_ray.pipelines.groups.cluster import init_local_ray

    init_local_ray(4)
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_random_model(
            Path(tmp) / "m", QWEN_1_5B if gpu else SMALL, device="cuda" if gpu else "cpu",
            dtype="bfloat16" if gpu else "float32",
        ))  # fmt: skip
        if gpu:
            torch.cuda.empty_cache()  # the driver built the model on GPU 0: give it back
        zero2 = mean_sync_s(model, 2, gpu, args.syncs)
        zero3 = mean_sync_s(model, 3, gpu, args.syncs)
    print(f"zero3_sync: zero2_s={zero2:.3f} zero3_s={zero3:.3f} ratio={zero3 / zero2:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
