"""Size-capped buckets of named tensors, packed into one flat byte buffer for a broadcast."""

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class BucketMeta:
    """What a receiver needs to decode tensors sent in order: names, dtypes (torch attribute
    names), shapes. Describes one bucket of ours, or every tensor of a direct sync (the fields
    of vLLM's NCCLWeightTransferUpdateInfo)."""

    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]

    def sizes(self) -> list[int]:
        """Each tensor's bytes (unaligned: vLLM's packed chunks hold them back to back)."""
        return [
            math.prod(s) * getattr(torch, d).itemsize
            for d, s in zip(self.dtype_names, self.shapes, strict=True)
        ]

    @property
    def nbytes(self) -> int:
        """Bytes of this bucket packed by `pack` (each tensor aligned)."""
        return _layout(self)[1]


ALIGN = 16  # every tensor starts at a multiple of this, so typed views of the buffer are legal


def _layout(meta: BucketMeta) -> tuple[list[tuple[int, int]], int]:
    """(offset, nbytes) of each tensor in the packed buffer, and the buffer size."""
    spans, offset = [], 0
    for n in meta.sizes():
        spans.append((offset, n))
        offset += -(-n // ALIGN) * ALIGN
    return spans, offset


def tensor_nbytes(tensor: Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def iter_buckets(
    named: Iterable[tuple[str, Tensor]],
    bucket_bytes: int,
    nbytes: Callable[[Tensor], int] = tensor_nbytes,
) -> Iterator[list[tuple[str, Tensor]]]:
    """Group (name, tensor) pairs, in order, into lists of at most `bucket_bytes` as `nbytes`
    counts them (a larger tensor goes alone). Lazy: the caller's iterator (e.g. a ZeRO-3 gather)
    is pulled one bucket at a time."""
    bucket: list[tuple[str, Tensor]] = []
    size = 0
    for name, tensor in named:
        n = nbytes(tensor)
        if bucket and size + n > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += n
    if bucket:
        yield bucket


def dtype_name(dtype: torch.dtype) -> str:
    """The torch attribute name of `dtype` ("bfloat16"), as metadata carries it."""
    return str(dtype).removeprefix("torch.")


def bucket_meta(bucket: list[tuple[str, Tensor]]) -> BucketMeta:
    return BucketMeta(
        names=[n for n, _ in bucket],
        dtype_names=[dtype_name(t.dtype) for _, t in bucket],
        shapes=[list(t.shape) for _, t in bucket],
    )


def pack(bucket: list[tuple[str, Tensor]], out: Tensor | None = None) -> Tensor:
    """One contiguous uint8 buffer holding every tensor's bytes, in order, aligned.

    `out`, if large enough, is reused (its first bytes are returned), sparing a fresh
    allocation's page faults on every sync."""
    spans, total = _layout(bucket_meta(bucket))
    if out is not None and out.numel() >= total:
        buf = out[:total]
    else:
        buf = torch.empty(total, dtype=torch.uint8)
    for (_, t), (offset, n) in zip(bucket, spans, strict=True):
        buf[offset : offset + n].copy_(t.detach().contiguous().view(-1).view(torch.uint8))
    return buf


def unpack(buf: Tensor, meta: BucketMeta) -> list[tuple[str, Tensor]]:
    """Views into `buf` with the bucket's names, dtypes and shapes (no copy)."""
    spans, _ = _layout(meta)
    return [
        (name, buf[offset : offset + n].view(getattr(torch, dtype)).view(shape))
        for name, dtype, shape, (offset, n) in zip(
            meta.names, meta.dtype_names, meta.shapes, spans, strict=True
        )
    ]
