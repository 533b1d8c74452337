"""The registered objectives: SFT, DFT (the paper's two losses), and importance-sampled SFT
with a true ratio (`is`; `is_dft` weighs expert rows by DFT's probability instead of 1).

Every objective has one signature:
    fn(logprobs (B,T), mask (B,T), behaviour_logprobs (B,T), has_behaviour (B,), cfg,
       normalizer=None) -> ObjectiveOutput
and returns a surrogate whose gradient is -sum_t sg(w_t) grad log pi_theta(y_t) / N, the
token-mean over the N response tokens of the batch it is given. How the micro-batches of an
optimizer step combine is the learner's `loss_reduction` (mtg_ray.learner.rank). `normalizer`
is the optimizer batch's self-normalisation constant (`is` objectives with self_normalize).
"""

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from mtg_ray.objectives.config import ObjectiveConfig
from mtg_ray.objectives.importance import importance_weights, masked_mean
from mtg_ray.objectives.registry import register_objective


@dataclass(frozen=True)
class ObjectiveOutput:
    """loss: scalar, the token-mean of token_loss. token_loss: (B,T) per-token surrogate
    -w_t log pi_theta(y_t) (differentiable, 0 outside the mask), for the learner's other
    reductions and its per-source accounting. token_weights, log_ratio, clipped: (B,T),
    detached."""

    loss: Tensor
    token_loss: Tensor
    token_weights: Tensor
    log_ratio: Tensor
    clipped: Tensor


def token_nll(logprobs: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
    """(B,T) -weights * logprobs on masked tokens, 0 elsewhere; padding never touches the
    graph."""
    mask = mask.bool()
    safe = torch.where(mask, logprobs, torch.zeros_like(logprobs))
    return torch.where(mask, -weights * safe, torch.zeros_like(safe))


def weighted_nll(logprobs: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
    """-mean over masked tokens of weights * logprobs."""
    return masked_mean(token_nll(logprobs, weights, mask), mask.bool())


def _dft_weights(logprobs: Tensor, mask: Tensor) -> Tensor:
    safe = torch.where(mask.bool(), logprobs.detach(), torch.zeros_like(logprobs))
    return torch.exp(safe)


def _plain(logprobs: Tensor, mask: Tensor, weights: Tensor) -> ObjectiveOutput:
    zeros = torch.zeros_like(logprobs).detach()
    token_loss = token_nll(logprobs, weights, mask)
    return ObjectiveOutput(
        loss=masked_mean(token_loss, mask.bool()),
        token_loss=token_loss,
        token_weights=weights.detach(),
        log_ratio=zeros,
        clipped=torch.zeros_like(mask, dtype=torch.bool),
    )


@register_objective("sft")
def sft(logprobs, mask, behaviour_logprobs, has_behaviour, cfg: ObjectiveConfig, normalizer=None):
    """Token-mean cross-entropy."""
    return _plain(logprobs, mask, torch.ones_like(logprobs))


@register_objective("dft")
def dft(logprobs, mask, behaviour_logprobs, has_behaviour, cfg: ObjectiveConfig, normalizer=None):
    """DFT (arXiv 2508.05629): cross-entropy times the detached token probability, on every
    row whatever its source (the paper's DR+DFT is this loss on the rewritten data)."""
    return _plain(logprobs, mask, _dft_weights(logprobs, mask))


@register_objective("is", importance=True)
def importance_sampled(
    logprobs: Tensor,
    mask: Tensor,
    behaviour_logprobs: Tensor,
    has_behaviour: Tensor,
    cfg: ObjectiveConfig,
    normalizer: float | None = None,
) -> ObjectiveOutput:
    """SFT weighted by truncated pi_theta / pi_behaviour (our extension: the paper has no true
    ratio); expert rows, whose behaviour policy is unknown, weighted per cfg.expert_weight (1,
    or DFT's detached probability)."""
    weights, log_ratio, clipped = importance_weights(
        logprobs, behaviour_logprobs, mask, has_behaviour, cfg, normalizer
    )
    if cfg.expert_weight == "dft":
        expert_rows = (~has_behaviour.bool()).unsqueeze(1).expand_as(weights)
        weights = torch.where(expert_rows, _dft_weights(logprobs, mask), weights)
    token_loss = token_nll(logprobs, weights, mask)
    return ObjectiveOutput(
        loss=masked_mean(token_loss, mask.bool()),
        token_loss=token_loss,
        token_weights=weights,
        log_ratio=log_ratio,
        clipped=clipped,
    )


@register_objective("is_dft", importance=True)
def is_dft(
    logprobs, mask, behaviour_logprobs, has_behaviour, cfg: ObjectiveConfig, normalizer=None
):
    """A hybrid (our extension, formerly named dr_dft): true-ratio weights for sampled
    (self/guided) records, DFT's detached probability for expert records; `is` with
    expert_weight=dft whatever that setting says."""
    cfg = replace(cfg, expert_weight="dft")
    return importance_sampled(logprobs, mask, behaviour_logprobs, has_behaviour, cfg, normalizer)


def reweigh_expert_rows(
    out: ObjectiveOutput,
    logprobs: Tensor,
    mask: Tensor,
    has_behaviour: Tensor,
    mode: str,
    standin_logprobs: Tensor | None = None,
    has_standin: Tensor | None = None,
    clip: float = 2.0,
) -> ObjectiveOutput:
    """`out` with the expert rows' (no behaviour log-probs) token weights replaced as `mode`
    says (registry.EXPERT_ROWS): keep, dft (detached token probability), ratio (min(clip,
    pi_theta / b) per token, b from `standin_logprobs`: every expert row needs them), drop
    (0). Sampled rows keep the objective's weights. `clipped` gains the expert tokens whose
    ratio was truncated, so `train/clipped_fraction` says how often the clip binds."""
    if mode == "keep":
        return out
    mask = mask.bool()
    expert = (~has_behaviour.bool()).unsqueeze(1) & mask
    clipped = out.clipped
    if mode == "dft":
        weights = _dft_weights(logprobs, mask)
    elif mode == "ratio":
        rows = ~has_behaviour.bool()
        if standin_logprobs is None or has_standin is None or bool((rows & ~has_standin).any()):
            raise ValueError(
                "expert_rows=ratio needs the stand-in log-probs of every expert record "
                "(Record.standin_logprobs, scored when the batch is rewritten)"
            )
        diff = torch.where(expert, logprobs.detach() - standin_logprobs, torch.zeros_like(logprobs))
        weights = torch.exp(diff.clamp(max=20.0)).clamp(max=clip)
        clipped = clipped | (expert & (diff > math.log(clip)))
    elif mode == "drop":
        weights = torch.zeros_like(logprobs)
    else:
        raise ValueError(f"unknown expert_rows mode {mode!r}")
    weights = torch.where(expert, weights, out.token_weights).detach()
    token_loss = token_nll(logprobs, weights, mask)
    loss = masked_mean(token_loss, mask)
    return replace(
        out, loss=loss, token_loss=token_loss, token_weights=weights, clipped=clipped.detach()
    )
