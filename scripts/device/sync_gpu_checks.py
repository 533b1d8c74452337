"""One-GPU checks of the direct weight sync's CUDA semantics and of a restarted engine's start
(issue 37), for a lent GPU machine with torch and transformers but no Ray or vLLM. Each check
prints its numbers and `SYNC CHECK <name> OK`; the last line is `SYNC GPU CHECKS OK (<mode>)`.

- `send_deadline`: `mtg_ray.weight_sync.direct.send_or_abort` keeps `timeout_s` while the
  thread feeding it is blocked in a device-wide synchronise (ZeRO-3's gathers call
  `torch.cuda.synchronize()`). The broadcaster's send launches, on a side stream, a kernel that
  spins until a flag in device memory is set (one GPU has no NCCL peer: this stands in for a
  broadcast waiting for a dead one), then waits for it on the host as vLLM's packed producer
  does; `close` (the abort) sets the flag from the watchdog's thread through a copy on another
  stream, as ncclCommAbort ends NCCL's kernel. It must raise within `timeout_s` + 2 s, every
  item must have been gathered, the kernel must have ended by the flag, and the GPU must work
  after. The kernel is Triton's (a volatile load in a loop, with a time limit of its own so
  that a kernel that never saw the flag cannot hang the machine); without a working Triton it
  falls back to `torch.cuda._sleep` of 3x the timeout, which no abort ends: the check then only
  shows that the watchdog fired at the deadline while the synchronise was blocked.
- `stream_race`: the race between ZeRO-3's clone and vLLM's packer (issue 37, point 5). The
  producer (the default stream, kept busy by a matmul before each clone) clones 1000 buffers of
  1-4 MB of bf16, overwrites each source right after its clone (ZeRO-3 reuses its gathered
  buckets) and drops the clone once handed off (the caching allocator reuses its block); a
  consumer thread copies each into a packed buffer on its own stream and checksums it. "before":
  the consumer reads the raw tensor; "after": it goes through `on_this_stream` with the event
  `NcclBroadcaster.handoff` records. Mismatches against the producer's checksums must be 0
  after; before is printed, not asserted (a GPU may or may not show the race).
- `restart_memory`: a killed engine's GPU memory comes back in time (point 7). A spawned child
  takes 80% of the GPU's memory and is killed with SIGKILL; the parent at once waits with
  `mtg_ray.rollout.gpu_memory.wait_for_free_memory(0.8, 60, torch.cuda.mem_get_info)` and
  prints how long the release took.
- `bf16_head`: the noise floor under DR+IS's importance ratio: per-token log-probs of the
  chunked head (`mtg_ray.objectives.logprobs.head_logprobs`) in bf16, as the paper preset runs
  it, against float32 on the same inputs, at Qwen2.5-Math-1.5B's head shape (hidden 1536,
  vocabulary 151936), 8192 tokens in chunks of 4096, tokens sampled from the float32
  distribution. A measurement: only finiteness is asserted.

Without a GPU (CPU mode) each check runs a CPU stand-in at small shapes and says what it skips.
Sized to take well under three minutes on an H100 in all; not yet run on a GPU.

    PYTHONPATH=.:<wheels> python3 scripts/device/sync_gpu_checks.py [--check all|<name>]
"""

import argparse
import contextlib
import inspect
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from mtg_ray.objectives.logprobs import head_logprobs
from mtg_ray.rollout.gpu_memory import wait_for_free_memory
from mtg_ray.weight_sync.buckets import BucketMeta
from mtg_ray.weight_sync.direct import (
    NUM_BUFFERS,
    Handoff,
    NcclBroadcaster,
    on_this_stream,
    send_or_abort,
)

try:
    import triton
    import triton.language as tl
except ImportError:  # send_deadline falls back to torch.cuda._sleep
    triton = None

CHECKS = ("send_deadline", "stream_race", "restart_memory", "bf16_head")
ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
MARGIN_S = 2.0  # how late past its deadline send_or_abort may raise

