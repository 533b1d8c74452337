"""Trainer side of a weight sync: the gloo sender (rank 0 of the transfer group, broadcasting
buckets) and the shared-memory sender (bucket files the engines map)."""

import os
from dataclasses import asdict
from typing import Any

from torch import Tensor

from mtg_ray.tempdirs import OwnedTempDir
from mtg_ray.weight_sync.buckets import bucket_meta, pack
from mtg_ray.weight_sync.groups import broadcast, join_group
from mtg_ray.weight_sync.shm import map_file


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

    def close(self) -> None:
        self.group = None


PREFIX = "mtg-ray-weights-"


class ShmSender:
    """One file per bucket index in a fresh folder under `root` (a tmpfs such as /dev/shm),
    kept and rewritten in place across syncs; the folder is removed by `close` or when the
    sender is collected, and by the next sender on this machine if this process dies first.
    Between syncs the files hold the last synced weights."""

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"rollout.shm_dir {root!r} is not a folder")
        self._dir = OwnedTempDir(PREFIX, root)
        self.folder = self._dir.path
        self._files: dict[int, Tensor] = {}

    def write(self, index: int, bucket: list[tuple[str, Tensor]]) -> dict[str, Any]:
        """Pack bucket `index` into its file; returns the engines' update info."""
        meta = bucket_meta(bucket)
        path = os.path.join(self.folder, f"bucket-{index:05d}")
        buf = self._files.get(index)
        if buf is None or buf.numel() < meta.nbytes:  # size the file first: see map_file
            with open(path, "ab") as f:
                f.truncate(meta.nbytes)
            buf = self._files[index] = map_file(path, meta.nbytes)
        pack(bucket, out=buf)
        return dict(path=path, capacity=buf.numel(), **asdict(meta))

    def close(self) -> None:
        self._files.clear()
        self._dir.close()
