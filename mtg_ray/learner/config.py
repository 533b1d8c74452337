"""LearnerConfig: the DeepSpeed learner group (configs/learner/*.yaml); TrainConfig: what the
training loop runs over (`train:` in configs/tiny.yaml)."""

from dataclasses import dataclass, field

from mtg_ray.checks import at_least, one_of, positive, require
from mtg_ray.objectives import METHODS, list_objectives

ZERO_STAGES = (0, 1, 2, 3)
DTYPES = ("auto", "float32", "bfloat16")
BACKENDS = ("gloo", "nccl")
# token_mean: the gradient of the token-mean loss over the whole optimizer batch.
# sequence_mean: of the mean over the batch's records of each record's token-mean loss.
# micro_batch_mean: the authors' trainer: each micro-batch's token-mean loss back-propagated as
# is, so a rank's gradient is the sum over its micro-batches (averaged over ranks), then clipped.
LOSS_REDUCTIONS = ("token_mean", "sequence_mean", "micro_batch_mean")
# The study's lr selection on the shipped tiny world (docs/lr_selection.json, written by
# `scripts/run.py study`); a test keeps the two equal.
TINY_METHOD_LR: dict[str, float] = {
    "sft": 1e-6, "dft": 1e-5, "dr_sft": 1e-6, "dr_dft": 3e-4, "dr_is": 3e-4,
}  # fmt: skip


@dataclass(frozen=True)
class LearnerConfig:
    """The learner group and its optimisation (the model it starts from is `model.path`).

    num_workers: DeepSpeed ranks (one Ray actor each).
    cpus_per_worker / gpus_per_worker: each rank's placement-group bundle. backend: gloo (CPU)
    | nccl (GPU). zero_stage: DeepSpeed ZeRO stage. dtype: auto = bfloat16 on GPU, float32 on
    CPU. train_batch_size: records per optimizer step (all ranks together); micro_batch_size:
    records per forward on one rank; gradient accumulation is their ratio. lr, warmup_ratio,
    min_lr_ratio: linear warmup then cosine decay to min_lr_ratio * lr over the run's steps
    (which the data and `train` decide). weight_decay, betas, eps: AdamW. grad_clip: max
    global gradient norm. max_length: prompt + response tokens; longer responses are cut.
    loss_reduction: how the micro-batches' losses combine (LOSS_REDUCTIONS).
    gradient_checkpointing: recompute activations in backward. logits_chunk_tokens: > 0 computes
    token log-probs from the decoder's hidden states that many positions at a time, recomputing
    each chunk's logits in backward, so a micro-batch's (tokens x vocabulary) float32 logits
    never exist at once (large vocabularies); 0: from the full logits. pack_records: each
    micro-batch's records run back to back in one row without padding (attention stays within
    each record), so varied lengths cost no padding. seed: parameter-free randomness (dropout,
    shuffles). node_resource: a custom Ray resource each rank's bundle asks one unit of, so the
    ranks go only to nodes started with it; empty: any node.
    """

    num_workers: int = 2
    cpus_per_worker: int = 1
    gpus_per_worker: int = 0
    backend: str = "gloo"
    zero_stage: int = 2
    dtype: str = "auto"
    train_batch_size: int = 32
    micro_batch_size: int = 8
    lr: float = 2e-4
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    max_length: int = 512
    loss_reduction: str = "token_mean"
    gradient_checkpointing: bool = False
    logits_chunk_tokens: int = 0
    pack_records: bool = False
    seed: int = 0
    node_resource: str = ""

    def __post_init__(self) -> None:
        positive("learner.lr", self.lr)
        at_least("learner.cpus_per_worker", self.cpus_per_worker, 1)
        at_least("learner.gpus_per_worker", self.gpus_per_worker, 0)
        at_least("learner.max_length", self.max_length, 2)
        positive("learner.grad_clip", self.grad_clip)
        at_least("learner.weight_decay", self.weight_decay, 0)
        positive("learner.eps", self.eps)
        require(all(0 <= b < 1 for b in self.betas), "learner.betas", self.betas, "each in [0, 1)")
        require(0 <= self.min_lr_ratio <= 1, "learner.min_lr_ratio", self.min_lr_ratio, "in [0, 1]")
        at_least("learner.num_workers", self.num_workers, 1)
        one_of("learner.zero_stage", self.zero_stage, ZERO_STAGES)
        one_of("learner.dtype", self.dtype, DTYPES)
        one_of("learner.loss_reduction", self.loss_reduction, LOSS_REDUCTIONS)
        one_of("learner.backend", self.backend, BACKENDS)
        at_least("learner.micro_batch_size", self.micro_batch_size, 1)
        per_step = self.micro_batch_size * self.num_workers
        require(
            self.train_batch_size % per_step == 0, "learner.train_batch_size",
            self.train_batch_size,
            f"must be a multiple of learner.micro_batch_size * learner.num_workers ({per_step})",
        )  # fmt: skip
        at_least("learner.logits_chunk_tokens", self.logits_chunk_tokens, 0)
        require(
            0 <= self.warmup_ratio < 1, "learner.warmup_ratio", self.warmup_ratio,
            "must be in [0, 1)",
        )  # fmt: skip

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.train_batch_size // (self.micro_batch_size * self.num_workers)

    @property
    def effective_zero_stage(self) -> int:
        """The ZeRO stage DeepSpeed runs: 0 with one rank, where there is nothing to partition
        and ZeRO would only add gradient-bucket copies (scripts/bench/learner.py, 1 rank: step
        time 1.20x a plain loop at stage 2, 1.02x at stage 0)."""
        return self.zero_stage if self.num_workers > 1 else 0

    @property
    def torch_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "bfloat16" if self.backend == "nccl" else "float32"


