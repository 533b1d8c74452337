"""The online designs' pure decisions: rounds, anchors, drift, retries."""

import math

import pytest

from mtg_ray.data import Record
from mtg_ray.online import OnlineConfig
from mtg_ray.online.designs import (
    anchor_count,
    anchor_indices,
    drifted,
    place_retries,
    round_bounds,
)


def test_rounds_split_the_steps_evenly_with_a_shorter_last_round() -> None:
    assert [round_bounds(s, 93, 3) for s in (0, 30, 31, 62, 92)] == [
        (0, 31), (0, 31), (31, 62), (62, 93), (62, 93),
    ]  # fmt: skip
    assert [round_bounds(s, 7, 3) for s in range(7)] == [(0, 3)] * 3 + [(3, 6)] * 3 + [(6, 7)]
    assert round_bounds(5, 6, 1) == (0, 6)  # one round: the offline round, sampled at step 0


def test_anchors_do_not_repeat_within_a_pass_and_are_seeded() -> None:
    assert anchor_count(32, 0.5) == 16 and anchor_count(32, 0.0) == 0 and anchor_count(4, 1) == 4
    picks = [i for step in range(5) for i in anchor_indices(step, 4, 20, seed=3)]
    assert sorted(picks) == list(range(20))  # 5 steps x 4 = one pass over 20 records
    assert picks == [i for step in range(5) for i in anchor_indices(step, 4, 20, seed=3)]
    assert picks != [i for step in range(5) for i in anchor_indices(step, 4, 20, seed=4)]
    assert anchor_indices(5, 4, 20, seed=3) != anchor_indices(0, 4, 20, seed=3)  # a new pass


def test_drift_is_the_geometric_mean_weight_leaving_the_band() -> None:
    assert not drifted(-0.5, -0.5, 2.0)
    assert not drifted(-0.5 + math.log(2.0) - 1e-9, -0.5, 2.0)
    assert drifted(-0.5 + math.log(2.0) + 1e-9, -0.5, 2.0)
    assert drifted(-1.3, -0.5, 2.0)  # the live policy moved away from the record


def record(problem_id: str, source: str) -> Record:
    expert = source == "expert"
    return Record(
        problem_id, "q", "1", "e", "r", [1], [2, 3], source, True,
        None if expert else [-0.1, -0.2], -1 if expert else 0,
        None if expert else 1.0, None if expert else 1.0, None if expert else 8, None,
    )  # fmt: skip


def test_retried_problems_take_the_places_of_expert_rows_in_order() -> None:
    step = [
        record("a", "self"),
        record("b", "expert"),
        record("c", "guided"),
        record("d", "expert"),
    ]
    back = [record("x", "expert"), record("y", "guided"), record("z", "self"), record("w", "self")]
    batch, counts = place_retries(step, back)
    assert [r.problem_id for r in batch] == ["a", "y", "c", "z"]
    assert counts == {"retry_placed": 2, "retry_failed": 1, "retry_unplaced": 1}
    assert place_retries(step, []) == (step, {"retry_placed": 0, "retry_failed": 0,
                                              "retry_unplaced": 0})  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"design": "tuesday"}, "online.design"),
        ({"rounds": 0}, "online.rounds"),
        ({"refresh_band": 1.0}, "online.refresh_band"),
        ({"expert_rows": "hide"}, "online.expert_rows"),
        ({"anchor_share": 1.5}, "online.anchor_share"),
        ({"anchor_share": 0.5, "expert_rows": "ratio"}, "no stand-in"),
        ({"design": "rounds", "overlap": True}, "design=per_batch only"),
        ({"design": "refresh", "control": "frozen_sampler"}, "design=per_batch only"),
    ],
)
def test_bad_design_settings_are_named(overrides: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OnlineConfig(**overrides)


def test_study_candidates_parse_to_typed_online_settings() -> None:
    from mtg_ray.online.config import parse_candidate

    assert parse_candidate("dr_dft:design=rounds+rounds=3") == {
        "method": "dr_dft", "design": "rounds", "rounds": 3,
    }  # fmt: skip
    assert parse_candidate("dr_is:anchor_share=0.5+overlap=true") == {
        "method": "dr_is", "anchor_share": 0.5, "overlap": True,
    }  # fmt: skip
    assert parse_candidate("dr_sft") == {"method": "dr_sft"}
    for spec, problem in [
        ("dr_dft:rounds", "not key=value"),
        ("dr_dft:colour=red", "not key=value"),
        ("dr_dft:rounds=many", "not a int"),
        ("dr_dft:design=rounds+overlap=true", "design=per_batch only"),
        ("sgd", "online.method"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_candidate(spec)
