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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol, TypeVar

import torch
from torch import Tensor, nn

from mtg_ray.weight_sync.buckets import BucketMeta, dtype_name
from mtg_ray.weight_sync.groups import broadcast, join_group

DIRECT_BACKENDS = ("nccl", "nccl_standin_gloo")
NUM_BUFFERS = 2  # vLLM's double buffering: the next chunk packs while one is on the wire
Pair = TypeVar("Pair", bound=tuple)  # (name, tensor, ...)


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


def checked(pairs: Iterable[Pair], meta: BucketMeta) -> Iterator[Pair]:
    """`pairs` (each (name, tensor, ...)) as sent, each checked against `meta` (the receivers
    decode by it)."""
    count = 0
    for i, pair in enumerate(pairs):
        name, t = pair[0], pair[1]
        if i >= len(meta.names) or (name, dtype_name(t.dtype), list(t.shape)) != (
            meta.names[i], meta.dtype_names[i], meta.shapes[i]
        ):  # fmt: skip
            raise RuntimeError(f"weight sync: tensor {i} ({name}) does not match the metadata")
        count += 1
        yield pair
    if count != len(meta.names):
        raise RuntimeError(f"weight sync sent {count} tensors, metadata lists {len(meta.names)}")


class Handoff(NamedTuple):
    """One tensor passed from the thread that produced it (the gathers) to the sending thread;
    `ready` (CUDA: an event recorded on the producer's stream after the tensor was written;
    None on CPU) is what the sending side waits for before it reads."""

    name: str
    tensor: Tensor
    ready: Any = None


class Broadcaster(Protocol):
    """The trainer end of a direct sync (rank 0 of the transfer group)."""

    def handoff(self, pair: tuple[str, Tensor]) -> Handoff:
        """What the producing thread passes the sending thread for `pair`."""
        ...

    def gathers(self, pairs: Iterable[tuple[str, Tensor]]) -> Iterable[tuple[str, Tensor]]:
        """`pairs` as ZeRO-3's gathers produce them while a send is in flight: on a GPU each
        waits for the send's kernel (DeepSpeed synchronises the whole device), which the CPU
        stand-in copies; NCCL's is `pairs` itself."""
        ...

    def send(self, items: Iterable[Handoff], meta: BucketMeta) -> int: ...

    def close(self) -> None: ...


def on_this_stream(item: Handoff) -> Tensor:
    """`item`'s tensor, safe to read on the current CUDA stream (vLLM's packer runs our
    `post_iter_func` on its own streams): the stream waits for the producer's event, and the
    tensor's memory is not reused by its producer's stream until this stream's work on it is
    done (`record_stream`)."""
    if item.ready is not None:
        stream = torch.cuda.current_stream()
        stream.wait_event(item.ready)
        item.tensor.record_stream(stream)
    return item.tensor


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
    """Rank 0 of vLLM's NCCL transfer group, on CUDA device `device`; sends with vLLM's packed
    producer (double-buffered on CUDA streams). Blocks in the constructor until every engine
    worker has joined (NCCL's rendezvous has no deadline: see `open_within`)."""

    def __init__(
        self, host: str, port: int, world_size: int, chunk_bytes: int, device: Any
    ) -> None:
        from vllm.distributed.weight_transfer.nccl_common import trainer_init

        self.chunk_bytes = chunk_bytes
        torch.cuda.set_device(device)  # per thread: this may run on an opener thread
        with kept_cuda_stream():
            self.group: Any = trainer_init(
                dict(master_address=host, master_port=port, world_size=world_size), rank=0
            )

    def handoff(self, pair: tuple[str, Tensor]) -> Handoff:
        ready = torch.cuda.Event()
        ready.record()  # on the producer's current stream, after the gather's clone
        return Handoff(pair[0], pair[1], ready)

    def gathers(self, pairs: Iterable[tuple[str, Tensor]]) -> Iterable[tuple[str, Tensor]]:
        return pairs  # the device-wide synchronise is DeepSpeed's own, inside each gather

    def send(self, items: Iterable[Handoff], meta: BucketMeta) -> int:
        from vllm.distributed.weight_transfer.packed_tensor import packed_nccl_broadcast_producer

        group = self.group
        if group is None:
            raise RuntimeError("the transfer group was aborted before the send")
        torch.cuda.set_device(group.device)  # the sending thread's device
        packed_nccl_broadcast_producer(
            iterator=checked(items, meta), group=group, src=0,
            post_iter_func=on_this_stream, buffer_size_bytes=self.chunk_bytes,
            num_buffers=NUM_BUFFERS,
        )  # fmt: skip
        return sum(meta.sizes())

    def close(self) -> None:
        group, self.group = self.group, None
        if group is not None:
            group.destroy()  # ncclCommAbort: a blocked broadcast ends