# What a learner group's ranks are started with (their processes, placement and process group):
# a group is restarted in place only for configs that agree on these (`LearnerRank.restart`).
GROUP_FIELDS = ("num_workers", "backend", "cpus_per_worker", "gpus_per_worker", "node_resource")


def group_changes(old: LearnerConfig, new: LearnerConfig) -> list[str]:
    """The GROUP_FIELDS on which `new` differs from `old`."""
    return [k for k in GROUP_FIELDS if getattr(old, k) != getattr(new, k)]


def deepspeed_config(cfg: LearnerConfig, load_universal: bool = False) -> dict:
    """The DeepSpeed JSON config for `cfg` (optimizer and scheduler are passed as objects);
    `load_universal`: its checkpoint loads read DeepSpeed's universal format
    (`mtg_ray.learner.reshard`)."""
    ds: dict = {
        "train_batch_size": cfg.train_batch_size,
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.effective_zero_stage},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }
    if cfg.effective_zero_stage == 3:
        ds["zero_optimization"].update(
            stage3_param_persistence_threshold=0, stage3_prefetch_bucket_size=0
        )
    if cfg.torch_dtype == "bfloat16":
        ds["bf16"] = {"enabled": True}
    if load_universal:
        ds["checkpoint"] = {"load_universal": True}
    return ds


@dataclass(frozen=True)
class TrainConfig:
    """What the `train` job trains: `dataset` (rewritten: this run's rewrite; expert: the raw
    demonstrations; or a records parquet file or folder) with `objective` (a registered
    objective; the `main` job picks each method's own). epochs over the data; max_steps caps
    them (0 = no cap). eval_every / save_every: optimizer steps between evaluations /
    checkpoints (0 = only at the end).

    Learning rates, one procedure for every method (`select_lr`): each method trains once per
    `lr_grid` value on the train split less its last `validation_problems` problems, and the
    one with the best avg@`validation_n` on those held-out problems is chosen (ties: the
    smaller). `method_lr` holds a selection (method -> peak lr) and is what the jobs train
    with; a method it does not list trains at `learner.lr`. The default is the selection the
    study made on the default tiny world (docs/lr_selection.json, checked by a test).
    """

    dataset: str = "rewritten"
    objective: str = "dft"
    epochs: int = 2
    max_steps: int = 0
    eval_every: int = 0
    save_every: int = 16
    lr_grid: tuple[float, ...] = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
    validation_problems: int = 300
    validation_n: int = 4
    method_lr: dict[str, float] = field(default_factory=lambda: dict(TINY_METHOD_LR))

    def __post_init__(self) -> None:
        at_least("train.epochs", self.epochs, 1)
        for key in ("max_steps", "eval_every", "save_every"):
            at_least(f"train.{key}", getattr(self, key), 0)
        for method, lr in self.method_lr.items():
            positive(f"train.method_lr.{method}", lr)
        unknown = sorted(set(self.method_lr) - set(METHODS))
        require(
            not unknown, "train.method_lr", self.method_lr,
            f"names unknown methods {unknown}; methods are {list(METHODS)}",
        )  # fmt: skip
        require(
            bool(self.lr_grid) and min(self.lr_grid) > 0, "train.lr_grid", list(self.lr_grid),
            "must be one or more lrs, each > 0",
        )  # fmt: skip
        at_least("train.validation_problems", self.validation_problems, 1)
        at_least("train.validation_n", self.validation_n, 1)
        one_of("train.objective", self.objective, list_objectives())