if triton is not None:

    @triton.jit
    def spin_until_set(flag_ptr, exit_ptr, limit_ns):
        # Spin until *flag_ptr != 0 (exit 1) or limit_ns have passed (exit 2).
        start = tl.inline_asm_elementwise(
            "mov.u64 $0, %globaltimer;", "=l", [], dtype=tl.int64, is_pure=False, pack=1
        )
        now = start
        seen = tl.load(flag_ptr, volatile=True)
        while (seen == 0) & (now - start < limit_ns):
            seen = tl.load(flag_ptr, volatile=True)
            now = tl.inline_asm_elementwise(
                "mov.u64 $0, %globaltimer;", "=l", [], dtype=tl.int64, is_pure=False, pack=1
            )
        tl.store(exit_ptr, tl.where(seen != 0, 1, 2))


# ---------------------------------------------------------------------------- send_deadline


class Stuck(Protocol):
    """What blocks the send after its first items, and the abort that ends it."""

    how: str

    def block(self) -> None:
        """Called on the sending thread: returns once the stand-in for the broadcast ended."""
        ...

    def device_wide_sync(self) -> None:
        """What each gather waits for (DeepSpeed: `torch.cuda.synchronize()`)."""
        ...

    def release(self) -> None:
        """The abort (called from the watchdog's thread)."""
        ...

    def ended_by_abort(self) -> bool: ...


class SpinKernel:
    """Triton's `spin_until_set` on the sending thread's stream; the abort sets the flag from
    host memory through a copy on a stream of its own."""

    how = "a Triton kernel spinning on a device flag"

    def __init__(self, limit_s: float) -> None:
        if "volatile" not in inspect.signature(tl.load).parameters:
            raise RuntimeError(f"triton {triton.__version__}'s tl.load has no volatile=")
        self.limit_ns = int(limit_s * 1e9)
        self.flag = torch.ones(1, dtype=torch.int32, device="cuda")
        self.exit = torch.zeros(1, dtype=torch.int32, device="cuda")
        self.one = torch.ones(1, dtype=torch.int32).pin_memory()
        self.abort_stream = torch.cuda.Stream()
        spin_until_set[(1,)](self.flag, self.exit, self.limit_ns, num_warps=1)  # compiles
        torch.cuda.synchronize()
        if int(self.exit.item()) != 1:
            raise RuntimeError(f"the spin kernel ignored a set flag (exit {self.exit.item()})")
        self.flag.zero_()
        self.exit.zero_()
        torch.cuda.synchronize()

    def block(self) -> None:
        spin_until_set[(1,)](self.flag, self.exit, self.limit_ns, num_warps=1)
        torch.cuda.current_stream().synchronize()  # vLLM's producer, before reusing a slot

    def device_wide_sync(self) -> None:
        torch.cuda.synchronize()

    def release(self) -> None:
        with torch.cuda.stream(self.abort_stream):
            self.flag.copy_(self.one, non_blocking=True)
        self.abort_stream.synchronize()  # the copy only: the spinning kernel is on another stream

    def ended_by_abort(self) -> bool:
        return int(self.exit.item()) == 1


class SleepKernel:
    """`torch.cuda._sleep` for `seconds` (measured clock): a kernel no abort can end."""

    how = "torch.cuda._sleep (Triton unavailable): the abort cannot end it"

    def __init__(self, seconds: float) -> None:
        torch.cuda._sleep(1000)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(50_000_000)
        end.record()
        end.synchronize()
        self.cycles = int(50_000_000 * seconds * 1000 / start.elapsed_time(end))

    def block(self) -> None:
        torch.cuda._sleep(self.cycles)
        torch.cuda.current_stream().synchronize()

    def device_wide_sync(self) -> None:
        torch.cuda.synchronize()

    def release(self) -> None:
        pass

    def ended_by_abort(self) -> bool:
        return False


