"""`python -m mtg_ray.netns COMMAND`: the command in a network namespace of its own, loopback up,
and scripts it starts still free to make theirs (the marker is not passed on)."""

import os
import subprocess
import sys

import pytest

from mtg_ray import netns


def test_a_command_runs_alone_on_loopback() -> None:
    if why := netns.unavailable():
        pytest.skip(f"no private network namespace on this machine: {why}")
    probe = (
        "import os, socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
        "print(os.readlink('/proc/self/ns/net'), os.environ.get('GLOO_SOCKET_IFNAME'), "
        f"{netns.MARKER!r} in os.environ, {netns.COMMAND_MARKER!r} in os.environ)"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mtg_ray.netns", sys.executable, "-c", probe],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out[0] != os.readlink("/proc/self/ns/net")  # another namespace, loopback up in it
    assert out[1:] == ["lo", "False", "False"]


def test_without_a_command_it_says_how_to_use_it() -> None:
    done = subprocess.run([sys.executable, "-m", "mtg_ray.netns"], capture_output=True, text=True)
    assert done.returncode != 0 and "COMMAND" in done.stderr
