"""GPU check of the learner's CUDA path (bf16, NCCL, DeepSpeed) in one process, for a lent GPU
machine that has torch and transformers but not Ray (its wheel is too large to carry there).

`LearnerRank` (the Ray-free learner rank that the Ray actor hosts) is driven directly as rank 0
of a one-rank NCCL group. It checks: bf16 parameters on the GPU, every objective finite, loss
falling on a fixed batch, weights streamed to host memory, and an HF export that scores like the
live model. Carry DeepSpeed and pydantic as wheels, then
`PYTHONPATH=.:<wheels> python3 scripts/device/learner_cuda_check.py`. On CPU it runs on gloo.
"""

import math
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mtg_ray.data.synthetic import arithmetic_records
from mtg_ray.learner import LearnerConfig
from mtg_ray.learner.rank import LearnerRank
from mtg_ray.models import build_tiny_model, build_tokenizer
from mtg_ray.models.tiny import TinyModelConfig
from mtg_ray.objectives import OBJECTIVE_NAMES, Objective

on_gpu = torch.cuda.is_available()
print("cuda:", on_gpu, torch.__version__, torch.cuda.get_device_name(0) if on_gpu else "")
tmp = Path(tempfile.mkdtemp())
model_dir = build_tiny_model(tmp / "model", TinyModelConfig())
cfg = LearnerConfig(
    num_workers=1, backend="nccl" if on_gpu else "gloo", gpus_per_worker=1 if on_gpu else 0,
    zero_stage=2, train_batch_size=8, micro_batch_size=4, lr=1e-3, warmup_ratio=0.25,
    max_length=128,
)  # fmt: skip
print("dtype:", cfg.torch_dtype, "zero:", cfg.effective_zero_stage)
worker = LearnerRank(cfg, 0, str(model_dir), total_steps=40)
worker.setup("127.0.0.1", worker.open_store("127.0.0.1"))
param = next(worker.engine.module.parameters())
print("param:", param.dtype, param.device, "dist:", torch.distributed.get_backend())
records = arithmetic_records(8, build_tokenizer())
tokens = sum(len(r.response_token_ids) for r in records)
losses = []
for step in range(30):
    name = OBJECTIVE_NAMES[step % len(OBJECTIVE_NAMES)] if step < 8 else "is_dft"
    m = worker.train_step(records, tokens, Objective(name))
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
