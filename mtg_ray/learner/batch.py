"""Turning training records into padded tensors: the learner's only view of the data.

A record is trained as one sequence prompt + response; only response positions count in the
loss. Behaviour log-probs are aligned to the same positions, so the live log-probs of the forward
pass and the stored ones meet token by token.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from mtg_ray.data import Record
from mtg_ray.objectives import IGNORE_INDEX


@dataclass(frozen=True)
class Batch:
    """Tensors of B records, padded on the right to length L.

    input_ids, attention_mask: (B, L). labels: (B, L-1), the next token at each position,
    IGNORE_INDEX outside responses. mask: (B, L-1) response positions. behaviour_logprobs:
    (B, L-1), 0 where absent. has_behaviour: (B,). standin_logprobs, has_standin: the same for
    expert records' stand-in behaviour (`Record.standin_logprobs`). sources: per record.
    truncated: records whose response was cut to fit max_length.

    Packed (`collate(..., pack=True)`): the model also gets the records without padding, back to
    back in one row: packed_input_ids and packed_position_ids (1, T) (positions restart at 0 for
    each record, which transformers turns into attention within each record), and
    packed_index (B, L-1): where each padded label position sits in the packed row's (T-1)
    next-token positions, so the live log-probs go back to the padded layout.
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    mask: Tensor
    behaviour_logprobs: Tensor
    has_behaviour: Tensor
    standin_logprobs: Tensor
    has_standin: Tensor
    sources: tuple[str, ...]
    truncated: int
    packed_input_ids: Tensor | None = None
    packed_position_ids: Tensor | None = None
    packed_index: Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def num_response_tokens(self) -> int:
        return int(self.mask.sum())

    def to(self, device: torch.device | str) -> "Batch":
        """The same batch with its tensors on `device` (the model's)."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)


def collate(records: Sequence[Record], pad_id: int, max_length: int, pack: bool = False) -> Batch:
    """Pad `records` into a Batch (and with `pack`, also lay them out back to back); a response
    that does not fit is cut at max_length."""
    if not records:
        raise ValueError("cannot collate an empty list of records")
    seqs, spans, truncated = [], [], 0
    for rec in records:
        prompt, response = list(rec.prompt_token_ids), list(rec.response_token_ids)
        if len(prompt) >= max_length:
            raise ValueError(
                f"record {rec.problem_id!r}: prompt of {len(prompt)} tokens does not fit "
                f"learner.max_length={max_length}"
            )
        keep = min(len(response), max_length - len(prompt))
        truncated += keep < len(response)
        seqs.append(prompt + response[:keep])
        spans.append((len(prompt), keep))
    length = max(len(s) for s in seqs)
    bsz = len(records)
    input_ids = torch.full((bsz, length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((bsz, length), dtype=torch.long)
    labels = torch.full((bsz, length - 1), IGNORE_INDEX, dtype=torch.long)
    behaviour = torch.zeros((bsz, length - 1), dtype=torch.float32)
    has_behaviour = torch.zeros(bsz, dtype=torch.bool)
    standin = torch.zeros((bsz, length - 1), dtype=torch.float32)
    has_standin = torch.zeros(bsz, dtype=torch.bool)
    for i, (rec, seq, (start, keep)) in enumerate(zip(records, seqs, spans, strict=True)):
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask[i, : len(seq)] = 1
        # position t predicts token t+1: response token j sits at label index start - 1 + j
        labels[i, start - 1 : start - 1 + keep] = input_ids[i, start : start + keep]
        for lps, values, has in (
            (rec.behaviour_logprobs, behaviour, has_behaviour),
            (rec.standin_logprobs, standin, has_standin),
        ):
            if lps is not None:
                has[i] = True
                values[i, start - 1 : start - 1 + keep] = torch.tensor(
                    lps[:keep], dtype=torch.float32
                )
    batch = Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        labels=labels,
        mask=labels != IGNORE_INDEX,
        behaviour_logprobs=behaviour,
        has_behaviour=has_behaviour,
        standin_logprobs=standin,
        has_standin=has_standin,
        sources=tuple(r.source for r in records),
        truncated=truncated,
    )
    return _packed(batch, seqs) if pack else batch


def _packed(batch: Batch, seqs: list[list[int]]) -> Batch:
    offsets = [0]
    for seq in seqs[:-1]:
        offsets.append(offsets[-1] + len(seq))
    index = torch.zeros_like(batch.labels)
    for i, (seq, offset) in enumerate(zip(seqs, offsets, strict=True)):
        index[i, : len(seq) - 1] = torch.arange(offset, offset + len(seq) - 1)
    return replace(
        batch,
        packed_input_ids=torch.tensor([[t for seq in seqs for t in seq]], dtype=torch.long),
        packed_position_ids=torch.cat([torch.arange(len(seq)) for seq in seqs])[None],
        packed_index=index,
    )


def shard(records: Sequence[Record], num_shards: int) -> list[list[Record]]:
    """Round-robin split into equal shards (len(records) must be a multiple of num_shards)."""
    if len(records) % num_shards:
        raise ValueError(f"{len(records)} records do not split over {num_shards} learner ranks")
    return [list(records[r::num_shards]) for r in range(num_shards)]


def by_length(records: Sequence[Record]) -> list[Record]:
    """The records shortest first (prompt + response tokens), so that consecutive micro-batches
    hold records of similar length and pad less. Under learner.loss_reduction=token_mean a
    step's gradient is the token mean over the whole optimizer batch, whatever the grouping;
    under micro_batch_mean the grouping is part of the objective (keep the given order)."""
    return sorted(records, key=lambda r: len(r.prompt_token_ids) + len(r.response_token_ids))


def micro_batches(records: Sequence[Record], micro_batch_size: int) -> list[list[Record]]:
    """Consecutive chunks of micro_batch_size records."""
    return [
        list(records[i : i + micro_batch_size]) for i in range(0, len(records), micro_batch_size)
    ]


def response_tokens(records: Sequence[Record], max_length: int) -> int:
    """Response tokens of `records` after cutting to max_length (pass the records that enter
    the loss: `Objective.trains`)."""
    return sum(
        min(len(r.response_token_ids), max(0, max_length - len(r.prompt_token_ids)))
        for r in records
    )
