"""Pretraining the tiny world's base model: own-style solutions, plus guided re-solving.

The corpus is drawn from the same problem distribution as the train split but never contains a
train or test expression. It has three kinds of example, all scored on the response only:

- drill: one-operation problems (level 0, never in the splits), plain prompt -> own style: the
  arithmetic facts, cheaply (short sequences dense in results);
- plain: the plain prompt -> an own-style solution; a few (`slip_rate`) carry one arithmetic
  slip, so the model learns to err now and then, as base models do; a few others
  (`expert_style_rate`) are written in the expert's style, so that style is inside the base
  model's support but unlikely under it;
- guided: the guided prompt with an expert-style reference -> the correct own-style solution, so
  the model learns to read a reference and retell it in its own style (the paper's stage 2).

Drill and plain examples cover the pretraining levels only (the world's `pretrain_levels`:
level 4 is never among them), so the base model never writes a level-4 solution unaided and
the train split's level-4 problems carry skill it lacks; guided examples follow their own mix
(`guided_levels`: level 4 among them), so it can retell a level-4 reference in its own
style, as a model that reads a solution it could not have found.
Training is a few thousand AdamW steps (warmup then cosine) and, with the data, weights
and thread count fixed, bit-for-bit deterministic on one machine.
"""

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mtg_ray.objectives.logprobs import IGNORE_INDEX
from mtg_ray.rewriting.prompts import PromptTemplate
from mtg_ray.tinyworld.styles import expert_solution, own_solution
from mtg_ray.tinyworld.task import Expr, sample_items

KINDS = ("drill", "plain", "guided")
POOL = 16  # batches drawn from one length-sorted pool


@dataclass(frozen=True)
class Example:
    """One pretraining sequence: the loss covers `response` (and the eos after it) only.

    kind: "drill" (a one-operation problem, plain prompt), "plain" or "guided".
    """

    prompt: str
    response: str
    kind: str = "plain"


@dataclass(frozen=True)
class Schedule:
    """Optimisation of the pretraining run."""

    steps: int
    batch_size: int
    lr: float
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0


def build_corpus(
    rng: random.Random,
    counts: dict[str, int],
    slip_rate: float,
    expert_style_rate: float,
    level_weights: dict[int, float],
    exclude: set[Expr],
    template: PromptTemplate,
    guided_level_weights: dict[int, float] | None = None,
) -> list[Example]:
    """`counts[kind]` examples of each kind, none on an excluded expression; guided examples
    on `guided_level_weights` (default: `level_weights`)."""
    corpus = []
    for item in sample_items(rng, counts.get("drill", 0), {0: 1.0}, exclude, unique=False):
        corpus.append(Example(template.format(item.question), own_solution(item), "drill"))
    for item in sample_items(rng, counts.get("plain", 0), level_weights, exclude, unique=False):
        if rng.random() < expert_style_rate:
            response = expert_solution(item, rng)
        else:
            response = own_solution(item, rng if rng.random() < slip_rate else None)
        corpus.append(Example(template.format(item.question), response, "plain"))
    guided_levels = guided_level_weights or level_weights
    for item in sample_items(rng, counts.get("guided", 0), guided_levels, exclude, unique=False):
        prompt = template.format_guided(item.question, expert_solution(item, rng))
        corpus.append(Example(prompt, own_solution(item), "guided"))
    return corpus


def make_batches(
    corpus: Sequence[Example],
    batch_size: int,
    rng: random.Random,
    drill_first: float = 0.75,
) -> list[list[Example]]:
    """Batches of one kind each (kinds differ a lot in length, so mixing them would mostly add
    padding), each cut from a length-sorted pool of POOL batches of shuffled examples (less
    padding still); drill batches hold twice `batch_size` (they are short).

    A curriculum: `drill_first` of the drill batches come first (arithmetic facts before
    composing them), the rest are shuffled in with the plain and guided batches.
    """
    by_kind: dict[str, list[list[Example]]] = {}
    for name in KINDS:
        kind = [e for e in corpus if e.kind == name]
        rng.shuffle(kind)
        size = 2 * batch_size if name == "drill" else batch_size
        by_kind[name] = []
        for start in range(0, len(kind), size * POOL):  # little padding: similar lengths
            pool = sorted(
                kind[start : start + size * POOL], key=lambda e: len(e.prompt + e.response)
            )
            batches = [pool[i : i + size] for i in range(0, len(pool), size)]
            rng.shuffle(batches)
            by_kind[name] += batches
    n_first = round(len(by_kind["drill"]) * drill_first)
    rest = by_kind["drill"][n_first:] + by_kind["plain"] + by_kind["guided"]
    rng.shuffle(rest)
    return by_kind["drill"][:n_first] + rest


def encode(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example]
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example: prompt + response + eos, labels masked on the prompt."""
    prompts = tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"]
    responses = tokenizer([e.response for e in examples], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    out = []
    for p, r in zip(prompts, responses, strict=True):
        out.append((p + r + [eos], [IGNORE_INDEX] * len(p) + r + [eos]))
    return out


def collate(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels for one batch."""
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def lr_at(step: int, schedule: Schedule) -> float:
    """Linear warmup, then cosine decay to `min_lr_frac` of the peak."""
    warmup = max(1, round(schedule.steps * schedule.warmup_frac))
    if step < warmup:
        return schedule.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, schedule.steps - warmup)
    floor = schedule.min_lr_frac
    return schedule.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batches: Sequence[Sequence[Example]],
    schedule: Schedule,
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Train `model` in place, one step per batch; returns the loss of every step."""
    pad_id = tokenizer.pad_token_id
    assert pad_id is not None
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": schedule.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=schedule.lr,
        betas=(0.9, 0.98),
    )
    model.train()
    losses = []
    for step, batch in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, schedule)
        loss = model(**collate(encode(tokenizer, batch), pad_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log is not None and (step % 50 == 0 or step == len(batches) - 1):
            log(f"pretrain step {step + 1}/{len(batches)} loss {losses[-1]:.4f}")
    model.eval()
    return losses
