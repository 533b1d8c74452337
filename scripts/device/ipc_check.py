"""GPU check of the CUDA IPC weight path between two processes on one GPU (no Ray, no vLLM).

The sender gathers a model's parameters bucket by bucket as the learner does
(`mtg_ray.learner.export.gathered_buckets`) and packs them into one exported staging buffer
(`mtg_ray.weight_sync.ipc.IpcExporter`: vLLM's packed IPC format); a receiver process maps the
buffer (`IpcImporter`), copies each chunk out, rebuilds the state dict and answers with a
SHA-256 of every tensor's bytes, which must equal the sender's (bit-exact). The sender packs
the next chunk only after the receiver has answered. Random weights of Qwen2.5-Math-1.5B's
shape in bf16 on a GPU; without one, the CPU mode checks the same packing and unpacking within
one process (no CUDA IPC on CPU).

    PYTHONPATH=.:<wheels> python3 scripts/device/ipc_check.py
"""

import hashlib
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mtg_ray.learner.export import gathered_buckets
from mtg_ray.models.shapes import QWEN_1_5B, SMALL, build_random_model
from mtg_ray.weight_sync.direct import weight_meta
from mtg_ray.weight_sync.ipc import IpcExporter, IpcImporter, pack_chunks, unpack_chunk

CAPACITY = 256 << 20  # staging buffer: larger than the largest tensor (the 152k x 1536 embedding)


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().view(torch.uint8).cpu().numpy()).hexdigest()


def receiver(conn) -> None:
    """Maps the sender's buffer, unpacks each chunk, answers with its tensors' digests."""
    importer = IpcImporter(torch.device("cuda", 0))
    state = {}
    while (update := conn.recv()) is not None:
        chunk = importer.receive(update)
        state.update(chunk)
        conn.send({name: digest(t) for name, t in chunk})
    importer.close()
    conn.send(len(state))


def named_weights(model: torch.nn.Module):
    for bucket in gathered_buckets(model, 64 << 20, zero3=False):
        yield from bucket


def main() -> None:
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda", 0) if on_gpu else torch.device("cpu")
    print("cuda:", on_gpu, torch.__version__, torch.cuda.get_device_name(0) if on_gpu else "")
    folder = build_random_model(
        Path(tempfile.mkdtemp()) / "m", QWEN_1_5B if on_gpu else SMALL, str(device)
    )
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(device)
    want = {name: digest(p) for name, p in model.named_parameters()}
    meta = weight_meta(model)
    if not on_gpu:  # the exporter's own packing, into a host buffer, unpacked in process
        buffer, got, chunks = torch.empty(8 << 20, dtype=torch.uint8), {}, 0
        for update in pack_chunks(named_weights(model), meta, buffer):
            got.update({n: digest(t) for n, t in unpack_chunk(buffer, update)})
            chunks += 1
        assert got == want, "CPU mode: unpacked tensors differ"
        print(f"CPU mode (no CUDA IPC): {len(got)} tensors in {chunks} chunks, bit-exact")
        print("IPC CHECK OK (CPU mode)")
        return
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=receiver, args=(child,))
    proc.start()
    exporter = IpcExporter(CAPACITY, device)
    got, chunks, start = {}, 0, time.perf_counter()
    for update in exporter.chunks(named_weights(model), meta):
        parent.send(update)
        got.update(parent.recv())  # the receiver is done with this chunk
        chunks += 1
    seconds = time.perf_counter() - start
    parent.send(None)
    received = parent.recv()
    proc.join(timeout=60)
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert received == len(want) and got == want, "received tensors differ from the sender's"
    print(f"ipc: {len(got)} tensors, {nbytes / 2**30:.2f} GiB in {chunks} chunks, bit-exact; "
          f"{seconds:.2f} s with a SHA-256 per tensor")  # fmt: skip
    print("IPC CHECK OK")


if __name__ == "__main__":
    main()
