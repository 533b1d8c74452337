"""The direct sync's pure parts: group layout, metadata, and the packed wire format's cuts,
checked against vLLM's own dataclasses and packing code (both import on CPU)."""

import threading
import time
from dataclasses import asdict

import pytest
import torch
from transformers import AutoModelForCausalLM
from vllm.distributed.weight_transfer.nccl_common import NCCLWeightTransferInitInfo
from vllm.distributed.weight_transfer.nccl_engine import NCCLWeightTransferUpdateInfo
from vllm.distributed.weight_transfer.packed_tensor import pack_tensors

from mtg_ray.models import build_tiny_model
from mtg_ray.weight_sync import BucketMeta
from mtg_ray.weight_sync.direct import (
    Handoff,
    checked,
    chunk_bounds,
    engine_init_info,
    open_within,
    rank_offsets,
    send_or_abort,
    weight_meta,
)
from mtg_ray.weight_sync.groups import worker_rank


def test_engines_of_different_sizes_get_disjoint_ranks_after_the_trainer() -> None:
    offsets, world = rank_offsets([1, 2, 4, 1])
    assert offsets == [1, 2, 4, 8] and world == 9
    ranks = [r for o, g in zip(offsets, [1, 2, 4, 1], strict=True) for r in range(o, o + g)]
    assert ranks == list(range(1, world))  # every worker once, none on the trainer's 0
    assert rank_offsets([2, 2]) == ([1, 3], 5)
    with pytest.raises(ValueError, match="at least one worker"):
        rank_offsets([1, 0])


@pytest.mark.parametrize("shapes", [[(1, 2, 1), (2, 1, 1)], [(2, 2, 1), (1, 4, 1), (3, 1, 2)]])
def test_data_parallel_workers_take_vllms_ranks_without_collisions(shapes) -> None:
    """Engines of (DP, TP, PP): each reports DP x TP x PP workers (vLLM's world size with
    DP), and worker (dp, rank) joins at vLLM's offset + dp x TP x PP + rank."""
    offsets, world = rank_offsets([dp * tp * pp for dp, tp, pp in shapes])
    ranks = [
        worker_rank(offset, dp_index, tp * pp, rank)
        for offset, (dp, tp, pp) in zip(offsets, shapes, strict=True)
        for dp_index in range(dp)
        for rank in range(tp * pp)
    ]
    assert sorted(ranks) == list(range(1, world))


def test_the_gloo_engines_join_at_the_rank_vllms_nccl_engine_takes(monkeypatch) -> None:
    from types import SimpleNamespace

    from mtg_ray.weight_sync import gloo

    joined = []
    monkeypatch.setattr(gloo, "join_group", lambda *args: joined.append(args[2]))  # the rank
    engine = object.__new__(gloo.GlooWeightTransferEngine)
    engine.parallel_config = SimpleNamespace(data_parallel_index=1, world_size=2, rank=1)
    info = SimpleNamespace(master_address="h", master_port=1, rank_offset=3, world_size=9)
    engine.init_transfer_engine(info)
    assert joined == [3 + 1 * 2 + 1]


def test_init_and_update_info_are_vllms_nccl_dataclasses() -> None:
    info = NCCLWeightTransferInitInfo(**engine_init_info("127.0.0.1", 1234, 3, 5, 1 << 20))
    assert (info.rank_offset, info.world_size, info.packed) == (3, 5, True)
    assert info.packed_buffer_size_bytes == 1 << 20
    meta = BucketMeta(["a", "b"], ["bfloat16", "float32"], [[2, 3], [4]])
    update = NCCLWeightTransferUpdateInfo(**asdict(meta))
    assert update.names == ["a", "b"] and meta.sizes() == [12, 16]


@pytest.mark.filterwarnings("ignore:Tensor .* exceeds buffer_size_bytes")
@pytest.mark.parametrize("chunk_bytes", [1, 100, 1000, 1 << 20])
def test_chunk_cuts_follow_vllms_packing(chunk_bytes: int) -> None:
    """The receivers cut where vLLM's producer (`pack_tensors`) cuts, from metadata alone."""
    gen = torch.Generator().manual_seed(0)
    tensors = [(f"t{i}", torch.randn(int(n), generator=gen)) for i, n in enumerate(
        torch.randint(1, 200, (30,), generator=gen)
    )]  # fmt: skip
    stream = iter(tensors)
    vllm_chunks = []
    while (chunk := pack_tensors(stream, lambda item: item[1], chunk_bytes)) is not None:
        vllm_chunks.append(chunk.names)
    sizes = [t.numel() * 4 for _, t in tensors]
    ours = [[tensors[i][0] for i in range(a, b)] for a, b in chunk_bounds(sizes, chunk_bytes)]
    assert ours == vllm_chunks


