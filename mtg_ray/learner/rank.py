"""One learner rank: a DeepSpeed engine over the policy, and everything a rank does with it.

A plain class (no Ray): `actors.learner` hosts it in a Ray actor, the learner group
(`mtg_ray.pipelines.groups.learner_group`) drives W of them as one torch.distributed group, and
`scripts/device/learner_cuda_check.py` drives one directly on a GPU machine without Ray.
"""

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.distributed import TCPStore

from mtg_ray.data import Record
from mtg_ray.learner.batch import collate, micro_batches
from mtg_ray.learner.config import LearnerConfig, deepspeed_config, group_changes
from mtg_ray.learner.export import gathered_buckets, save_hf_folder, sent_pairs
from mtg_ray.learner.ops import load_cpu_ops, use_environment_build_dir
from mtg_ray.learner.reshard import (
    NATIVE,
    UNIVERSAL,
    Layout,
    convert,
    converted_tag,
    resume_route,
    saved_layout,
)
from mtg_ray.learner.rng import resume_seed, rng_state, seed_everything, set_rng_state
from mtg_ray.learner.schedule import lr_multiplier
from mtg_ray.learner.step import forward_objective, live_logprobs, normalizer_sums
from mtg_ray.objectives import Objective
from mtg_ray.ports import listening_store
from mtg_ray.weight_sync.direct import (
    Broadcaster,
    open_broadcaster,
    send_or_abort,
    weight_meta,
)

CLIENT_KEY = "mtg_ray"  # our entry among the extras DeepSpeed returns as client state


