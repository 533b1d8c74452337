"""`ray job submit` against a local `ray start --head`, as README documents for clusters."""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mtg_ray.paths import REPO_ROOT
from mtg_ray.ports import free_port
from mtg_ray.tinyworld import World

pytestmark = pytest.mark.slow


def test_ray_job_submit_runs_a_job(small_world: World, tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),  # this test's cluster only
    }
    port, dashboard = free_port("127.0.0.1"), free_port("127.0.0.1")
    # Ray's unix sockets live under --temp-dir and must stay under 107 bytes: pytest's tmp_path
    # is too deep, so the head gets a short folder of its own.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    head_log = open(tmp_path / "head.log", "w")  # noqa: SIM115 (closed in finally)
    head = subprocess.Popen(
        [
            f"{bin_dir}/ray", "start", "--head", "--block",
            f"--port={port}", "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
            "--num-cpus=2", f"--temp-dir={temp_dir}",
        ],
        env=env, stdout=head_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        command = [
            f"{bin_dir}/ray", "job", "submit",
            f"--address=http://127.0.0.1:{dashboard}", "--working-dir", str(REPO_ROOT), "--",
            "python", "scripts/run.py", "world", "resources=cluster", "world=small",
            f"cache_dir={small_world.root.parent}",
        ]  # fmt: skip
        deadline = time.monotonic() + 60
        # The dashboard's job API, then its job agent, come up a few seconds after the head.
        not_yet = ("Connection", "No available agent to submit job")
        while True:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            if not any(s in done.stdout + done.stderr for s in not_yet):
                break
            time.sleep(2)
        output = done.stdout + done.stderr
        head_output = (tmp_path / "head.log").read_text()[-2000:]
        assert done.returncode == 0, output[-3000:] + "\nray start:\n" + head_output
        assert "succeeded" in output and "train_accuracy_t1" in output
    finally:
        head.terminate()
        head.wait(timeout=60)
        head_log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