NEVER_S = 24 * 3600.0  # NCCL waits this long for a peer: in effect, for ever


class GlooStandInBroadcaster:
    """Stand-in for `NcclBroadcaster` on CPU (tests): the same group layout, chunks and
    metadata, with a gloo group in place of the NCCL communicator, and NCCL's semantics on a
    GPU where gloo's differ: opening waits for every peer with no deadline; a broadcast whose
    receivers are gone (gloo notices, NCCL would not) blocks until the communicator is aborted
    (`close`), then raises; and a ZeRO-3 gather (`gathers`) waits while a broadcast is in
    flight, as DeepSpeed's device-wide synchronise waits for NCCL's kernel."""

    def __init__(self, host: str, port: int, world_size: int, chunk_bytes: int) -> None:
        self.chunk_bytes = chunk_bytes
        self.group: Any = join_group(host, port, 0, world_size, NEVER_S)
        self.aborted = threading.Event()
        self.idle = threading.Event()  # no broadcast on the wire
        self.idle.set()

    def handoff(self, pair: tuple[str, Tensor]) -> Handoff:
        return Handoff(*pair)

    def gathers(self, pairs: Iterable[tuple[str, Tensor]]) -> Iterator[tuple[str, Tensor]]:
        it = iter(pairs)
        while True:
            self.idle.wait()  # the device-wide synchronise before each gather returns
            try:
                pair = next(it)
            except StopIteration:
                return
            yield pair

    def send(self, items: Iterable[Handoff], meta: BucketMeta) -> int:
        sizes = meta.sizes()
        stream = checked(items, meta)
        for start, stop in chunk_bounds(sizes, self.chunk_bytes):
            parts = [next(stream).tensor.contiguous().view(-1) for _ in range(start, stop)]
            self.idle.clear()
            try:
                broadcast(self.group, torch.cat([p.view(torch.uint8) for p in parts]))
            except Exception as err:  # as NCCL: no error, a send that never returns
                self.aborted.wait()
                raise RuntimeError("the transfer group was aborted mid-send") from err
            finally:
                self.idle.set()
        for _ in stream:  # raises if more tensors came than the metadata lists
            pass
        return sum(sizes)

    def close(self) -> None:
        self.aborted.set()
        self.group = None


def open_within(opener: Callable[[], Broadcaster], timeout_s: float) -> Broadcaster:
    """`opener()` (which blocks until every engine worker has joined), on a thread of its own,
    so that a worker that never joins cannot hang the caller: NCCL's rendezvous has no
    deadline. Past `timeout_s` this raises; a broadcaster that opens later is closed at once."""
    lock = threading.Lock()
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            opened = opener()
        except BaseException as err:  # reported to the caller below
            box["error"] = err
            done.set()
            return
        with lock:
            late = box.setdefault("abandoned", False)
            box["broadcaster"] = opened
        if late:
            opened.close()
        done.set()

    threading.Thread(target=run, name="weight-sync-open", daemon=True).start()
    if not done.wait(timeout_s):
        with lock:
            if "broadcaster" not in box:
                box["abandoned"] = True
                raise RuntimeError(
                    f"learner rank 0 could not open the weight-transfer group within "
                    f"rollout.sync_timeout_s={timeout_s}: an engine worker never joined"
                )
    if "error" in box:
        raise box["error"]
    return box["broadcaster"]


