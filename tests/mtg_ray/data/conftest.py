"""Record factories shared by the data tests."""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from mtg_ray.data import Record

SELF = Record(
    problem_id="p0",
    prompt="Problem: 1+1?\nSolution:",
    reference_answer="2",
    expert_solution="1+1=2 \\boxed{2}",
    response="one plus one \\boxed{2}",
    prompt_token_ids=[1, 2, 3],
    response_token_ids=[4, 5],
    source="self",
    correct=True,
    behaviour_logprobs=[-0.1, -1.5],
    policy_version=3,
    temperature=0.7,
    top_p=0.95,
    max_tokens=64,
    seed=7,
)
EXPERT = replace(
    SELF,
    problem_id="p1",
    response="1+1=2 \\boxed{2}",
    response_token_ids=[6, 7, 8],
    source="expert",
    behaviour_logprobs=None,
    policy_version=-1,
    temperature=None,
    top_p=None,
    max_tokens=None,
    seed=None,
)


def make(base: str = "self", **overrides: Any) -> Record:
    """A valid record ("self", "guided" or "expert") with some fields replaced."""
    record = EXPERT if base == "expert" else replace(SELF, source=base)
    return replace(record, **overrides)


@pytest.fixture
def make_record() -> Callable[..., Record]:
    return make