class EventStandIn:
    """CPU mode: threading events in place of the kernel and the device (as the unit tests)."""

    how = "threading.Event stand-ins (CPU mode)"

    def __init__(self) -> None:
        self.aborted = threading.Event()
        self.idle = threading.Event()
        self.idle.set()

    def block(self) -> None:
        self.idle.clear()
        self.aborted.wait()
        self.idle.set()

    def device_wide_sync(self) -> None:
        self.idle.wait()

    def release(self) -> None:
        self.aborted.set()

    def ended_by_abort(self) -> bool:
        return self.aborted.is_set()


def handoff(pair: tuple[str, Tensor]) -> Handoff:
    """On CUDA `NcclBroadcaster.handoff` itself (an event recorded on the current stream; it
    uses no state of the group, so a bare instance does), on CPU the stand-in's (no event)."""
    if ON_GPU:
        return object.__new__(NcclBroadcaster).handoff(pair)
    return Handoff(*pair)


class BlockingBroadcaster:
    """A `Broadcaster` whose send takes `ok` items (each read on the sending thread's own stream
    through `on_this_stream`), then blocks in `stuck` until `close` aborts it, and raises."""

    def __init__(self, ok: int, stuck: Stuck) -> None:
        self.ok, self.stuck = ok, stuck
        self.sent: list[str] = []
        self.closed_at: float | None = None
        self.stream = torch.cuda.Stream() if ON_GPU else None

    def handoff(self, pair: tuple[str, Tensor]) -> Handoff:
        return handoff(pair)

    def gathers(self, pairs: Iterable[tuple[str, Tensor]]) -> Iterable[tuple[str, Tensor]]:
        return pairs

    def send(self, items: Iterable[Handoff], meta: BucketMeta) -> int:
        with torch.cuda.stream(self.stream) if ON_GPU else contextlib.nullcontext():
            total = torch.zeros((), dtype=torch.float64, device=DEVICE)
            for item in items:
                if len(self.sent) == self.ok:
                    self.stuck.block()
                    raise RuntimeError("the transfer group was aborted mid-send")
                total += on_this_stream(item).double().sum()  # stands in for the packing
                self.sent.append(item.name)
        return sum(meta.sizes())

    def close(self) -> None:
        self.closed_at = time.monotonic()
        self.stuck.release()


def timed_gathers(
    n: int, sync: Callable[[], None], spans: list[tuple[float, float]]
) -> Iterator[tuple[str, Tensor]]:
    """`n` gathers, each after a device-wide synchronise whose (start, end) goes to `spans`,
    and 50 ms of the gather's own work, so that the sender waits for items: the feeding thread
    then blocks in a synchronise, not in handing off to a full queue."""
    for i in range(n):
        start = time.monotonic()
        sync()
        spans.append((start, time.monotonic()))
        time.sleep(0.05)
        yield f"t{i}", torch.full((256,), float(i), device=DEVICE)


