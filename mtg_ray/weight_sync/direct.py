"""Direct weight sync: learner rank 0 broadcasts the weights straight to every engine worker.

GPU engines get weights through vLLM's NCCL weight-transfer backend: the trainer is rank 0 of
one communicator and engine i's workers take the ranks from `rank_offsets` on (1 + the GPUs of
the engines before it: vLLM's stock trainer setup gives every engine offset 1, which collides
as soon as there are two). The wire format is vLLM's packed broadcast: tensors in order, cut
into chunks once a chunk holds more than `chunk_bytes`; the receivers recompute the same cuts
from the one metadata message a sync sends (a `BucketMeta` of every tensor), so a sync costs
one RPC per engine, not one per parameter.

`NcclBroadcaster` is the trainer end on GPU. `GlooStandInBroadcaster` replaces only the CUDA
part (the communicator and its streams) with a gloo group so the whole path runs on CPU in
tests; its engine end is `mtg_ray.weight_sync.nccl_standin`.
"""

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from mtg_ray.weight_sync.buckets import BucketMeta, dtype_name
from mtg_ray.weight_sync.groups import broadcast, join_group

DIRECT_BACKENDS = ("nccl", "nccl_standin_gloo")
NUM_BUFFERS = 2  # vLLM's double buffering: the next chunk packs while one is on the wire


def rank_offsets(gpus_per_engine: Sequence[int]) -> tuple[list[int], int]:
    """Each engine's first rank in the transfer group (the trainer is rank 0), and the group's
    size: engine i's workers are ranks offsets[i] .. offsets[i] + gpus_per_engine[i] - 1."""
    if any(g < 1 for g in gpus_per_engine):
        raise ValueError(f"every engine has at least one worker, got {list(gpus_per_engine)}")
    offsets, next_rank = [], 1
    for gpus in gpus_per_engine:
        offsets.append(next_rank)
        next_rank += gpus
    return offsets, next_rank


def engine_init_info(
    host: str, port: int, rank_offset: int, world_size: int, chunk_bytes: int
) -> dict[str, Any]:
    """What one engine's `init_weight_transfer_engine` takes (vLLM's
    NCCLWeightTransferInitInfo fields): the rendezvous, its rank offset, the packed wire format."""
    return dict(
        master_address=host, master_port=port, rank_offset=rank_offset, world_size=world_size,
        packed=True, packed_buffer_size_bytes=chunk_bytes, packed_num_buffers=NUM_BUFFERS,
    )  # fmt: skip


def weight_meta(module: nn.Module) -> BucketMeta:
    """The full (name, dtype, shape) of each parameter, also when ZeRO-3 holds only a shard of it
    here (`ds_shape`). Tied weights appear once, as `named_parameters` gives them."""
    names, dtypes, shapes = [], [], []
    for name, p in module.named_parameters():
        names.append(name)
        dtypes.append(dtype_name(p.dtype))
        shapes.append(list(getattr(p, "ds_shape", p.shape)))
    return BucketMeta(names, dtypes, shapes)


