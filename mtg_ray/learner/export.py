"""Full parameters out of a (possibly ZeRO-3 partitioned) model, one bucket at a time.

Under ZeRO-3 each parameter is sharded over the ranks; `GatheredParameters` materialises a list
of them on every rank for the duration of a `with` block. Gathering bucket by bucket (sized by
`ds_numel`, the full size) keeps at most one bucket of full tensors alive beyond the shards.
Every rank must drain the iterator so the gather collectives match; only rank 0 uses the data.
"""

from collections.abc import Iterator
from contextlib import nullcontext

from torch import Tensor, nn


def _full_nbytes(param: Tensor) -> int:
    return getattr(param, "ds_numel", param.numel()) * param.element_size()


def param_groups(module: nn.Module, bucket_bytes: int) -> list[list[tuple[str, Tensor]]]:
    """Named parameters in order, grouped so each group's full size is <= bucket_bytes (a
    larger parameter gets a group of its own)."""
    groups: list[list[tuple[str, Tensor]]] = []
    current: list[tuple[str, Tensor]] = []
    size = 0
    for name, param in module.named_parameters():
        nbytes = _full_nbytes(param)
        if current and size + nbytes > bucket_bytes:
            groups.append(current)
            current, size = [], 0
        current.append((name, param))
        size += nbytes
    if current:
        groups.append(current)
    return groups


def gathered_buckets(
    module: nn.Module, bucket_bytes: int, zero3: bool
) -> Iterator[list[tuple[str, Tensor]]]:
    """Yield lists of (name, full tensor). The tensors are only valid until the next item:
    clone what you keep."""
    import deepspeed

    for group in param_groups(module, bucket_bytes):
        params = [p for _, p in group]
        ctx = (
            deepspeed.zero.GatheredParameters(params, modifier_rank=None)
            if zero3
            else nullcontext()
        )
        with ctx:
            yield [(name, p.data.detach()) for name, p in group]