def check_send_deadline() -> None:
    timeout_s, n, ok = 3.0 if ON_GPU else 1.0, 10, 2
    stuck: Stuck
    if not ON_GPU:
        stuck = EventStandIn()
        print("send_deadline: CPU mode, no kernel (the device-wide synchronise needs CUDA)")
    else:
        try:
            if triton is None:
                raise ImportError("import triton failed")
            stuck = SpinKernel(limit_s=10 * timeout_s)
        except Exception as err:  # no Triton, or it cannot compile here: the weaker check
            print(f"send_deadline: Triton unusable ({type(err).__name__}: {err}); fallback")
            stuck = SleepKernel(3 * timeout_s)
    print(f"send_deadline: the send blocks in {stuck.how}; timeout_s={timeout_s}")
    broadcaster = BlockingBroadcaster(ok, stuck)
    meta = BucketMeta([f"t{i}" for i in range(n)], ["float32"] * n, [[256]] * n)
    spans: list[tuple[float, float]] = []
    start = time.monotonic()
    raised: BaseException | None = None
    try:
        send_or_abort(broadcaster, timed_gathers(n, stuck.device_wide_sync, spans), meta, timeout_s)
    except RuntimeError as err:
        raised = err
    returned = time.monotonic() - start
    if ON_GPU:
        torch.cuda.synchronize()
    assert raised is not None and "communicator was aborted" in str(raised), raised
    assert broadcaster.closed_at is not None, "the watchdog never aborted"
    aborted = broadcaster.closed_at - start
    longest = max(spans, key=lambda s: s[1] - s[0])
    print(
        f"send_deadline: abort at {aborted:.3f} s, raised at {returned:.3f} s; {len(spans)}/{n} "
        f"gathered, {len(broadcaster.sent)} sent; longest synchronise {longest[1] - longest[0]:.3f}"
        f" s, ended at {longest[1] - start:.3f} s; ended by the abort: {stuck.ended_by_abort()}"
    )
    assert len(spans) == n, "not every item was gathered"
    assert broadcaster.sent == [f"t{i}" for i in range(ok)], broadcaster.sent
    assert timeout_s - 0.05 <= aborted <= timeout_s + MARGIN_S, aborted
    assert longest[0] - start < timeout_s <= longest[1] - start, "no synchronise was blocked"
    if isinstance(stuck, SleepKernel):
        print("send_deadline: fallback: the watchdog fired at the deadline while the synchronise "
              "was blocked; that the abort ends the wait is not shown")  # fmt: skip
    else:
        assert stuck.ended_by_abort(), "the blocking kernel ended by its own limit, not the abort"
        assert returned <= timeout_s + MARGIN_S, f"raised {returned:.3f} s after the start"
    if ON_GPU:
        a = torch.randn(1024, 1024, device="cuda")
        assert torch.isfinite(a @ a).all().item(), "the GPU is not usable after the abort"
        print("send_deadline: the GPU runs a matmul after the abort")
    print("SYNC CHECK send_deadline OK")


# ------------------------------------------------------------------------------ stream_race


def race_pass(guarded: bool, sizes: list[int], busy_dim: int) -> int:
    """The producer/consumer pass (module docstring); returns the checksum mismatches."""
    n = len(sizes)
    want = torch.zeros(n, dtype=torch.int64, device=DEVICE)
    got = torch.zeros(n, dtype=torch.int64, device=DEVICE)
    source = torch.randn(max(sizes), dtype=torch.bfloat16, device=DEVICE)
    packed = torch.empty(16 * max(sizes), dtype=torch.bfloat16, device=DEVICE)
    busy = torch.randn(busy_dim, busy_dim, dtype=torch.bfloat16, device=DEVICE)
    busy_out = torch.empty_like(busy)
    consumer_stream = torch.cuda.Stream() if ON_GPU else None
    feed: queue.Queue = queue.Queue(maxsize=NUM_BUFFERS)
    if ON_GPU:
        torch.cuda.synchronize()  # the setup is done before either stream uses it

    def consume() -> None:
        offset = 0
        with torch.cuda.stream(consumer_stream) if ON_GPU else contextlib.nullcontext():
            while (entry := feed.get()) is not None:
                i, item = entry
                src = on_this_stream(item) if guarded else item.tensor
                if offset + src.numel() > packed.numel():
                    offset = 0
                dst = packed[offset : offset + src.numel()]
                dst.copy_(src)
                got[i] = dst.view(torch.int16).sum(dtype=torch.int64)
                offset += src.numel()
                del entry, item, src  # the clone's last reference: its block is free

    consumer = threading.Thread(target=consume, name="packer", daemon=True)
    consumer.start()
    for i, size in enumerate(sizes):
        torch.mm(busy, busy, out=busy_out)  # the producer's stream is behind the host
        clone = source[:size].clone()
        want[i] = clone.view(torch.int16).sum(dtype=torch.int64)
        pair = (f"t{i}", clone)
        item = handoff(pair) if guarded else Handoff(*pair)
        source[:size].normal_()  # ZeRO-3 reuses the gathered bucket
        feed.put((i, item))
        del clone, pair, item
    feed.put(None)
    consumer.join()
    if ON_GPU:
        torch.cuda.synchronize()
    return int((want != got).sum().item())


