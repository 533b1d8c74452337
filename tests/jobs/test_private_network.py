"""A local run is reachable only on loopback: `scripts/run.py` re-executes itself in a private
network namespace (`mtg_ray.netns`). While the run's learner rank and engine are up, every
socket listening in the run's namespace is checked; its Ray session folder is the run's own.

(In the host's network the same run has Ray's gRPC servers on every interface: README.)
"""

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mtg_ray import netns
from mtg_ray.paths import REPO_ROOT
from mtg_ray.tempdirs import remove_orphans
from mtg_ray.tinyworld import World, small

pytestmark = pytest.mark.slow

LISTEN = "0A"  # the TCP state in /proc/net/tcp{,6}


def listeners(pid: int) -> list[str]:
    """Addresses ("ip") of the TCP sockets listening in `pid`'s network namespace."""
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != LISTEN:
                continue
            raw = bytes.fromhex(local.split(":")[0])
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
            found.append(str(ipaddress.ip_address(b"".join(words))))
    return found


def loopback_only(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def interfaces(pid: int) -> set[str]:
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return {line.split(":")[0].strip() for line in lines}


def titles(pid: int) -> list[str]:
    out = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            out.append((child.cmdline() or [""])[0])
        except psutil.NoSuchProcess:
            continue
    return out


def test_local_run_listens_only_on_loopback(small_world: World, tmp_path: Path) -> None:
    if why := netns.unavailable():
        pytest.skip(f"no private network namespace on this machine: {why}")
    assert small_world.config == small()
    command = [
        sys.executable, "scripts/run.py", "online", "--config", "online", "world=small",
        f"cache_dir={small_world.root.parent}", f"output_dir={tmp_path / 'run'}",
        "data.max_train_problems=16", "rollout.num_engines=1", "learner.num_workers=1",
        "learner.train_batch_size=8", "learner.micro_batch_size=4", "online.steps=2",
    ]  # fmt: skip
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        run = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 240
        while not (
            any(t.startswith("ray::LearnerActor") for t in titles(run.pid))
            and any(t.startswith("ray::RolloutActor") for t in titles(run.pid))
        ):
            assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        time.sleep(2)  # the learner's process group is up
        found, ifaces = listeners(run.pid), interfaces(run.pid)
        own_namespace = os.readlink(f"/proc/{run.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        ray_dirs = [p for p in Path("/tmp").glob(f"mtg-ray-ray-{run.pid}-*") if p.is_dir()]
    finally:
        procs = [run, *psutil.Process(run.pid).children(recursive=True)]
        for proc in procs:
            try:
                proc.send_signal(signal.SIGKILL)
            except (psutil.NoSuchProcess, ProcessLookupError):
                continue
        run.wait()
    assert own_namespace  # the run made its own, even if this test runs in one already
    assert ifaces == {"lo"}, ifaces
    assert found, "nothing listened: was the learner up?"
    assert [a for a in found if not loopback_only(a)] == [], found
    assert "host's network" not in log_path.read_text()  # the namespace was made
    # Ray's session folder was this run's own; killed, it is removed by the next run's check.
    assert len(ray_dirs) == 1 and list(ray_dirs[0].glob("session_*"))
    assert ray_dirs[0].name in remove_orphans("/tmp", "mtg-ray-ray-")