@pytest.mark.parametrize("tied", [False, True])
def test_weight_meta_lists_every_parameter_once_in_order(tmp_path, tied: bool) -> None:
    from mtg_ray.models.shapes import SMALL, build_random_model

    folder = (
        build_random_model(tmp_path / "m", SMALL, dtype="float32")
        if tied
        else build_tiny_model(tmp_path / "m")
    )
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.tie_word_embeddings is tied
    meta = weight_meta(model)
    params = list(model.named_parameters())
    assert meta.names == [n for n, _ in params]
    assert meta.shapes == [list(p.shape) for _, p in params]
    assert len(set(meta.names)) == len(meta.names)
    # a tied head is the embedding: sent once, under the embedding's name
    assert ("lm_head.weight" in meta.names) is not tied


def test_a_sender_that_strays_from_its_metadata_fails() -> None:
    meta = BucketMeta(["a", "b"], ["float32", "float32"], [[2], [3]])
    good = [("a", torch.zeros(2)), ("b", torch.zeros(3))]
    assert [n for n, _ in checked(good, meta)] == ["a", "b"]
    with pytest.raises(RuntimeError, match="tensor 1 .b. does not match"):
        list(checked([("a", torch.zeros(2)), ("b", torch.zeros(4))], meta))
    with pytest.raises(RuntimeError, match="sent 1 tensors, metadata lists 2"):
        list(checked(good[:1], meta))
    with pytest.raises(RuntimeError, match="does not match"):
        list(checked([*good, ("c", torch.zeros(1))], meta))


def test_ipc_chunks_fit_the_buffer_and_speak_vllms_packed_ipc_format() -> None:
    from vllm.distributed.weight_transfer.ipc_engine import IPCWeightTransferUpdateInfo

    from mtg_ray.weight_sync.ipc import fit_chunks, pack_chunks, unpack_chunk

    assert fit_chunks([4, 4, 4, 8, 1], 8) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert fit_chunks([], 8) == []
    with pytest.raises(ValueError, match="more than the 8-byte buffer"):
        fit_chunks([4, 9], 8)
    pairs = [("a", torch.arange(6, dtype=torch.int16).view(2, 3)), ("b", torch.ones(3))]
    update = dict(
        names=["a", "b"], dtype_names=["int16", "float32"], shapes=[[2, 3], [3]],
        tensor_sizes=[12, 12], ipc_handles={"GPU-uuid": (0, 1, 2, 3, 4, 5, 6, 7)},
    )  # fmt: skip
    info = IPCWeightTransferUpdateInfo(**update)
    assert info.tensor_sizes == [12, 12] and "GPU-uuid" in info.ipc_handles
    buffer = torch.cat([t.contiguous().view(-1).view(torch.uint8) for _, t in pairs])
    for (name, got), (want_name, want) in zip(unpack_chunk(buffer, update), pairs, strict=True):
        assert name == want_name and torch.equal(got, want)
        assert got.data_ptr() != want.data_ptr()  # copied out: the buffer is reused

    # The exporter's packing: chunks cut as fit_chunks says, each unpacked before the next.
    tensors = [("x", torch.arange(3.0)), ("y", torch.ones(2, 2)), ("z", torch.full((2,), 7.0))]
    meta = BucketMeta(["x", "y", "z"], ["float32"] * 3, [[3], [2, 2], [2]])
    buffer, seen = torch.empty(28, dtype=torch.uint8), []
    for update in pack_chunks(iter(tensors), meta, buffer):
        seen.append(update["names"])
        IPCWeightTransferUpdateInfo(**update, ipc_handles={})
        for name, got in unpack_chunk(buffer, update):
            assert torch.equal(got, dict(tensors)[name])
    assert seen == [["x", "y"], ["z"]]  # fit_chunks([12, 16, 8], 28)
    with pytest.raises(RuntimeError, match="does not match"):
        list(pack_chunks(iter(tensors[::-1]), meta, buffer))


def test_the_broadcasters_warm_up_leaves_the_threads_cuda_stream_as_it_was(monkeypatch) -> None:
    """vLLM's communicator warm-up sets a new current stream for good; `kept_cuda_stream`
    (around the NCCL broadcaster's setup) puts the caller's back. CUDA stands in here."""
    from mtg_ray.weight_sync.direct import kept_cuda_stream

    current = ["trainer stream"]
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: current[0])
    monkeypatch.setattr(torch.cuda, "set_stream", lambda s: current.__setitem__(0, s))
    with kept_cuda_stream():
        torch.cuda.set_stream("vllm's warm-up stream")
    assert current == ["trainer stream"]
    with pytest.raises(RuntimeError), kept_cuda_stream():
        torch.cuda.set_stream("vllm's warm-up stream")
        raise RuntimeError("the rendezvous failed")
    assert current == ["trainer stream"]


def test_only_the_sending_rank_copies_gathered_weights() -> None:
    from mtg_ray.learner.export import sent_pairs

    buckets = [[("a", torch.ones(2)), ("b", torch.zeros(3))], [("c", torch.ones(1))]]
    given = [t for bucket in buckets for _, t in bucket]
    same = list(sent_pairs(iter(buckets), keep=False))
    assert [n for n, _ in same] == ["a", "b", "c"]
    assert all(t is g for (_, t), g in zip(same, given, strict=True))  # no copies
    kept = list(sent_pairs(iter(buckets), keep=True))
    assert all(t is not g and torch.equal(t, g) for (_, t), g in zip(kept, given, strict=True))