def check_stream_race() -> None:
    gen = torch.Generator().manual_seed(0)
    if ON_GPU:  # 1-4 MB of bf16 each
        n, low, high, busy_dim = 1000, 1 << 19, 1 << 21, 4096
    else:
        n, low, high, busy_dim = 8, 1 << 10, 1 << 12, 64
        print("stream_race: CPU mode: the 'after' path only, with no events; the race needs CUDA")
    sizes = torch.randint(low, high + 1, (n,), generator=gen).tolist()
    mb = sum(sizes) * 2 / 2**20
    if ON_GPU:
        start = time.perf_counter()
        before = race_pass(False, sizes, busy_dim)
        print(f"stream_race: before (raw tensor, no event, no record_stream): {before}/{n} "
              f"checksums differ ({mb:.0f} MB, {time.perf_counter() - start:.2f} s); "
              f"race {'reproduced' if before else 'not reproduced on this GPU'}")  # fmt: skip
    start = time.perf_counter()
    after = race_pass(True, sizes, busy_dim)
    print(f"stream_race: after (on_this_stream): {after}/{n} checksums differ ({mb:.1f} MB, "
          f"{time.perf_counter() - start:.2f} s)")  # fmt: skip
    assert after == 0, f"{after} buffers were read before their clone or after their reuse"
    print("SYNC CHECK stream_race OK")


# --------------------------------------------------------------------------- restart_memory


def hold_memory(share: float, conn: Any) -> None:
    """The child: hold `share` of the GPU's memory, say so, and wait to be killed."""
    total = torch.cuda.mem_get_info()[1]
    held = torch.empty(int(share * total), dtype=torch.uint8, device="cuda")
    held[:: 1 << 20].fill_(1)
    torch.cuda.synchronize()
    conn.send(held.numel())
    time.sleep(600)


