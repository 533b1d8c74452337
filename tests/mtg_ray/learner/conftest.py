"""A record factory for the learner's pure tests."""

import pytest

from mtg_ray.data import Record


def make_record(prompt: list[int], response: list[int], logprobs: list[float] | None) -> Record:
    expert = logprobs is None
    return Record(
        problem_id="p",
        prompt="q",
        reference_answer="1",
        expert_solution="e",
        response="r",
        prompt_token_ids=prompt,
        response_token_ids=response,
        source="expert" if expert else "self",
        correct=True,
        behaviour_logprobs=logprobs,
        policy_version=-1 if expert else 0,
        temperature=None if expert else 1.0,
        top_p=None if expert else 1.0,
        max_tokens=None if expert else 8,
        seed=None,
    )


@pytest.fixture
def record():
    return make_record
