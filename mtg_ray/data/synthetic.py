"""Synthetic training records for tests, benchmarks and device checks: short arithmetic
problems from all three sources, built with any HF tokenizer."""

import random
from typing import Any

from mtg_ray.data.schema import SOURCES, Record


def arithmetic_records(n: int, tokenizer: Any, seed: int = 0) -> list[Record]:
    """`n` records `a+b` cycling through the sources; self/guided records carry made-up
    behaviour log-probs spread around a tiny model's scale, so importance weights vary."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        prompt = f"Problem: {a}+{b}\nSolution:"
        response = f" {a}+{b}={a + b}. \\boxed{{{a + b}}}"
        p_ids = tokenizer(prompt)["input_ids"]
        r_ids = tokenizer(response)["input_ids"] + [tokenizer.eos_token_id]
        source = SOURCES[i % len(SOURCES)]
        expert = source == "expert"
        out.append(
            Record(
                problem_id=f"p{i}",
                prompt=prompt,
                reference_answer=str(a + b),
                expert_solution=response,
                response=response,
                prompt_token_ids=p_ids,
                response_token_ids=r_ids,
                source=source,
                correct=True,
                behaviour_logprobs=None
                if expert
                else [-4.6 + rng.uniform(-0.5, 0.5) for _ in r_ids],
                policy_version=-1 if expert else 0,
                temperature=None if expert else 1.0,
                top_p=None if expert else 1.0,
                max_tokens=None if expert else 64,
                seed=None,
            )
        )
    return out


def random_records(
    n: int, prompt_len: int, response_len: int, vocab: int, seed: int = 0
) -> list[Record]:
    """`n` expert records of random token ids in [4, vocab): for benchmarks, where a step's
    cost depends only on the shapes."""
    rng = random.Random(seed)
    return [
        Record(
            problem_id=f"r{i}", prompt="", reference_answer="0", expert_solution="e",
            response="", prompt_token_ids=[rng.randrange(4, vocab) for _ in range(prompt_len)],
            response_token_ids=[rng.randrange(4, vocab) for _ in range(response_len)],
            source="expert", correct=True, behaviour_logprobs=None, policy_version=-1,
            temperature=None, top_p=None, max_tokens=None, seed=None,
        )
        for i in range(n)
    ]  # fmt: skip