class LearnerRank:
    """Rank `rank` of `cfg.num_workers`, training the HF model at `model` over `total_steps`
    optimizer steps (the length of the lr schedule). `shares_gpu`: a rollout engine uses this
    rank's GPU between steps (`resources.gpu_mode=colocate`), so each step ends by giving
    PyTorch's cached GPU memory back."""

    def __init__(
        self, cfg: LearnerConfig, rank: int, model: str, total_steps: int, shares_gpu: bool = False
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"a learner needs at least one optimizer step, got {total_steps}")
        self.cfg, self.rank, self.model_path, self.total_steps = cfg, rank, model, total_steps
        self.shares_gpu = shares_gpu
        self.engine: Any = None
        self.broadcaster: Broadcaster | None = None
        self.chunk_bytes = 0
        self.sync_timeout_s = 600.0  # open_weight_sync sets rollout.sync_timeout_s
        self.forwarded = False  # a forward has run (ZeRO-3 storage is initialised)
        self.store: TCPStore | None = None  # rank 0: the process group's store (open_store)
        self.loads_universal = False  # the engine's checkpoint loads read the universal format

    def open_store(self, host: str) -> int:
        """Rank 0: host the process group's store, listening on `host` alone (its node's
        address: loopback in a local run); returns its port, for `setup` on every rank."""
        if self.rank != 0:
            raise RuntimeError(f"rank {self.rank} asked to host the store: rank 0 does")
        self.store = listening_store(host, self.cfg.num_workers)
        return self.store.port

    def setup(self, master_addr: str, master_port: int) -> None:
        """Join the process group whose store rank 0 opened (`open_store`) at
        master_addr:master_port, load the model, start DeepSpeed."""
        import deepspeed

        use_environment_build_dir()  # the ops scripts/setup.sh built
        cfg = self.cfg
        if cfg.backend == "gloo":
            load_cpu_ops()  # before init_distributed loads it: see mtg_ray.learner.ops
        if self.rank == 0 and self.store is None:
            raise RuntimeError("rank 0 hosts the process group's store: call open_store first")
        store = self.store or TCPStore(master_addr, master_port, cfg.num_workers, is_master=False)
        os.environ.update(
            RANK=str(self.rank),
            LOCAL_RANK="0" if cfg.backend == "nccl" else str(self.rank),
            WORLD_SIZE=str(cfg.num_workers),
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
        )
        torch.distributed.init_process_group(
            cfg.backend, store=store, rank=self.rank, world_size=cfg.num_workers
        )
        deepspeed.init_distributed(dist_backend=cfg.backend)  # adopts the group above
        self._start_engine()

    def restart(self, cfg: LearnerConfig, model: str, total_steps: int) -> None:
        """Start over on the HF model at `model` with `cfg` (its lr, schedule, seed...) for
        `total_steps` steps, in the process group this rank already belongs to: a new model,
        optimizer and DeepSpeed engine, the RNG seeded as `setup` seeds it, so what follows
        is what a freshly started rank would do, without the process start and imports."""
        if total_steps < 1:
            raise ValueError(f"a learner needs at least one optimizer step, got {total_steps}")
        changed = group_changes(self.cfg, cfg)
        if changed:
            raise ValueError(f"a restarted rank keeps its group; these changed: {changed}")
        self.close_weight_sync()
        self.engine = None  # the old engine's model and optimizer state go with it
        self.cfg, self.model_path, self.total_steps = cfg, model, total_steps
        self._start_engine()

    def _start_engine(self, load_universal: bool = False) -> None:
        """Seed, load the model, and wrap it, an AdamW and the lr schedule in DeepSpeed (whose
        checkpoint loads read the universal format if `load_universal`)."""
        import deepspeed
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.cfg
        self.forwarded = False
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
            model=model, optimizer=optimizer, lr_scheduler=scheduler,
            config=deepspeed_config(cfg, load_universal),
        )  # fmt: skip
        self.loads_universal = load_universal

    # ---- training -------------------------------------------------------------------------

    def train_step(
        self, records: list[Record], global_response_tokens: int, objective: Objective,
        global_records: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Forward/backward over this rank's micro-batches, then one optimizer step.
        `global_response_tokens` and `global_records` (default: learner.train_batch_size) count
        what enters the loss over all ranks (rows `objective.trains`).

        learner.loss_reduction=token_mean rescales each micro-batch's token-mean loss so that,
        after DeepSpeed divides by the accumulation steps and averages over ranks, the gradient
        is that of the token-mean over the whole optimizer batch; sequence_mean does the same
        for the mean over the batch's records of each record's token mean (every record counts
        once, however long); micro_batch_mean (the authors' trainer) back-propagates each
        micro-batch's token mean as is, so a rank's gradient is their sum. Returns this rank's
        evidence for `reduce_ranks`, with each source's tokens and its part of the loss as
        the reduction weighs it (`loss_by_source`).
        """
        cfg, engine = self.cfg, self.engine
        start = time.perf_counter()
        lr = engine.get_lr()[0]
        batches = [
            collate(micro, self.pad_id, cfg.max_length, cfg.pack_records).to(engine.device)
            for micro in micro_batches(records, cfg.micro_batch_size)
        ]
        normalizer = self._normalizer(batches, objective) if objective.self_normalizes else None
        report: dict[str, Any] = dict(
            loss_sum=0.0, tokens=0, clipped_tokens=0, truncated=0,
            log_ratios=[], logprob_means=[], sources=[], tokens_by_source={}, loss_by_source={},
        )  # fmt: skip
        stage0_norm: float | None = None
        self.forwarded = True
        engine.train()  # transformers recomputes a layer in backward only in training mode
        try:
            for batch in batches:
                out = forward_objective(
                    engine, batch, objective, normalizer, cfg.logits_chunk_tokens
                )
                engine.backward(
                    reduced_loss(
                        out, cfg.loss_reduction, cfg.gradient_accumulation_steps,
                        cfg.num_workers, global_response_tokens,
                        global_records or cfg.train_batch_size,
                    )
                )  # fmt: skip
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
                account_sources(report, out, batch, cfg.loss_reduction)
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
        if self.shares_gpu:
            torch.cuda.empty_cache()
        return report

    def _normalizer(self, batches: list, objective: Objective) -> float:
        """Mean untruncated importance weight over the whole optimizer batch (every rank's
        micro-batches), for self-normalisation."""
        total, count = normalizer_sums(
            self.engine, batches, objective, self.cfg.logits_chunk_tokens
        )
        sums = torch.tensor([total, float(count)], dtype=torch.float64, device=self.engine.device)
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        return float(sums[0] / sums[1]) if sums[1] > 0 else 1.0

    @torch.no_grad()
    def score(self, records: list[Record]) -> list[list[float]]:
        """Live log-prob of every response token (no gradient, no step)."""
        out: list[list[float]] = []
        for micro in micro_batches(records, self.cfg.micro_batch_size):
            batch = collate(micro, self.pad_id, self.cfg.max_length, self.cfg.pack_records)
            batch = batch.to(self.engine.device)
            logprobs = live_logprobs(self.engine, batch, self.cfg.logits_chunk_tokens)
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

    @property
    def layout(self) -> Layout:
        """How this group splits its state, which a checkpoint must fit to load as saved."""
        return Layout(self.cfg.num_workers, self.cfg.effective_zero_stage)

    def load_checkpoint(self, ckpt_dir: str, tag: str) -> dict[str, Any]:
        """Restore what `save_checkpoint` saved into a rank that has not trained, also on
        another rank count or from one rank to ZeRO ranks and back (`mtg_ray.learner.reshard`):
        rank 0 converts the checkpoint once, beside its tag folder, while the others wait, and
        every rank loads the conversion (a rank loading the universal format restarts its
        engine with DeepSpeed's `checkpoint.load_universal`). Weights, Adam's moments and step,
        the lr schedule and the step counters cross; the group splits each batch by its own
        rank count. RNG: rank r of a checkpoint saved on W ranks gets its own saved state if
        r < W, else is seeded with `resume_seed(learner.seed, step, r)`."""
        saved = saved_layout(Path(ckpt_dir) / tag)
        route = resume_route(saved, self.layout)
        if route != NATIVE:
            engine = self.engine
            args = (ckpt_dir, tag, saved, route, engine.module, engine.optimizer)
            self._rank_0_first(convert, *args, self.cfg.num_workers)
        if (route == UNIVERSAL) != self.loads_universal:
            self.engine = None  # a fresh engine, as the load needs; the old state goes
            self._start_engine(load_universal=route == UNIVERSAL)
        _, client_state = self.engine.load_checkpoint(ckpt_dir, tag=converted_tag(tag, route))
        if self.rank < saved.world_size:
            rng = torch.load(Path(ckpt_dir) / tag / f"rng_rank{self.rank}.pt", weights_only=False)
            set_rng_state(rng)
        else:
            seed_everything(resume_seed(self.cfg.seed, int(self.engine.global_steps), self.rank))
        return (client_state or {}).get(CLIENT_KEY, {})

    def _rank_0_first(self, work: Callable[..., object], *args: Any) -> None:
        """Rank 0 runs `work(*args)` while the other ranks wait; if it fails, every rank
        raises."""
        error: BaseException | None = None
        if self.rank == 0:
            try:
                work(*args)
            except Exception as exc:  # re-raised below, after the others have heard of it
                error = exc
        outcome = [None if error is None else f"{type(error).__name__}: {error}"]
        torch.distributed.broadcast_object_list(outcome, src=0)
        if error is not None:
            raise error
        if outcome[0] is not None:
            raise RuntimeError(f"rank 0 could not convert the checkpoint: {outcome[0]}")

    # ---- weights out ----------------------------------------------------------------------

    def _buckets(self, bucket_bytes: int) -> Iterator[list[tuple[str, Tensor]]]:
        zero3 = self.cfg.effective_zero_stage == 3
        if zero3 and not self.forwarded:
            # ZeRO-3 can hand out uninitialised storage before its first forward (e.g. a sync
            # right after loading a checkpoint): one token through the model first, on every
            # rank, as the gathers are.
            with torch.no_grad():
                self.engine(
                    input_ids=torch.tensor([[self.pad_id]], device=self.engine.device),
                    use_cache=False,
                )
            self.forwarded = True
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

    # ---- direct weight sync (learner rank 0 -> every engine worker) ---------------------------

    def weight_meta(self) -> dict[str, Any]:
        """Names, dtypes and full shapes of what `broadcast_weights` sends, in order."""
        return asdict(weight_meta(self.engine.module))

    def open_weight_sync(
        self, backend: str, host: str, port: int, world_size: int, chunk_bytes: int,
        timeout_s: float,
    ) -> None:  # fmt: skip
        """Rank 0 joins the transfer group as its rank 0 (blocks until every engine worker has
        joined); the other ranks only take part in the gathers of each sync."""
        self.close_weight_sync()
        self.chunk_bytes, self.sync_timeout_s = chunk_bytes, timeout_s
        if self.rank == 0:
            device = self.engine.device if self.cfg.backend == "nccl" else None
            self.broadcaster = open_broadcaster(
                backend, host, port, world_size, chunk_bytes, timeout_s, device
            )

    def broadcast_weights(self) -> int:
        """Every rank gathers the weights bucket by bucket in the same order; rank 0 sends them.
        Returns the bytes sent (0 on other ranks)."""
        # a packed chunk may span buckets, and ZeRO-3 frees a bucket when the next gathers:
        # the sender keeps copies; the other ranks only take part in the gathers
        zero3 = self.cfg.effective_zero_stage == 3
        pairs = sent_pairs(self._buckets(self.chunk_bytes), keep=zero3 and self.rank == 0)
        if self.rank != 0:
            for _ in pairs:
                pass
            return 0
        if self.broadcaster is None:
            raise RuntimeError("broadcast_weights before open_weight_sync")
        if zero3:
            pairs = self.broadcaster.gathers(pairs)
        try:
            meta = weight_meta(self.engine.module)
            return send_or_abort(self.broadcaster, pairs, meta, self.sync_timeout_s)
        except BaseException:
            for _ in pairs:  # finish the gathers the other ranks are in, then fail
                pass
            self.close_weight_sync()  # aborted: the next sync opens a new group
            raise

    def close_weight_sync(self) -> None:
        broadcaster, self.broadcaster = self.broadcaster, None
        if broadcaster is not None:
            broadcaster.close()

    def shutdown(self) -> None:
        self.close_weight_sync()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def reduced_loss(
    out: Any, reduction: str, accumulation: int, ranks: int, global_tokens: int,
    global_records: int,
) -> Tensor:  # fmt: skip
    """What one micro-batch back-propagates so that, after DeepSpeed divides by the
    `accumulation` steps and averages over `ranks`, the step's gradient is `reduction` over the
    optimizer batch (`global_tokens` response tokens in `global_records` records)."""
    if reduction == "micro_batch_mean":
        return out.loss * accumulation
    if reduction == "sequence_mean":
        return out.record_loss.sum() * accumulation * ranks / global_records
    return out.loss * out.response_tokens * accumulation * ranks / global_tokens


def account_sources(report: dict[str, Any], out: Any, batch: Any, reduction: str) -> None:
    """Add each source's response tokens and its part of the loss, every token's term weighed
    as `reduction` weighs it (the same constant across the step cancels in the shares)."""
    counts = batch.mask.sum(-1).clamp(min=1).float()
    per_record = out.token_loss.float().sum(-1)
    if reduction == "sequence_mean":
        per_record = per_record / counts
    elif reduction == "micro_batch_mean":
        per_record = per_record / counts.sum()
    for source, tokens, loss in zip(
        batch.sources, batch.mask.sum(-1).tolist(), per_record.tolist(), strict=True
    ):
        report["tokens_by_source"][source] = report["tokens_by_source"].get(source, 0) + tokens
        report["loss_by_source"][source] = report["loss_by_source"].get(source, 0.0) + loss


def _grad_norm(module: torch.nn.Module) -> float:
    """Global L2 norm of the (already all-reduced) gradients, before clipping."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
