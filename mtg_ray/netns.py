"""A private network for a local run: the entry script re-executes itself in a new Linux
network namespace, inside a user namespace (no privileges needed), whose only interface is
loopback.

Ray 2.60 binds its gRPC servers to every interface and has no option to bind loopback alone;
in such a namespace every interface is loopback, so nothing a local run starts (Ray's servers,
the learner's store, the weight-sync groups) can be reached from another machine. A local run
needs no network: models and data are on disk.
"""

import fcntl
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
from typing import NoReturn

log = logging.getLogger(__name__)

MARKER = "MTG_RAY_PRIVATE_NETWORK"  # set in the re-executed process
UNSHARE = ("--user", "--map-root-user", "--net")
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def inside() -> bool:
    """Whether this process runs in the private namespace `enter` made."""
    return os.environ.get(MARKER) == "1"


def unavailable() -> str:
    """Why a private namespace cannot be made here ("" when it can)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "no `unshare` command (util-linux)"
    probe = subprocess.run([unshare, *UNSHARE, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`unshare {' '.join(UNSHARE)}` failed: {probe.stderr.strip()}"
    return ""


def loopback_up() -> None:
    """Bring `lo` up: a new network namespace starts with it down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def enter() -> None:
    """Make sure this script runs in a private network namespace: re-execute it there (the
    same pid, arguments and environment), or, already inside, bring loopback up and pin gloo
    to it. Where namespaces are not available, say why and go on in the host's network."""
    if inside():
        loopback_up()
        # gloo finds its address through the host name, which is not an address in here.
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        return
    why = unavailable()
    if why:
        log.warning(
            "resources.private_network: %s; running in the host's network, where Ray's "
            "servers listen on every interface",
            why,
        )
        return
    unshare = shutil.which("unshare")
    assert unshare is not None
    os.environ[MARKER] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(unshare, [unshare, *UNSHARE, sys.executable, *sys.argv])


COMMAND_MARKER = "MTG_RAY_PRIVATE_NETWORK_COMMAND"  # set while `run_command` re-executes


def run_command(command: list[str]) -> NoReturn:
    """Replace this process with `command` run in a private network namespace of its own
    (loopback up, gloo pinned to it): e.g. a test process whose local Rays must not meet
    another process's on the one port Ray always takes (its dashboard agent's 52365). Scripts
    it starts still make their own namespace (`enter`). Exits with the reason where namespaces
    are not available."""
    if os.environ.pop(COMMAND_MARKER, None) == "1":
        loopback_up()
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        os.execvp(command[0], command)
    why = unavailable()
    if why:
        raise SystemExit(f"mtg_ray.netns: {why}")
    unshare = shutil.which("unshare")
    assert unshare is not None
    os.environ[COMMAND_MARKER] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(unshare, [unshare, *UNSHARE, sys.executable, "-m", "mtg_ray.netns", *command])


def main(argv: list[str]) -> None:
    """`python -m mtg_ray.netns COMMAND [ARG...]` runs COMMAND in a private network namespace;
    `python -m mtg_ray.netns --available` exits 0 if one can be made here (else 1, saying why)."""
    if argv == ["--available"]:
        why = unavailable()
        if why:
            print(why, file=sys.stderr)
        raise SystemExit(1 if why else 0)
    if not argv:
        raise SystemExit(main.__doc__)
    run_command(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