class FakeGpu:
    """80 GiB, of which a killed engine's 64 GiB come back at t = 2.5 s (fake clock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def mem_get_info(self) -> tuple[int, int]:
        held = 64 << 30 if self.now < 2.5 else 0
        return (80 << 30) - held - (1 << 30), 80 << 30

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def check_restart_memory() -> None:
    share, timeout_s = 0.8, 60.0
    if not ON_GPU:
        print("restart_memory: SKIPPED on CPU (needs CUDA); wait_for_free_memory on a fake GPU")
        gpu = FakeGpu()
        waited = wait_for_free_memory(
            share, timeout_s, gpu.mem_get_info, clock=lambda: gpu.now, sleep=gpu.sleep
        )
        print(f"restart_memory: fake release after {waited:.1f} s (fake clock)")
        assert waited == 2.5, waited
        print("SYNC CHECK restart_memory OK")
        return
    torch.cuda.empty_cache()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=hold_memory, args=(share, child), daemon=True)
    proc.start()
    assert parent.poll(120), "the child never took the memory"
    held = parent.recv()
    free_held, total = torch.cuda.mem_get_info()
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    threading.Thread(target=proc.join, daemon=True).start()  # reaped, as Ray's raylet does
    free_after_kill = torch.cuda.mem_get_info()[0]
    waited = wait_for_free_memory(share, timeout_s, torch.cuda.mem_get_info, poll_s=0.05)
    free_then = torch.cuda.mem_get_info()[0]
    gib = 2**30
    print(
        f"restart_memory: child held {held / gib:.1f} GiB of {total / gib:.1f}; free "
        f"{free_held / gib:.1f} GiB before the kill, {free_after_kill / gib:.1f} GiB right after, "
        f"{free_then / gib:.1f} GiB after waiting {waited:.2f} s "
        f"({time.monotonic() - killed:.2f} s since the SIGKILL)"
    )
    print("SYNC CHECK restart_memory OK")


# -------------------------------------------------------------------------------- bf16_head


def sampled_tokens(head: nn.Module, hidden: Tensor, chunk: int) -> Tensor:
    """One token per position of `hidden` (T, H), sampled from softmax(head(hidden)) (the
    Gumbel-max trick), `chunk` positions at a time: what a rollout at temperature 1 gives."""
    out = []
    for h in hidden.split(chunk):
        logits = head(h)
        out.append((logits - torch.empty_like(logits).exponential_().log()).argmax(-1))
    return torch.cat(out)


def check_bf16_head() -> None:
    if ON_GPU:
        vocab, hidden_size, tokens, chunk, response = 151936, 1536, 8192, 4096, 1536
    else:
        vocab, hidden_size, tokens, chunk, response = 4096, 256, 512, 256, 128
        print("bf16_head: CPU mode: a small head shape")
    torch.manual_seed(0)
    print(f"bf16_head: vocab {vocab}, hidden {hidden_size}, {tokens} tokens in chunks of {chunk};"
          f" float32 matmul precision {torch.get_float32_matmul_precision()!r}")  # fmt: skip
    head = nn.Linear(hidden_size, vocab, bias=False, device=DEVICE, dtype=torch.bfloat16)
    nn.init.normal_(head.weight, std=0.02)
    head32 = nn.Linear(hidden_size, vocab, bias=False, device=DEVICE, dtype=torch.float32)
    with torch.no_grad():
        head32.weight.copy_(head.weight)
    # hidden std 1 (after the final norm, as asked); std 4 gives logits of a trained model's
    # spread (std ~3): bf16's rounding of a logit grows with its size
    for scale in (1.0, 4.0):
        hidden = (scale * torch.randn(1, tokens, hidden_size, device=DEVICE)).bfloat16()
        hidden32 = hidden.float()
        with torch.no_grad():
            labels = sampled_tokens(head32, hidden32[0], chunk)[None]
            logit_std = head32(hidden32[0, :chunk]).std().item()
            low = head_logprobs(hidden, head, labels, chunk)[0]
            ref = head_logprobs(hidden32, head32, labels, chunk)[0]
        assert low.dtype == ref.dtype == torch.float32
        assert torch.isfinite(low).all() and torch.isfinite(ref).all()
        diff = (low - ref).double()
        absd = diff.abs()
        noise = absd.exp() - 1
        windows = diff[: tokens // response * response].view(-1, response)
        print(
            f"bf16_head: hidden std {scale:g} (logits std {logit_std:.2f}, mean log-prob "
            f"{ref.mean().item():.2f}): |dlogp| max {absd.max().item():.2e} mean "
            f"{absd.mean().item():.2e} p99 {absd.quantile(0.99).item():.2e} (signed mean "
            f"{diff.mean().item():+.2e}); token ratio noise exp(|d|)-1 mean "
            f"{noise.mean().item():.2e}, summed over {response} tokens "
            f"{(noise[: windows.numel()].view(-1, response).sum(1)).mean().item():.3f}; "
            f"per {response}-token response exp(|sum d|)-1 "
            f"{(windows.sum(1).abs().exp() - 1).mean().item():.3f}, geometric-mean ratio "
            f"exp(|mean d|)-1 {(windows.mean(1).abs().exp() - 1).mean().item():.2e}"
        )
    print("SYNC CHECK bf16_head OK")


RUN = {
    "send_deadline": check_send_deadline,
    "stream_race": check_stream_race,
    "restart_memory": check_restart_memory,
    "bf16_head": check_bf16_head,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", choices=("all", *CHECKS), default="all")
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if ON_GPU else ""
    print("cuda:", ON_GPU, torch.__version__, name, "triton:", getattr(triton, "__version__", None))
    start = time.perf_counter()
    for check in CHECKS if args.check == "all" else (args.check,):
        began = time.perf_counter()
        RUN[check]()
        print(f"{check}: {time.perf_counter() - began:.1f} s")
    print(f"total {time.perf_counter() - start:.1f} s")
    print(f"SYNC GPU CHECKS OK ({'GPU' if ON_GPU else 'CPU mode'})")


if __name__ == "__main__":
    main()
