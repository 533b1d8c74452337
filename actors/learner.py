"""Learner group: W Ray actors forming one torch.distributed group, each driving DeepSpeed.

`LearnerWorker` holds one DeepSpeed engine and calls the pure code of `mtg_ray.learner`;
`LearnerGroup` places the workers, wires the process group (rank 0 publishes its address and a
free port), splits each batch over the ranks and reduces their metrics.
"""

import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from torch import Tensor

from actors.cluster import free_port
from mtg_ray.data import Record, write_text
from mtg_ray.learner import (
    LearnerConfig,
    collate,
    deepspeed_config,
    forward_objective,
    importance_metrics,
    lr_multiplier,
    micro_batches,
    shard,
)
from mtg_ray.learner.export import gathered_buckets
from mtg_ray.objectives import ObjectiveConfig, token_logprobs

LATEST = "latest"
CLIENT_KEY = "mtg_ray"  # our entry among the extras DeepSpeed returns as client state


class LearnerWorker:
    """One DeepSpeed rank."""

    def __init__(self, cfg: LearnerConfig, rank: int) -> None:
        self.cfg, self.rank = cfg, rank
        self.engine: Any = None

    def master_address(self) -> tuple[str, int]:
        host = ray.util.get_node_ip_address()
        return host, free_port(host)

    def setup(self, master_addr: str, master_port: int) -> None:
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
        _seed_everything(cfg.seed + self.rank)
        model = AutoModelForCausalLM.from_pretrained(
            cfg.model, dtype=getattr(torch, cfg.torch_dtype)
        )
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.pad_id = AutoTokenizer.from_pretrained(cfg.model).pad_token_id or 0
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=cfg.lr,
            betas=cfg.betas,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: lr_multiplier(s, cfg.total_steps, cfg.warmup_ratio, cfg.min_lr_ratio),
        )
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(cfg)
        )

    # ---- training -------------------------------------------------------------------------

    def train_step(
        self, records: list[Record], global_response_tokens: int, objective: ObjectiveConfig
    ) -> dict[str, Any]:
        """Forward/backward over this rank's micro-batches, then one optimizer step.

        Each micro-batch's token-mean loss is rescaled so that, after DeepSpeed divides by the
        accumulation steps and averages over ranks, the gradient is that of the token-mean over
        the whole global batch (the reduction of the authors' trainer).
        """
        cfg, engine = self.cfg, self.engine
        start = time.perf_counter()
        lr = engine.get_lr()[0]
        scale = cfg.gradient_accumulation_steps * cfg.num_workers / global_response_tokens
        loss_sum, tokens, clipped, truncated = 0.0, 0, 0, 0
        stage0_norm: float | None = None
        log_ratios: list[float] = []
        logprob_means: list[float] = []
        sources: list[str] = []
        for micro in micro_batches(records, cfg.micro_batch_size):
            batch = collate(micro, self.pad_id, cfg.max_length).to(engine.device)
            out = forward_objective(engine, batch, objective)
            engine.backward(out.loss * (out.response_tokens * scale))
            if cfg.effective_zero_stage == 0 and engine.is_gradient_accumulation_boundary():
                stage0_norm = _grad_norm(engine.module)  # DeepSpeed only reports it for ZeRO
            engine.step()
            loss_sum += float(out.loss.detach()) * out.response_tokens
            tokens += batch.num_tokens
            clipped += out.clipped_tokens
            truncated += batch.truncated
            log_ratios += out.log_ratio.tolist()
            logprob_means += out.logprob_mean.tolist()
            sources += batch.sources
        grad_norm = engine.get_global_grad_norm() if cfg.effective_zero_stage else stage0_norm
        return {
            "loss_sum": loss_sum,
            "tokens": tokens,
            "clipped_tokens": clipped,
            "truncated": truncated,
            "log_ratios": log_ratios,
            "logprob_means": logprob_means,
            "sources": sources,
            "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
            "lr": float(lr),
            "seconds": time.perf_counter() - start,
            "step": int(engine.global_steps),
        }

    @torch.no_grad()
    def score(self, records: list[Record]) -> list[list[float]]:
        """Live log-prob of every response token (no gradient, no step)."""
        out: list[list[float]] = []
        for micro in micro_batches(records, self.cfg.micro_batch_size):
            batch = collate(micro, self.pad_id, self.cfg.max_length).to(self.engine.device)
            logits = self.engine(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
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
        torch.save(_rng_state(), tmp)
        os.replace(tmp, rng_path)
        torch.distributed.barrier()
        return tag

    def load_checkpoint(self, ckpt_dir: str, tag: str) -> dict[str, Any]:
        _, client_state = self.engine.load_checkpoint(ckpt_dir, tag=tag)
        _set_rng_state(
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
        if self.rank != 0:
            return
        from transformers import AutoTokenizer

        out = Path(out_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        self.engine.module.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        AutoTokenizer.from_pretrained(self.cfg.model).save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)

    def shutdown(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _grad_norm(module: torch.nn.Module) -> float:
    """Global L2 norm of the (already all-reduced) gradients, before clipping."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def response_tokens(records: Sequence[Record], max_length: int) -> int:
    """Response tokens that enter the loss (after cutting to max_length)."""
    return sum(
        min(len(r.response_token_ids), max(0, max_length - len(r.prompt_token_ids)))
        for r in records
    )


class LearnerGroup:
    """W `LearnerWorker` actors in one placement group; rank 0 hosts the rendezvous."""

    def __init__(self, cfg: LearnerConfig) -> None:
        self.cfg = cfg
        bundle: dict[str, float] = {"CPU": cfg.cpus_per_worker}
        if cfg.gpus_per_worker:
            bundle["GPU"] = cfg.gpus_per_worker
        self.pg = placement_group([bundle] * cfg.num_workers, strategy="PACK")
        ray.get(self.pg.ready())
        env = {"OMP_NUM_THREADS": str(cfg.cpus_per_worker)}
        if cfg.backend == "gloo":
            env["DS_ACCELERATOR"] = "cpu"
        self.workers = [
            ray.remote(LearnerWorker)
            .options(
                num_cpus=cfg.cpus_per_worker,
                num_gpus=cfg.gpus_per_worker,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.pg, placement_group_bundle_index=rank
                ),
                runtime_env={"env_vars": env},
            )
            .remote(cfg, rank)
            for rank in range(cfg.num_workers)
        ]
        addr, port = ray.get(self.workers[0].master_address.remote())
        ray.get([w.setup.remote(addr, port) for w in self.workers])
        self.step = 0

    def train_step(self, records: Sequence[Record], objective: ObjectiveConfig) -> dict[str, float]:
        """One optimizer step on `records` (exactly learner.train_batch_size of them).

        Returns `train/{loss,grad_norm,lr,tokens_per_s,clipped_fraction,truncated,
        logprob_mean}` and `is/<source>/<stat>` importance-weight diagnostics.
        """
        cfg = self.cfg
        if len(records) != cfg.train_batch_size:
            raise ValueError(
                f"train_step got {len(records)} records; learner.train_batch_size is "
                f"{cfg.train_batch_size}"
            )
        total = response_tokens(records, cfg.max_length)
        if total == 0:
            raise ValueError("train_step got a batch with no response tokens")
        start = time.perf_counter()
        shards = shard(records, cfg.num_workers)
        parts = ray.get(
            [
                w.train_step.remote(s, total, objective)
                for w, s in zip(self.workers, shards, strict=True)
            ]
        )
        seconds = time.perf_counter() - start
        self.step = parts[0]["step"]
        sources = [s for p in parts for s in p["sources"]]
        log_ratios = [x for p in parts for x in p["log_ratios"]]
        metrics = {
            "train/loss": sum(p["loss_sum"] for p in parts) / total,
            "train/grad_norm": parts[0]["grad_norm"],
            "train/lr": parts[0]["lr"],
            "train/tokens_per_s": sum(p["tokens"] for p in parts) / seconds,
            "train/step_seconds": seconds,
            "train/clipped_fraction": sum(p["clipped_tokens"] for p in parts) / total,
            "train/truncated": float(sum(p["truncated"] for p in parts)),
            "train/logprob_mean": float(np.mean([x for p in parts for x in p["logprob_means"]])),
        }
        metrics.update(importance_metrics(sources, log_ratios, objective.is_clip))
        self.last_log_ratios = [x for x in log_ratios if x == x]
        return metrics

    def score(self, records: Sequence[Record]) -> list[list[float]]:
        """Per-token log-probs of each record's response under the learner's live weights.

        Every rank runs the same number of forwards (ZeRO-3 gathers are collective), so the
        list is padded with copies of its last record, which are dropped again.
        """
        if not records:
            return []
        world = self.cfg.num_workers
        unit = world * self.cfg.micro_batch_size
        padded = list(records) + [records[-1]] * (-len(records) % unit)
        parts = ray.get([w.score.remote(padded[r::world]) for r, w in enumerate(self.workers)])
        out: list[list[float]] = [[] for _ in padded]
        for r, part in enumerate(parts):
            out[r::world] = part
        return out[: len(records)]

    # ---- checkpoints and export -----------------------------------------------------------

    def save_checkpoint(self, ckpt_dir: str | Path, client_state: dict[str, Any]) -> str:
        """Save on every rank, then point `latest` at it (atomically, last)."""
        ckpt_dir = str(ckpt_dir)
        tags = ray.get([w.save_checkpoint.remote(ckpt_dir, client_state) for w in self.workers])
        write_text(Path(ckpt_dir) / LATEST, tags[0])
        return tags[0]

    def load_checkpoint(self, ckpt_dir: str | Path) -> dict[str, Any] | None:
        """Resume from `ckpt_dir/latest`; None (and nothing changes) when there is none."""
        latest = Path(ckpt_dir) / LATEST
        if not latest.is_file():
            return None
        tag = latest.read_text().strip()
        states = ray.get([w.load_checkpoint.remote(str(ckpt_dir), tag) for w in self.workers])
        self.step = int(tag.removeprefix("global_step"))
        return states[0]

    def export_hf(self, out_dir: str | Path, bucket_bytes: int = 256 << 20) -> Path:
        ray.get([w.export_hf.remote(str(out_dir), bucket_bytes) for w in self.workers])
        return Path(out_dir)

    def named_weights(self, bucket_bytes: int = 64 << 20) -> Iterator[tuple[str, Tensor]]:
        """Full (name, tensor) pairs streamed from rank 0, one bucket in flight: feed this to
        `RolloutGroup.update_weights`."""
        stream = (
            self.workers[0]
            .stream_weights.options(num_returns="streaming", _generator_backpressure_num_objects=1)
            .remote(bucket_bytes)
        )
        drains = [w.drain_weights.remote(bucket_bytes) for w in self.workers[1:]]
        for ref in stream:
            yield from ray.get(ref)
        ray.get(drains)

    def shutdown(self) -> None:
        ray.get([w.shutdown.remote() for w in self.workers])
        for w in self.workers:
            ray.kill(w, no_restart=True)
        remove_placement_group(self.pg)
