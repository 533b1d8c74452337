"""Rendezvous addresses: free TCP ports (a weight sender's group) and a process-group store
that listens only where it is told."""

import socket

from torch.distributed import TCPStore


def free_port(host: str) -> int:
    """A port on `host` that nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening_store(host: str, world_size: int) -> TCPStore:
    """The server of a torch.distributed TCPStore listening on `host` alone, at a port the OS
    picks (`.port`). torch's own server listens on every interface at a port named before it
    is bound (another process may take it first); this one is bound before it is named, and is
    reachable only at `host` (loopback in a local run)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen()
    port = sock.getsockname()[1]
    return TCPStore(
        host, port, world_size, is_master=True, wait_for_workers=False,
        master_listen_fd=sock.detach(),
    )  # fmt: skip
