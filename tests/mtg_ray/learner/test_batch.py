import pytest
import torch

from mtg_ray.learner import collate, micro_batches, shard
from mtg_ray.objectives import IGNORE_INDEX


def test_labels_and_behaviour_align_with_response_tokens(record) -> None:
    batch = collate(
        [record([1, 2, 3], [7, 8], [-0.5, -1.5]), record([4], [9, 10, 11], None)],
        pad_id=0,
        max_length=16,
    )
    assert batch.input_ids.tolist() == [[1, 2, 3, 7, 8], [4, 9, 10, 11, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    n = IGNORE_INDEX
    assert batch.labels.tolist() == [[n, n, 7, 8], [9, 10, 11, n]]
    assert batch.behaviour_logprobs.tolist() == [[0, 0, -0.5, -1.5], [0, 0, 0, 0]]
    assert batch.has_behaviour.tolist() == [True, False]
    assert batch.num_response_tokens == 5 and batch.num_tokens == 9
    assert batch.sources == ("self", "expert") and batch.truncated == 0


def test_long_responses_are_cut_and_counted(record) -> None:
    batch = collate([record([1, 2], [3, 4, 5, 6], [-1.0] * 4)], pad_id=0, max_length=4)
    assert batch.input_ids.tolist() == [[1, 2, 3, 4]]
    assert batch.behaviour_logprobs.tolist() == [[0.0, -1.0, -1.0]]
    assert batch.truncated == 1
    with pytest.raises(ValueError, match="max_length=2"):
        collate([record([1, 2], [3], [-1.0])], pad_id=0, max_length=2)


def test_shards_and_micro_batches_cover_everything_once(record) -> None:
    recs = [record([i + 1], [i + 2], [-1.0]) for i in range(8)]
    shards = shard(recs, 2)
    assert sorted(r.prompt_token_ids[0] for s in shards for r in s) == list(range(1, 9))
    assert [len(m) for m in micro_batches(shards[0], 3)] == [3, 1]
    with pytest.raises(ValueError, match="do not split over 3"):
        shard(recs, 3)
    assert torch.equal(collate(recs[:1], 0, 8).mask, torch.tensor([[True]]))


def test_a_batch_moves_every_tensor_to_the_models_device(record) -> None:
    batch = collate([record([1, 2], [3, 4], [-0.5, -1.0]), record([5], [6], None)], 0, 64)
    moved = batch.to("meta")  # stands in for cuda here: only the device changes
    tensors = ("input_ids", "attention_mask", "labels", "mask", "behaviour_logprobs")
    for name in (*tensors, "has_behaviour"):
        before, after = getattr(batch, name), getattr(moved, name)
        assert after.device.type == "meta" and before.device.type == "cpu"
        assert (after.shape, after.dtype) == (before.shape, before.dtype)
    assert (moved.sources, moved.truncated) == (batch.sources, batch.truncated)
