"""Free TCP ports for rendezvous (a process group's store, the weight sender's group)."""

import socket


def free_port(host: str) -> int:
    """A port on `host` that nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
