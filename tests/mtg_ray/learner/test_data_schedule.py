import pytest

from mtg_ray.learner.schedule import batch_schedule, num_steps


def test_each_epoch_is_a_permutation_cut_into_full_batches() -> None:
    steps = batch_schedule(10, 4, epochs=2, seed=0)
    assert len(steps) == 4 and all(len(s) == 4 for s in steps)
    for epoch in (steps[:2], steps[2:]):
        flat = [i for s in epoch for i in s]
        assert len(set(flat)) == 8
    assert steps[:2] != steps[2:]
    assert batch_schedule(10, 4, 2, seed=0) == steps
    assert batch_schedule(10, 4, 2, seed=1) != steps
    assert batch_schedule(10, 4, 2, seed=0, max_steps=3) == steps[:3]
    assert num_steps(10, 4, epochs=2) == 4 == len(steps)
    assert num_steps(10, 4, epochs=2, max_steps=3) == 3


def test_too_few_records_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="fewer than learner.train_batch_size=8"):
        batch_schedule(5, 8, 1, 0)
