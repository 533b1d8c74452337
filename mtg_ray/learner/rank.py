"""One learner rank: a DeepSpeed engine over the policy, and everything a rank does with it.

A plain class (no Ray): `actors.learner` hosts it in a Ray actor, the learner group
(`mtg_ray.pipelines.learner_group`) drives W of them as one torch.distributed group, and
`scripts/device/learner_cuda_check.py` drives one directly on a GPU machine without Ray.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtg_ray.data import Record
from mtg_ray.learner.batch import collate, micro_batches
from mtg_ray.learner.config import LearnerConfig, deepspeed_config
from mtg_ray.learner.export import gathered_buckets, save_hf_folder
from mtg_ray.learner.rng import rng_state, seed_everything, set_rng_state
from mtg_ray.learner.schedule import lr_multiplier
from mtg_ray.learner.step import forward_objective, normalizer_sums
from mtg_ray.objectives import Objective, token_logprobs

CLIENT_KEY = "mtg_ray"  # our entry among the extras DeepSpeed returns as client state


class LearnerRank:
    """Rank `rank` of `cfg.num_workers`, training the HF model at `model` over `total_steps`
    optimizer steps (the length of the lr schedule)."""

    def __init__(self, cfg: LearnerConfig, rank: int, model: str, total_steps: int) -> None:
        if total_steps < 1:
            raise ValueError(f"a learner needs at least one optimizer step, got {total_steps}")
        self.cfg, self.rank, self.model_path, self.total_steps = cfg, rank, model, total_steps
        self.engine: Any = None

    def setup(self, master_addr: str, master_port: int) -> None:
        """Join the process group at master_addr:master_port, load the model, start DeepSpeed."""
        import deepspeed
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.cfg
        os.environ.update(
            RANK=str(self.rank),
            LOCAL_RANK="0" if cfg.backend == "nccl" else str(self.rank),
            WORLD_SIZE=str(cfg.num_workers),
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
        )
        deepspeed.init_distributed(dist_backend=cfg.backend)
        seed_everything(cfg.seed + self.rank)
        model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=getattr(torch, cfg.torch_dtype)
        )
        if cfg.gradient_checkpointing:
            # Non-reentrant: the variant PyTorch recommends, and the one ZeRO-3's hooks expect.
            model.gradient_checkpointing_enable({"use_reentrant": False})
        model.eval()  # only train_step's forwards run in training mode
        self.pad_id = AutoTokenizer.from_pretrained(self.model_path).pad_token_id or 0
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=cfg.lr,
            betas=cfg.betas,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: lr_multiplier(s, self.total_steps, cfg.warmup_ratio, cfg.min_lr_ratio),
        )
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(cfg)
        )

    # ---- training -------------------------------------------------------------------------

    def train_step(
        self, records: list[Record], global_response_tokens: int, objective: Objective
    ) -> dict[str, Any]:
        """Forward/backward over this rank's micro-batches, then one optimizer step.

        learner.loss_reduction=token_mean rescales each micro-batch's token-mean loss so that,
        after DeepSpeed divides by the accumulation steps and averages over ranks, the gradient
        is that of the token-mean over the whole optimizer batch; micro_batch_mean (the
        authors' trainer) back-propagates each micro-batch's token mean as is, so a rank's
        gradient is their sum. Returns this rank's evidence for `reduce_ranks`.
        """
        cfg, engine = self.cfg, self.engine
        start = time.perf_counter()
        lr = engine.get_lr()[0]
        batches = [
            collate(micro, self.pad_id, cfg.max_length).to(engine.device)
            for micro in micro_batches(records, cfg.micro_batch_size)
        ]
        normalizer = self._normalizer(batches, objective) if objective.self_normalizes else None
        if cfg.loss_reduction == "micro_batch_mean":
            scale = lambda out: float(cfg.gradient_accumulation_steps)  # noqa: E731
        else:
            per_token = cfg.gradient_accumulation_steps * cfg.num_workers / global_response_tokens
            scale = lambda out: out.response_tokens * per_token  # noqa: E731
        report: dict[str, Any] = dict(
            loss_sum=0.0, tokens=0, clipped_tokens=0, truncated=0,
            log_ratios=[], logprob_means=[], sources=[],
        )  # fmt: skip
        stage0_norm: float | None = None
        engine.train()  # transformers recomputes a layer in backward only in training mode
        try:
            for batch in batches:
                out = forward_objective(engine, batch, objective, normalizer)
                engine.backward(out.loss * scale(out))
                if cfg.effective_zero_stage == 0 and engine.is_gradient_accumulation_boundary():
                    stage0_norm = _grad_norm(engine.module)  # DeepSpeed reports it for ZeRO only
                engine.step()
                report["loss_sum"] += float(out.loss.detach()) * out.response_tokens
                report["tokens"] += batch.num_tokens
                report["clipped_tokens"] += out.clipped_tokens
                report["truncated"] += batch.truncated
                report["log_ratios"] += out.log_ratio.tolist()
                report["logprob_means"] += out.logprob_mean.tolist()
                report["sources"] += batch.sources
        finally:
            engine.eval()
        grad_norm = engine.get_global_grad_norm() if cfg.effective_zero_stage else stage0_norm
        report.update(
            grad_norm=float(grad_norm) if grad_norm is not None else float("nan"),
            lr=float(lr),
            seconds=time.perf_counter() - start,
            step=int(engine.global_steps),
            normalizer=normalizer,
        )
        return report

    def _normalizer(self, batches: list, objective: Objective) -> float:
        """Mean untruncated importance weight over the whole optimizer batch (every rank's
        micro-batches), for self-normalisation."""
        total, count = normalizer_sums(self.engine, batches, objective)
        sums = torch.tensor([total, float(count)], dtype=torch.float64, device=self.engine.device)
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        return float(sums[0] / sums[1]) if sums[1] > 0 else 1.0

    @torch.no_grad()
    def score(self, records: list[Record]) -> list[list[float]]:
        """Live log-prob of every response token (no gradient, no step)."""
        out: list[list[float]] = []
        for micro in micro_batches(records, self.cfg.micro_batch_size):
            batch = collate(micro, self.pad_id, self.cfg.max_length).to(self.engine.device)
            logits = self.engine(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
            )
            logprobs = token_logprobs(logits.logits[:, :-1], batch.labels)
            out += [row[m].tolist() for row, m in zip(logprobs, batch.mask, strict=True)]
        return out

    # ---- checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self, ckpt_dir: str, client_state: dict[str, Any]) -> str:
        """DeepSpeed state (model, optimizer, lr schedule, step) + client_state + this rank's
        RNG. The `latest` pointer is written last and atomically by the group, so a crash
        mid-save resumes from the previous checkpoint."""
        tag = f"global_step{self.engine.global_steps}"
        self.engine.save_checkpoint(
            ckpt_dir, tag=tag, client_state={CLIENT_KEY: client_state}, save_latest=False
        )
        rng_path = Path(ckpt_dir) / tag / f"rng_rank{self.rank}.pt"
        tmp = rng_path.with_suffix(".tmp")
        torch.save(rng_state(), tmp)
        os.replace(tmp, rng_path)
        torch.distributed.barrier()
        return tag

    def load_checkpoint(self, ckpt_dir: str, tag: str) -> dict[str, Any]:
        _, client_state = self.engine.load_checkpoint(ckpt_dir, tag=tag)
        set_rng_state(
            torch.load(Path(ckpt_dir) / tag / f"rng_rank{self.rank}.pt", weights_only=False)
        )
        return (client_state or {}).get(CLIENT_KEY, {})

    # ---- weights out ----------------------------------------------------------------------

    def _buckets(self, bucket_bytes: int) -> Iterator[list[tuple[str, Tensor]]]:
        zero3 = self.cfg.effective_zero_stage == 3
        return gathered_buckets(self.engine.module, bucket_bytes, zero3)

    def stream_weights(self, bucket_bytes: int) -> Iterator[list[tuple[str, Tensor]]]:
        """Rank 0 yields full (name, tensor) buckets, copied to host memory so whoever receives
        them (the driver, the rollout group's sender) needs no GPU; other ranks only join the
        gathers."""
        for bucket in self._buckets(bucket_bytes):
            if self.rank == 0:
                yield [(name, t.to("cpu", copy=True)) for name, t in bucket]

    def drain_weights(self, bucket_bytes: int) -> None:
        for _ in self._buckets(bucket_bytes):
            pass

    def export_hf(self, out_dir: str, bucket_bytes: int) -> None:
        """Rank 0 writes an HF folder (safetensors + config + tokenizer) atomically."""
        state = {
            name: t.clone()
            for bucket in self._buckets(bucket_bytes)
            for name, t in bucket
            if self.rank == 0
        }
        if self.rank == 0:
            save_hf_folder(self.engine.module, state, self.model_path, out_dir)

    def shutdown(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _grad_norm(module: torch.nn.Module) -> float:
    """Global L2 norm of the (already all-reduced) gradients, before clipping."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
