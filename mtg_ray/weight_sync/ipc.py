"""CUDA IPC weight transfer, for receivers on the learner's own GPU: vLLM's packed IPC format
(`IPCWeightTransferUpdateInfo` with packed=True, which vLLM's `ipc` backend consumes), built with
torch alone so that the sending side needs no vLLM.

The sender exports one staging buffer once (`reduce_tensor`) and packs the tensors into it
chunk by chunk; each chunk's update info names its tensors, dtypes, shapes and byte sizes and
carries the buffer's handle keyed by the GPU's UUID. A receiver maps the buffer once, copies a
chunk's tensors out, and must be done with a chunk before the sender packs the next one.
"""

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from mtg_ray.weight_sync.buckets import BucketMeta
from mtg_ray.weight_sync.direct import checked


def fit_chunks(sizes: Sequence[int], capacity: int) -> list[tuple[int, int]]:
    """[start, stop) tensor indices of each chunk: as many tensors as fit in `capacity` bytes
    (vLLM's IPC packing rule). A tensor larger than the buffer is an error."""
    bounds, start, total = [], 0, 0
    for i, n in enumerate(sizes):
        if n > capacity:
            raise ValueError(f"tensor {i} has {n} bytes, more than the {capacity}-byte buffer")
        if total and total + n > capacity:
            bounds.append((start, i))
            start, total = i, 0
        total += n
    if start < len(sizes):
        bounds.append((start, len(sizes)))
    return bounds


def gpu_uuid(device: torch.device) -> str:
    return str(torch.cuda.get_device_properties(device).uuid)


class IpcExporter:
    """A staging buffer of `capacity` bytes on `device`, exported for IPC once."""

    def __init__(self, capacity: int, device: torch.device) -> None:
        from torch.multiprocessing.reductions import reduce_tensor

        self.buffer = torch.empty(capacity, dtype=torch.uint8, device=device)
        _, self.handle = reduce_tensor(self.buffer)
        self.key = gpu_uuid(device)

    def chunks(
        self, pairs: Iterable[tuple[str, Tensor]], meta: BucketMeta
    ) -> Iterator[dict[str, Any]]:
        """Each chunk's update info, once its bytes are in the buffer (`pack_chunks`). Resume
        the iterator only after every receiver is done with the last chunk: the next one
        overwrites it."""
        for update in pack_chunks(pairs, meta, self.buffer):
            torch.cuda.current_stream(self.buffer.device).synchronize()
            yield {**update, "ipc_handles": {self.key: self.handle}}


def pack_chunks(
    pairs: Iterable[tuple[str, Tensor]], meta: BucketMeta, buffer: Tensor
) -> Iterator[dict[str, Any]]:
    """Pack `pairs` (checked against `meta`) into `buffer` from byte 0 a chunk at a time, cut
    by `fit_chunks`; yields each chunk's update info but its handles (names, dtypes, shapes,
    byte sizes) once the chunk is in the buffer. The next chunk overwrites it."""
    sizes = meta.sizes()
    stream = checked(pairs, meta)
    for start, stop in fit_chunks(sizes, buffer.numel()):
        offset = 0
        for _ in range(start, stop):
            flat = next(stream)[1].detach().contiguous().view(-1).view(torch.uint8)
            buffer[offset : offset + flat.numel()].copy_(flat)
            offset += flat.numel()
        yield dict(
            names=meta.names[start:stop], dtype_names=meta.dtype_names[start:stop],
            shapes=meta.shapes[start:stop], tensor_sizes=sizes[start:stop],
        )  # fmt: skip
    for _ in stream:  # raises if more tensors came than the metadata lists
        pass


def unpack_chunk(buffer: Tensor, update: dict[str, Any]) -> list[tuple[str, Tensor]]:
    """A chunk's tensors, copied out of `buffer` (which holds it from byte 0)."""
    out, offset = [], 0
    for name, dtype, shape, n in zip(
        update["names"], update["dtype_names"], update["shapes"], update["tensor_sizes"],
        strict=True,
    ):  # fmt: skip
        view = buffer[offset : offset + n].view(getattr(torch, dtype)).view(shape)
        out.append((name, view.clone()))
        offset += n
    return out


class IpcImporter:
    """The receiving end on `device`: maps the sender's buffer once and unpacks chunks."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.key = gpu_uuid(device)
        self._mapped: tuple[tuple, Tensor] | None = None

    def receive(self, update: dict[str, Any]) -> list[tuple[str, Tensor]]:
        from torch.multiprocessing.reductions import rebuild_cuda_tensor

        if self.key not in update["ipc_handles"]:
            raise ValueError(f"no IPC handle for this GPU ({self.key}): is the sender on it?")
        args = list(update["ipc_handles"][self.key])
        args[6] = self.device.index  # the handle names the sender's device index
        key = tuple(args)
        if self._mapped is None or self._mapped[0] != key:
            self._mapped = (key, rebuild_cuda_tensor(*args))
        return unpack_chunk(self._mapped[1], update)

    def close(self) -> None:
        self._mapped = None
