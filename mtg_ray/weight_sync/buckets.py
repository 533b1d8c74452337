"""Size-capped buckets of named tensors, packed into one flat byte buffer for a broadcast."""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class BucketMeta:
    """What a receiver needs to unpack a bucket: names, dtypes (torch attribute names), shapes."""

    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]

    @property
    def nbytes(self) -> int:
        return _layout(self)[1]


ALIGN = 16  # every tensor starts at a multiple of this, so typed views of the buffer are legal


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _layout(meta: BucketMeta) -> tuple[list[tuple[int, int]], int]:
    """(offset, nbytes) of each tensor in the packed buffer, and the buffer size."""
    spans, offset = [], 0
    for dtype, shape in zip(meta.dtype_names, meta.shapes, strict=True):
        n = _numel(shape) * getattr(torch, dtype).itemsize
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


def bucket_meta(bucket: list[tuple[str, Tensor]]) -> BucketMeta:
    return BucketMeta(
        names=[n for n, _ in bucket],
        dtype_names=[str(t.dtype).removeprefix("torch.") for _, t in bucket],
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