class StuckBroadcaster:
    """NCCL's semantics: after `ok` items, the send blocks until the communicator is aborted
    (or fails at once: `fail`); `after_abort`: the send then goes on taking items, as vLLM's
    producer does on an aborted communicator (its broadcasts return at once). `idle` is
    cleared while a send is blocked: what a device-wide synchronise waits for."""

    def __init__(self, ok: int, fail: bool = False, after_abort: bool = False) -> None:
        self.ok, self.fail, self.after_abort = ok, fail, after_abort
        self.aborted = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.sent: list[str] = []
        self.sent_after_abort: list[str] = []

    def handoff(self, pair):
        return Handoff(*pair)

    def send(self, items, meta) -> int:
        for name, _, _ in items:
            if self.aborted.is_set():
                self.sent_after_abort.append(name)
                continue
            if len(self.sent) == self.ok:
                if self.fail:
                    raise RuntimeError("a receiver failed")
                self.idle.clear()
                self.aborted.wait()
                self.idle.set()
                if not self.after_abort:
                    raise RuntimeError("aborted")
                continue
            self.sent.append(name)
        return 7

    def close(self) -> None:
        self.aborted.set()


def gathers(n: int, seen: list[str], device_idle: threading.Event | None = None):
    """`n` ZeRO-3 gathers (every rank must reach each one); with `device_idle`, each first
    waits for it, as DeepSpeed's device-wide synchronise waits for a send's kernel."""
    for i in range(n):
        if device_idle is not None:
            device_idle.wait()
        seen.append(f"t{i}")
        yield f"t{i}", torch.ones(1)


META10 = BucketMeta([f"t{i}" for i in range(10)], ["float32"] * 10, [[1]] * 10)


@pytest.mark.parametrize("fail", [False, True])
def test_a_send_that_never_returns_is_aborted_and_the_gathers_finish(fail: bool) -> None:
    seen: list[str] = []
    stuck = StuckBroadcaster(ok=2, fail=fail)
    with pytest.raises(RuntimeError, match="communicator was aborted"):
        send_or_abort(stuck, gathers(10, seen), META10, timeout_s=1.0)
    assert stuck.aborted.is_set() and stuck.sent == ["t0", "t1"]
    assert len(seen) == 10  # the caller went through every gather all the same
    fine = StuckBroadcaster(ok=100)
    assert send_or_abort(fine, gathers(10, []), META10, timeout_s=5.0) == 7
    assert len(fine.sent) == 10 and not fine.aborted.is_set()


def within(seconds: float, call) -> tuple[bool, BaseException | None]:
    """Run `call` on a thread: (whether it returned within `seconds`, what it raised)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as err:
            raised.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), (raised or [None])[0]


def test_the_deadline_holds_while_a_gather_waits_for_the_stuck_send() -> None:
    """GPU semantics: the feeding loop is blocked inside a gather (its device-wide synchronise
    waits for the send's kernel), so only an abort from elsewhere can end the wait."""
    seen: list[str] = []
    stuck = StuckBroadcaster(ok=2)
    start = time.monotonic()
    returned, err = within(
        10.0, lambda: send_or_abort(stuck, gathers(10, seen, stuck.idle), META10, timeout_s=1.0)
    )
    assert returned, "the gathers waited for a send nobody aborted"
    assert isinstance(err, RuntimeError) and "communicator was aborted" in str(err)
    assert time.monotonic() - start < 5.0 and len(seen) == 10


def test_items_queued_at_the_abort_are_never_sent() -> None:
    stuck = StuckBroadcaster(ok=2, after_abort=True)
    with pytest.raises(RuntimeError, match="communicator was aborted"):
        send_or_abort(stuck, gathers(10, []), META10, timeout_s=1.0)
    assert stuck.sent == ["t0", "t1"] and stuck.sent_after_abort == []


class Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_group_that_never_opens_fails_within_the_deadline_and_a_late_one_is_closed() -> None:
    never = threading.Event()
    returned, err = within(5.0, lambda: open_within(lambda: never.wait() or Closable(), 0.5))
    assert returned and isinstance(err, RuntimeError) and "never joined" in str(err)
    late = Closable()
    slow = threading.Event()
    with pytest.raises(RuntimeError, match="sync_timeout_s=0.2"):
        open_within(lambda: slow.wait() and late, 0.2)
    slow.set()
    deadline = time.monotonic() + 5
    while not late.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert late.closed  # opened after the caller gave up: closed, not left open
    quick = Closable()
    assert open_within(lambda: quick, 1.0) is quick and not quick.closed
    with pytest.raises(ValueError, match="bad address"):
        open_within(lambda: (_ for _ in ()).throw(ValueError("bad address")), 1.0)