def chunk_bounds(sizes: Sequence[int], chunk_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) tensor indices of each packed chunk: a chunk closes once its bytes exceed
    `chunk_bytes` (vLLM's packing rule, which sender and receivers both apply)."""
    bounds, start, total = [], 0, 0
    for i, n in enumerate(sizes):
        total += n
        if total > chunk_bytes:
            bounds.append((start, i + 1))
            start, total = i + 1, 0
    if start < len(sizes):
        bounds.append((start, len(sizes)))
    return bounds


def checked(pairs: Iterable[tuple[str, Tensor]], meta: BucketMeta) -> Iterator[tuple[str, Tensor]]:
    """`pairs` as sent, each checked against `meta` (the receivers decode by it)."""
    count = 0
    for i, (name, t) in enumerate(pairs):
        if i >= len(meta.names) or (name, dtype_name(t.dtype), list(t.shape)) != (
            meta.names[i], meta.dtype_names[i], meta.shapes[i]
        ):  # fmt: skip
            raise RuntimeError(f"weight sync: tensor {i} ({name}) does not match the metadata")
        count += 1
        yield name, t
    if count != len(meta.names):
        raise RuntimeError(f"weight sync sent {count} tensors, metadata lists {len(meta.names)}")


class Broadcaster(Protocol):
    """The trainer end of a direct sync (rank 0 of the transfer group)."""

    def send(self, pairs: Iterable[tuple[str, Tensor]], meta: BucketMeta) -> int: ...

    def close(self) -> None: ...


@contextmanager
def kept_cuda_stream() -> Iterator[None]:
    """The calling thread's current CUDA stream as it was before the block: vLLM's communicator
    warm-up (`vllm.utils.torch_utils.current_stream`) sets a new one for the thread's whole
    life, and learner rank 0 would then train on another stream than its peers."""
    before = torch.cuda.current_stream()
    try:
        yield
    finally:
        torch.cuda.set_stream(before)  # vLLM's patched set_stream: its cache follows


class NcclBroadcaster:
    """Rank 0 of vLLM's NCCL transfer group, on this process's current CUDA device; sends with
    vLLM's packed producer (double-buffered on CUDA streams). Blocks in the constructor until
    every engine worker has joined."""

    def __init__(self, host: str, port: int, world_size: int, chunk_bytes: int) -> None:
        from vllm.distributed.weight_transfer.nccl_common import trainer_init

        self.chunk_bytes = chunk_bytes
        with kept_cuda_stream():
            self.group: Any = trainer_init(
                dict(master_address=host, master_port=port, world_size=world_size), rank=0
            )

    def send(self, pairs: Iterable[tuple[str, Tensor]], meta: BucketMeta) -> int:
        from vllm.distributed.weight_transfer.packed_tensor import packed_nccl_broadcast_producer

        packed_nccl_broadcast_producer(
            iterator=checked(pairs, meta), group=self.group, src=0,
            post_iter_func=lambda item: item[1], buffer_size_bytes=self.chunk_bytes,
            num_buffers=NUM_BUFFERS,
        )  # fmt: skip
        return sum(meta.sizes())

    def close(self) -> None:
        if self.group is not None:
            self.group.destroy()
            self.group = None


class GlooStandInBroadcaster:
    """Stand-in for `NcclBroadcaster` on CPU (tests): the same group layout, chunks and
    metadata, with a gloo group in place of the NCCL communicator, and NCCL's failure
    semantics: a broadcast whose receivers are gone (gloo notices, NCCL would not) blocks until
    the communicator is aborted (`close`), then raises."""

    def __init__(
        self, host: str, port: int, world_size: int, chunk_bytes: int, timeout_s: float
    ) -> None:
        self.chunk_bytes = chunk_bytes
        self.group: Any = join_group(host, port, 0, world_size, timeout_s)
        self.aborted = threading.Event()

    def send(self, pairs: Iterable[tuple[str, Tensor]], meta: BucketMeta) -> int:
        sizes = meta.sizes()
        stream = checked(pairs, meta)
        for start, stop in chunk_bounds(sizes, self.chunk_bytes):
            parts = [next(stream)[1].contiguous().view(-1) for _ in range(start, stop)]
            try:
                broadcast(self.group, torch.cat([p.view(torch.uint8) for p in parts]))
            except Exception as err:  # as NCCL: no error, a send that never returns
                self.aborted.wait()
                raise RuntimeError("the transfer group was aborted mid-send") from err
        for _ in stream:  # raises if more tensors came than the metadata lists
            pass
        return sum(sizes)

    def close(self) -> None:
        self.aborted.set()
        self.group = None


def send_or_abort(
    broadcaster: Broadcaster, pairs: Iterable[tuple[str, Tensor]], meta: BucketMeta,
    timeout_s: float,
) -> int:  # fmt: skip
    """`broadcaster.send(pairs, meta)` on a thread of its own, fed from this one, so that a
    send that never returns (NCCL has no timeout: a receiver that failed leaves the sender
    blocked) cannot hang the caller: this thread always iterates `pairs` to the end (under
    ZeRO-3 each item is a gather the other learner ranks take part in), and once the send has
    failed or `timeout_s` has passed it aborts the communicator (`close`) and raises. Returns
    the bytes sent."""
    feed: queue.Queue = queue.Queue(maxsize=NUM_BUFFERS)
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def fed() -> Iterator[tuple[str, Tensor]]:
        while True:
            try:
                item = feed.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    raise RuntimeError("the send was abandoned") from None
                continue
            if item is _END:
                return
            yield item

    def run() -> None:
        try:
            outcome["bytes"] = broadcaster.send(fed(), meta)
        except BaseException as err:  # reported to the caller below
            outcome["error"] = err

    sender = threading.Thread(target=run, name="weight-send", daemon=True)
    sender.start()
    deadline = time.monotonic() + timeout_s

    def offer(item: Any) -> None:
        while not stop.is_set():
            if "error" in outcome or time.monotonic() > deadline:
                stop.set()
                return
            try:
                feed.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    for pair in pairs:  # every gather happens, whatever became of the send
        offer(pair)
    offer(_END)
    sender.join(timeout=max(0.0, deadline - time.monotonic()))
    if sender.is_alive() or "error" in outcome:
        stop.set()
        broadcaster.close()  # NCCL: ncclCommAbort, which ends a blocked send
        sender.join(timeout=5.0)
        cause = outcome.get("error")
        what = f"failed ({type(cause).__name__}: {cause})" if cause else "did not finish"
        raise RuntimeError(
            f"learner rank 0's weight send {what} within rollout.sync_timeout_s={timeout_s}; "
            "its communicator was aborted"
        ) from cause
    return int(outcome["bytes"])


_END = object()  # the end of what send_or_abort feeds the sender


def open_broadcaster(
    backend: str, host: str, port: int, world_size: int, chunk_bytes: int, timeout_s: float
) -> Broadcaster:
    if backend == "nccl":
        return NcclBroadcaster(host, port, world_size, chunk_bytes)
    if backend == "nccl_standin_gloo":
        return GlooStandInBroadcaster(host, port, world_size, chunk_bytes, timeout_s)
    raise ValueError(f"no direct weight-sync backend {backend!r}; one of {DIRECT_BACKENDS}")
