"""One forward pass: live log-probs, the objective, and the importance-weight evidence.

The importance ratio is taken from the same forward pass as the loss: the live token log-probs
feed both the objective and the per-record diagnostics. Only self-normalisation over the whole
optimizer batch needs its constant before any backward, from one pre-pass without gradient
(`normalizer_sums`).
"""

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mtg_ray.learner.batch import Batch
from mtg_ray.objectives import Objective, compute_objective, normalizer_terms, token_logprobs
from mtg_ray.objectives.logprobs import head_logprobs


@dataclass(frozen=True)
class ForwardOutput:
    """loss: token-mean objective over the batch's response tokens (differentiable).
    record_loss: (B,) each record's own token-mean of it (differentiable; the
    `sequence_mean` reduction). token_loss: (B,T) the per-token terms, detached (0 outside the
    responses), for the accounting by source.

    log_ratio: (B,) mean over response tokens of log pi_theta - log pi_behaviour (NaN for
    records without behaviour log-probs). logprob_mean: (B,) mean live token log-prob.
    clipped_tokens: tokens whose weight was truncated. response_tokens: tokens in the loss.
    """

    loss: Tensor
    record_loss: Tensor
    token_loss: Tensor
    log_ratio: Tensor
    logprob_mean: Tensor
    clipped_tokens: int
    response_tokens: int


def live_logprobs(model: nn.Module, batch: Batch, chunk_tokens: int = 0) -> Tensor:
    """(B, L-1) log-prob of each next token under `model` (an HF causal LM, or a DeepSpeed
    engine around one), 0 outside responses. A packed batch runs as one row without padding.
    chunk_tokens > 0: through the decoder's hidden states and the head `chunk_tokens` positions
    at a time (`head_logprobs`; every rank runs as many chunks as the rank with the most, as
    each is a gather under ZeRO-3), so the (B, L, V) logits never exist; 0: from the full logits.

    Both run the model's own forward (through the engine: DeepSpeed's per-forward bookkeeping
    must see each forward, or ZeRO-3 drops gradients). The chunked path asks it for no logits
    (`logits_to_keep` empty) and takes the decoder's output as it passes."""
    if batch.packed_input_ids is None:
        inputs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        labels = batch.labels
    else:  # no attention mask: transformers keeps attention within each packed record
        inputs = dict(input_ids=batch.packed_input_ids, position_ids=batch.packed_position_ids)
        labels = batch.packed_input_ids[:, 1:]
    if chunk_tokens <= 0:
        logits = model(**inputs, use_cache=False).logits
        logprobs = token_logprobs(logits[:, :-1], labels)
    else:
        lm = getattr(model, "module", model)
        hidden = decoder_output(model, lm.get_decoder(), inputs)[:, :-1]
        chunks = ranks_max(-(-hidden.shape[0] * hidden.shape[1] // chunk_tokens), hidden.device)
        logprobs = head_logprobs(hidden, lm.get_output_embeddings(), labels, chunk_tokens, chunks)
    if batch.packed_index is None:
        return logprobs
    return torch.where(batch.mask, logprobs[0][batch.packed_index], 0.0)


def decoder_output(model: nn.Module, decoder: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    """The final hidden states (B, L, H) of `decoder` (the model's decoder) in one forward of
    `model` that computes no logits."""
    seen: list[Tensor] = []
    handle = decoder.register_forward_hook(lambda _m, _a, out: seen.append(out.last_hidden_state))
    try:
        none = torch.empty(0, dtype=torch.long, device=inputs["input_ids"].device)
        model(**inputs, use_cache=False, logits_to_keep=none)
    finally:
        handle.remove()
    return seen[0]


def ranks_max(value: int, device: torch.device) -> int:
    """The largest `value` over the process group's ranks (`value` itself without one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def forward_objective(
    model: nn.Module,
    batch: Batch,
    objective: Objective,
    normalizer: float | None = None,
    chunk_tokens: int = 0,
) -> ForwardOutput:
    """The objective's loss on `batch` and the importance-weight evidence, from one forward.
    `normalizer`: the optimizer batch's self-normalisation constant (see `normalizer_sums`);
    `chunk_tokens`: see `live_logprobs`."""
    logprobs = live_logprobs(model, batch, chunk_tokens)
    out = compute_objective(
        objective, logprobs, batch.mask, batch.behaviour_logprobs, batch.has_behaviour,
        normalizer, batch.standin_logprobs, batch.has_standin,
    )  # fmt: skip
    record_loss = out.token_loss.sum(-1) / batch.mask.sum(-1).clamp(min=1)
    with torch.no_grad():
        mask = batch.mask.float()
        count = mask.sum(-1).clamp(min=1.0)
        lp = logprobs.detach().float()
        diff = (lp - batch.behaviour_logprobs) * mask
        log_ratio = torch.where(
            batch.has_behaviour, diff.sum(-1) / count, torch.full_like(count, float("nan"))
        )
        logprob_mean = (lp * mask).sum(-1) / count
    return ForwardOutput(
        loss=out.loss,
        record_loss=record_loss,
        token_loss=out.token_loss.detach(),
        log_ratio=log_ratio,
        logprob_mean=logprob_mean,
        clipped_tokens=int((out.clipped & batch.mask).sum()),
        response_tokens=batch.num_response_tokens,
    )


@torch.no_grad()
def normalizer_sums(
    model: nn.Module, batches: list[Batch], objective: Objective, chunk_tokens: int = 0
) -> tuple[float, int]:
    """(sum of untruncated weights, weighted tokens) over `batches` under `model`: one rank's
    share of the self-normalisation constant (an extra forward without gradient)."""
    total, count = 0.0, 0
    for batch in batches:
        t, c = normalizer_terms(
            live_logprobs(model, batch, chunk_tokens),
            batch.behaviour_logprobs,
            batch.mask,
            batch.has_behaviour,
            objective.config,
        )
        total, count = total + t, count + c
    return total, count
