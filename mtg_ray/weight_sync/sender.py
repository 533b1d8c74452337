"""Trainer side of a gloo weight sync: rank 0 of the transfer group, broadcasting buckets."""

import socket
from typing import Any

from torch import Tensor

from mtg_ray.weight_sync.buckets import pack
from mtg_ray.weight_sync.gloo import broadcast, join_group


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class GlooSender:
    """Holds the transfer group (trainer = rank 0) and broadcasts packed buckets."""

    def __init__(self, host: str, port: int, world_size: int) -> None:
        self.host, self.port, self.world_size = host, port, world_size
        self.group: Any = None
        self._buffer: Tensor | None = None

    def connect(self) -> None:
        """Blocks until every engine worker has joined (they are told to join concurrently)."""
        self.group = join_group(self.host, self.port, 0, self.world_size)

    def send(self, bucket: list[tuple[str, Tensor]]) -> Tensor:
        """Broadcast one bucket; returns the packed buffer, valid until the next send."""
        buf = pack(bucket, out=self._buffer)
        if self._buffer is None or buf.numel() > self._buffer.numel():
            self._buffer = buf
        broadcast(self.group, buf)
        return buf

    def send_packed(self, buf: Tensor) -> None:
        broadcast(self.group, buf)
