"""Sampling from and scoring responses under a transformers causal LM, on CPU, in batches.

Small helpers for the tiny world's facts (and for any CPU-side check): `sample` draws one
response per prompt with pure temperature sampling (top-k and top-p off, so it is the model's own
distribution), and `response_logprobs` scores given responses token by token. A response is the
text after its prompt up to the eos token, which is scored too, as in training.
"""

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mtg_ray.objectives.logprobs import IGNORE_INDEX, token_logprobs
from mtg_ray.tinyworld.pretrain import Example, collate, encode


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    seed: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 256,
) -> list[str]:
    """One sampled response per prompt, in prompt order; the caller's torch RNG is untouched.

    Prompts are batched by length (left padding), so a seed and a prompt list fix the output.
    """
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    out: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                enc = tokenizer(
                    [prompts[i] for i in rows],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                gen = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=0,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
                texts = tokenizer.batch_decode(
                    gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
                )
                for i, text in zip(rows, texts, strict=True):
                    out[i] = text
    finally:
        tokenizer.padding_side = side
    return out


@torch.no_grad()
def response_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 64,
) -> list[list[float]]:
    """log pi(token) for every response token and the closing eos, one list per response."""
    pad_id = tokenizer.pad_token_id
    assert pad_id is not None
    examples = [Example(p, r) for p, r in zip(prompts, responses, strict=True)]
    out: list[list[float]] = []
    for start in range(0, len(examples), batch_size):
        batch = collate(encode(tokenizer, examples[start : start + batch_size]), pad_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        logp = token_logprobs(logits[:, :-1], labels)
        for row in range(labels.shape[0]):
            out.append(logp[row][labels[row] != IGNORE_INDEX].tolist())
    return out
