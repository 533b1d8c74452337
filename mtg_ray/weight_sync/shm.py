"""A shared-memory weight-transfer backend for vLLM's weight-transfer API, for CPU engines on the
trainer's node: the CPU counterpart of vLLM's CUDA IPC backend.

The trainer packs each bucket into a file under a tmpfs folder (`/dev/shm`) that it keeps
across syncs; the update info names the file and the bucket's layout, and every engine worker
maps the file and loads the bucket's tensors straight from the mapping. A bucket crosses
process boundaries with one copy in (the pack) and one copy out (the load) per engine, instead
of gloo's socket stream to every engine.
"""

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from vllm.distributed.weight_transfer.base import WeightTransferInitInfo, WeightTransferUpdateInfo

from mtg_ray.weight_sync.buckets import BucketMeta, unpack
from mtg_ray.weight_sync.cpu_engine import CpuWeightTransferEngine

BACKEND = "shm"


@dataclass
class ShmInitInfo(WeightTransferInitInfo):
    """Nothing to rendezvous: each update names its file."""


@dataclass
class ShmUpdateInfo(WeightTransferUpdateInfo):
    """One bucket: the file holding it (`capacity` bytes long) and its tensors, in order."""

    path: str
    capacity: int
    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]


def map_file(path: str, nbytes: int) -> Tensor:
    """A uint8 tensor over the first `nbytes` of `path`, shared with every other mapping.

    The file must already be that long: when torch extends a file to map it, it also writes a
    zero into its first byte."""
    size = os.path.getsize(path)
    if size < nbytes:
        raise ValueError(f"{path}: {size} bytes, fewer than the {nbytes} to map")
    return torch.from_file(path, shared=True, size=nbytes, dtype=torch.uint8)


class ShmWeightTransferEngine(CpuWeightTransferEngine[ShmInitInfo, ShmUpdateInfo]):
    """Worker side: maps each bucket's file (once per file) and loads the bucket into the model."""

    init_info_cls = ShmInitInfo
    update_info_cls = ShmUpdateInfo

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mappings: dict[str, Tensor] = {}

    def init_transfer_engine(self, init_info: ShmInitInfo) -> None:
        self.mappings.clear()

    def receive_weights(self, update_info: ShmUpdateInfo) -> None:
        buf = self.mappings.get(update_info.path)
        if buf is None or buf.numel() != update_info.capacity:  # new file, or it grew
            buf = self.mappings[update_info.path] = map_file(update_info.path, update_info.capacity)
        meta = BucketMeta(update_info.names, update_info.dtype_names, update_info.shapes)
        self.model.load_weights(unpack(buf, meta))

    def shutdown(self) -> None:
        self.mappings.clear()
