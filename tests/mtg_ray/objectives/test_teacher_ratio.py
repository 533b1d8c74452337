"""DR+IS on a teacher's record: the ratio's denominator is the teacher's recorded log-probs,
not the policy's and not the DFT stand-in of one (collate -> objective, on CPU)."""

import math

import pytest
import torch

from mtg_ray.data import Record
from mtg_ray.learner import collate
from mtg_ray.objectives import Objective, ObjectiveConfig, compute_objective

TEACHER_LP = [-0.2, -1.5, -0.4]  # what the teacher's sampler recorded
POLICY_LP = [-0.9, -0.3, -1.1]  # the live policy's, on the same tokens


def teacher_record() -> Record:
    return Record(
        problem_id="p0", prompt="Problem: q0\nSolution:", reference_answer="0",
        expert_solution="ref", response="t 0", prompt_token_ids=[5, 6],
        response_token_ids=[7, 8, 9], source="teacher", correct=True,
        behaviour_logprobs=TEACHER_LP, policy_version=0, temperature=1.0, top_p=1.0,
        max_tokens=16, seed=None, behaviour_prompt="Teacher: Problem: q0\nSolution:",
    )  # fmt: skip


def test_the_is_weight_of_a_teacher_token_is_pi_theta_over_pi_teacher() -> None:
    batch = collate([teacher_record()], pad_id=0, max_length=16)
    assert batch.has_behaviour.tolist() == [True] and batch.sources == ("teacher",)
    logprobs = torch.zeros_like(batch.behaviour_logprobs)
    logprobs[batch.mask] = torch.tensor(POLICY_LP)
    cfg = ObjectiveConfig(is_clip=100.0, is_clip_low=0.0, self_normalize=False)
    out = compute_objective(
        Objective("is", cfg), logprobs, batch.mask, batch.behaviour_logprobs,
        batch.has_behaviour,
    )  # fmt: skip
    weights = out.token_weights[batch.mask].tolist()
    want = [math.exp(p - t) for p, t in zip(POLICY_LP, TEACHER_LP, strict=True)]
    assert weights == pytest.approx(want, rel=1e-5)
    assert weights != pytest.approx([1.0] * 3)  # not the ratio against itself (policy / policy)
    dft = [math.exp(p) for p in POLICY_LP]  # DFT's denominator one
    assert weights != pytest.approx(dft, rel=1e-3)