def send_or_abort(
    broadcaster: Broadcaster, pairs: Iterable[tuple[str, Tensor]], meta: BucketMeta,
    timeout_s: float,
) -> int:  # fmt: skip
    """`broadcaster.send` of `pairs` on a thread of its own, fed from this one, so that a send
    that never returns (NCCL has no timeout: a receiver that failed leaves the sender blocked)
    cannot hang the caller. A watchdog thread aborts the communicator (`close`) once the send
    has failed or `timeout_s` has passed: the feeding loop cannot keep that deadline itself, as
    under ZeRO-3 each item is a gather whose device-wide synchronise waits for the stuck send,
    which only the abort ends. This thread always iterates `pairs` to the end (the other
    learner ranks take part in each gather); items still queued at the abort are never sent.
    Raises after an abort; returns the bytes sent."""
    feed: queue.Queue = queue.Queue(maxsize=NUM_BUFFERS)
    stop = threading.Event()  # set by the abort
    finished = threading.Event()  # the send returned or raised
    outcome: dict[str, Any] = {}

    def fed() -> Iterator[Handoff]:
        while not stop.is_set():
            try:
                item = feed.get(timeout=0.1)
            except queue.Empty:
                continue
            if stop.is_set():
                break  # queued before the abort: never sent
            if item is _END:
                return
            yield item
        raise RuntimeError("the send was abandoned")

    def run() -> None:
        try:
            outcome["bytes"] = broadcaster.send(fed(), meta)
        except BaseException as err:  # reported to the caller below
            outcome["error"] = err
        finally:
            finished.set()

    def watch() -> None:
        if not finished.wait(timeout_s) or "error" in outcome:
            stop.set()
            broadcaster.close()  # NCCL: ncclCommAbort, which ends a blocked send

    threading.Thread(target=run, name="weight-send", daemon=True).start()
    watchdog = threading.Thread(target=watch, name="weight-send-deadline", daemon=True)
    watchdog.start()

    def offer(item: Any) -> None:
        while not stop.is_set() and not finished.is_set():
            try:
                feed.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    for pair in pairs:  # every gather happens, whatever became of the send
        offer(broadcaster.handoff(pair))
    offer(_END)
    watchdog.join()  # by the deadline, plus the abort (vLLM waits up to 5 s for it)
    finished.wait(timeout=5.0)  # an aborted send ends at once
    if stop.is_set() or "error" in outcome or not finished.is_set():
        cause = outcome.get("error")
        what = f"failed ({type(cause).__name__}: {cause})" if cause else "did not finish"
        raise RuntimeError(
            f"learner rank 0's weight send {what} within rollout.sync_timeout_s={timeout_s}; "
            "its communicator was aborted"
        ) from cause
    return int(outcome["bytes"])


_END = object()  # the end of what send_or_abort feeds the sender


def open_broadcaster(
    backend: str, host: str, port: int, world_size: int, chunk_bytes: int, timeout_s: float,
    device: Any = None,
) -> Broadcaster:  # fmt: skip
    """The trainer end of `backend`'s transfer group (`device`: the CUDA device, for `nccl`),
    open within `timeout_s` or an error."""
    if backend == "nccl":
        opener: Callable[[], Broadcaster] = lambda: NcclBroadcaster(  # noqa: E731
            host, port, world_size, chunk_bytes, device
        )
    elif backend == "nccl_standin_gloo":
        opener = lambda: GlooStandInBroadcaster(host, port, world_size, chunk_bytes)  # noqa: E731
    else:
        raise ValueError(f"no direct weight-sync backend {backend!r}; one of {DIRECT_BACKENDS}")
    return open_within(opener, timeout_s)
