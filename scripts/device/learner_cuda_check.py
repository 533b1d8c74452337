"""GPU check of the learner's CUDA path (bf16, NCCL, DeepSpeed) in one process, for a lent GPU
machine that has torch and transformers but not Ray (its wheel is too large to carry there).

`ray` is replaced by an empty stand-in module *in this script only*, so `actors.learner`
imports; LearnerWorker (a plain class that LearnerGroup wraps in a Ray actor) is driven
directly as rank 0 of a one-rank NCCL group. It checks: bf16 parameters on the GPU, every
objective finite, loss falling on a fixed batch, weights streamed to host memory, and an HF
export that scores like the live model. Carry DeepSpeed and pydantic as wheels, then
`PYTHONPATH=.:<wheels> python3 scripts/device/learner_cuda_check.py`. On CPU it runs on gloo.
"""

import math
import socket
import sys
import tempfile
import time
import types
from pathlib import Path

ray_standin = types.ModuleType("ray")  # not Ray: only lets actors.learner import
for name in ("ray.util", "ray.util.placement_group", "ray.util.scheduling_strategies"):
    sys.modules[name] = types.ModuleType(name)
sys.modules["ray.util.placement_group"].placement_group = None
sys.modules["ray.util.placement_group"].remove_placement_group = None
sys.modules["ray.util.scheduling_strategies"].PlacementGroupSchedulingStrategy = None
sys.modules["ray"] = ray_standin

import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

sys.path.insert(0, "tests/actors")
from conftest import make_records  # noqa: E402

from actors.learner import LearnerWorker  # noqa: E402
from mtg_ray.learner import LearnerConfig  # noqa: E402
from mtg_ray.models import build_tiny_model  # noqa: E402
from mtg_ray.models.tiny import TinyModelConfig  # noqa: E402
from mtg_ray.objectives import OBJECTIVE_NAMES, ObjectiveConfig  # noqa: E402

on_gpu = torch.cuda.is_available()
print("cuda:", on_gpu, torch.__version__, torch.cuda.get_device_name(0) if on_gpu else "")
tmp = Path(tempfile.mkdtemp())
model_dir = build_tiny_model(tmp / "model", TinyModelConfig())
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
cfg = LearnerConfig(
    model=str(model_dir), num_workers=1, backend="nccl" if on_gpu else "gloo",
    gpus_per_worker=1 if on_gpu else 0, zero_stage=2, train_batch_size=8, micro_batch_size=4,
    lr=1e-3, warmup_ratio=0.25, total_steps=40, max_length=128,
)  # fmt: skip
print("dtype:", cfg.torch_dtype, "zero:", cfg.effective_zero_stage)
worker = LearnerWorker(cfg, 0)
worker.setup("127.0.0.1", port)
param = next(worker.engine.module.parameters())
print("param:", param.dtype, param.device, "dist:", torch.distributed.get_backend())
records = make_records(8)
tokens = sum(len(r.response_token_ids) for r in records)
losses = []
for step in range(30):
    name = OBJECTIVE_NAMES[step % len(OBJECTIVE_NAMES)] if step < 8 else "dr_dft"
    m = worker.train_step(records, tokens, ObjectiveConfig(name=name))
    losses.append(m["loss_sum"] / tokens)
    assert math.isfinite(losses[-1]) and math.isfinite(m["grad_norm"]), (name, m)
print("objectives ran:", OBJECTIVE_NAMES)
print("loss first/last:", round(losses[8], 4), round(losses[-1], 4))
assert losses[-1] < 0.5 * losses[8]
start = time.perf_counter()
buckets = list(worker.stream_weights(1 << 20))
print("stream:", len(buckets), "buckets", {t.device.type for b in buckets for _, t in b},
      f"{time.perf_counter() - start:.3f}s")  # fmt: skip
worker.export_hf(str(tmp / "export"), 1 << 20)
hf = AutoModelForCausalLM.from_pretrained(tmp / "export", dtype=param.dtype)
hf = hf.to(param.device).eval()
live = worker.score(records[:4])
r = records[0]
ids = torch.tensor([r.prompt_token_ids + r.response_token_ids], device=param.device)
with torch.no_grad():
    logp = torch.log_softmax(hf(ids).logits[0, :-1].float(), -1)
picked = logp.gather(-1, ids[0, 1:, None])[:, 0][len(r.prompt_token_ids) - 1 :].tolist()
diff = max(abs(a - b) for a, b in zip(live[0], picked, strict=True))
print("export vs live max |dlogp|:", round(diff, 5))
assert diff < (0.05 if param.dtype == torch.bfloat16 else 1e-4)
worker.shutdown()
print("GPU LEARNER CHECK OK")
