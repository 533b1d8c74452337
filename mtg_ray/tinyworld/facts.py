"""The facts that show a built world reproduces the paper's setting, measured on the base model.

- accuracy at temperature 1 (one sample per problem) on a sample of the train split and on the
  test split, the latter by level: the base model is partially competent, less so on hard ones;
- guided re-solving (stage 2): on the sampled train problems its plain sample got wrong, one
  guided sample each (also by level), against one fresh plain sample each as the control;
- the policy gap: mean per-token log-prob under the base model (plain prompt) of the expert
  solutions, of its own samples, and of its correct guided re-solutions.

Samples are drawn with `sampling.sample` (pure temperature sampling) and graded with
`mtg_ray.grading.grade_many`; everything follows from the seed.
"""

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mtg_ray.data import Problem
from mtg_ray.grading import grade_many
from mtg_ray.rewriting.diagnostics import mean_token_logprob
from mtg_ray.rewriting.prompts import PromptTemplate
from mtg_ray.tinyworld.faithful import is_faithful
from mtg_ray.tinyworld.sampling import response_logprobs, sample
from mtg_ray.tinyworld.styles import own_solution
from mtg_ray.tinyworld.task import Item


def _rate(verdicts: Sequence[bool]) -> float | None:
    """Share of True, or None (JSON null) for an empty list."""
    return round(sum(verdicts) / len(verdicts), 4) if verdicts else None


def _grade(responses: Sequence[str], problems: Sequence[Problem]) -> list[bool]:
    return grade_many([(r, p.reference_answer) for r, p in zip(responses, problems, strict=True)])


def _by_level(verdicts: Sequence[bool], levels: Sequence[int]) -> dict[str, float | None]:
    groups: dict[int, list[bool]] = defaultdict(list)
    for v, level in zip(verdicts, levels, strict=True):
        groups[level].append(v)
    return {str(level): _rate(groups[level]) for level in sorted(groups)}


def tokens_per_solution(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict[str, Any]], items: Sequence[Item]
) -> dict[str, float]:
    """Mean tokens of the split's expert solutions and of the same problems' own-style ones."""

    def mean(texts: list[str]) -> float:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return round(sum(map(len, ids)) / len(ids), 1)

    return {
        "expert": mean([r["solution"] for r in rows]),
        "own": mean([own_solution(i) for i in items]),
        "question": mean([r["problem"] for r in rows]),
    }


def measure(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    template: PromptTemplate,
    train: Sequence[Problem],
    test: Sequence[Problem],
    levels: dict[str, int],
    *,
    n_train_sample: int,
    max_new_tokens: int,
    seed: int,
) -> dict[str, Any]:
    """Accuracy, guided re-solving and log-prob facts for the base model (see module doc)."""
    rng = random.Random(f"tinyworld:{seed}:facts")
    picked = rng.sample(list(train), min(n_train_sample, len(train)))
    gen = {"max_new_tokens": max_new_tokens}

    plain = sample(
        model, tokenizer, [template.format(p.question) for p in picked], seed=seed, **gen
    )
    plain_ok = _grade(plain, picked)
    test_out = sample(
        model, tokenizer, [template.format(p.question) for p in test], seed=seed + 1, **gen
    )
    test_ok = _grade(test_out, test)

    wrong = [p for p, ok in zip(picked, plain_ok, strict=True) if not ok]
    guided_prompts = [template.format_guided(p.question, p.expert_solution or "") for p in wrong]
    guided = sample(model, tokenizer, guided_prompts, seed=seed + 2, **gen)
    guided_ok = _grade(guided, wrong)
    again = sample(
        model, tokenizer, [template.format(p.question) for p in wrong], seed=seed + 3, **gen
    )
    again_ok = _grade(again, wrong)

    def logprob(problems: Sequence[Problem], responses: Sequence[str]) -> float | None:
        if not problems:
            return None
        prompts = [template.format(p.question) for p in problems]
        return round(mean_token_logprob(response_logprobs(model, tokenizer, prompts, responses)), 4)

    kept = [(p, g) for p, g, ok in zip(wrong, guided, guided_ok, strict=True) if ok]
    faithful = [
        ok and is_faithful(p.expert_solution or "", g)
        for p, g, ok in zip(wrong, guided, guided_ok, strict=True)
    ]
    return {
        "train_sample": len(picked),
        "train_accuracy_t1": _rate(plain_ok),
        "train_accuracy_t1_by_level": _by_level(plain_ok, [levels[p.problem_id] for p in picked]),
        "test_accuracy_t1": _rate(test_ok),
        "test_accuracy_t1_by_level": _by_level(test_ok, [levels[p.problem_id] for p in test]),
        "guided_on_wrong": len(wrong),
        "guided_success_rate": _rate(guided_ok),
        "guided_success_by_level": _by_level(guided_ok, [levels[p.problem_id] for p in wrong]),
        "guided_faithful_by_level": _by_level(faithful, [levels[p.problem_id] for p in wrong]),
        "plain_resample_success_rate": _rate(again_ok),
        "logprob_per_token_expert": logprob(picked, [p.expert_solution or "" for p in picked]),
        "logprob_per_token_self": logprob(picked, plain),
        "logprob_per_token_guided": logprob([p for p, _ in kept], [g for _, g in kept]),
    }
