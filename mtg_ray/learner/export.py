"""Full parameters out of a (possibly ZeRO-3 partitioned) model, one bucket at a time, and the
HF folder a finished run exports.

Under ZeRO-3 each parameter is sharded over the ranks; `GatheredParameters` materialises a list
of them on every rank for the duration of a `with` block. Gathering bucket by bucket (sized by
`ds_numel`, the full size) keeps at most one bucket of full tensors alive beyond the shards.
Every rank must drain the iterator so the gather collectives match; only rank 0 uses the data.
"""

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import nullcontext
from pathlib import Path

from torch import Tensor, nn

from mtg_ray.weight_sync.buckets import iter_buckets


def full_nbytes(param: Tensor) -> int:
    """Bytes of the whole parameter, also when ZeRO-3 holds only a shard of it here."""
    return getattr(param, "ds_numel", param.numel()) * param.element_size()


def param_groups(module: nn.Module, bucket_bytes: int) -> list[list[tuple[str, Tensor]]]:
    """Named parameters in order, grouped so each group's full size is <= bucket_bytes (a
    larger parameter gets a group of its own)."""
    return list(iter_buckets(module.named_parameters(), bucket_bytes, full_nbytes))


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


def sent_pairs(
    buckets: Iterable[list[tuple[str, Tensor]]], keep: bool
) -> Iterator[tuple[str, Tensor]]:
    """The (name, tensor) pairs of `buckets` in order; copies if `keep` (a gathered bucket's
    tensors are only valid until the next one), the gathered tensors themselves otherwise."""
    for bucket in buckets:
        for name, t in bucket:
            yield name, (t.clone() if keep else t)


def save_hf_folder(
    module: nn.Module, state: Mapping[str, Tensor], tokenizer_from: str, out_dir: str | Path
) -> Path:
    """Write `state` as `module`'s HF folder (safetensors + config) with the tokenizer of
    `tokenizer_from`, atomically: `out_dir` is replaced whole or not at all."""
    from transformers import AutoTokenizer

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    module.save_pretrained(tmp, state_dict=dict(state), safe_serialization=True)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
