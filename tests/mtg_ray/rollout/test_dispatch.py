import pytest

from mtg_ray.rollout import RolloutConfig, merge_in_order, split_by_weight


@pytest.mark.parametrize(("n", "k"), [(0, 1), (1, 3), (7, 2), (8, 4), (100, 7)])
def test_split_covers_every_item_once(n: int, k: int) -> None:
    parts = split_by_weight([1] * n, k)
    assert len(parts) == k
    assert [i for p in parts for i in p] == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_split_balances_the_weight_not_the_count() -> None:
    # 4 prompts of 4 samples then 4 of 1 (an evaluation's sampled and greedy requests)
    parts = split_by_weight([4] * 4 + [1] * 4, 2)
    assert parts == [range(0, 3), range(3, 8)]  # 12 and 8 samples, not 16 and 4
    weights = [5, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert [sum(weights[i] for i in p) for p in split_by_weight(weights, 2)] == [7, 7]
    assert split_by_weight([9, 1], 3) == [range(0, 1), range(1, 1), range(1, 2)]  # one idle


def test_merge_restores_order_and_rejects_loss_or_duplicates() -> None:
    parts = split_by_weight([1] * 5, 2)  # [0,1,2] [3,4]
    assert merge_in_order(parts, [["a", "b", "c"], ["d", "e"]], 5) == list("abcde")
    with pytest.raises(ValueError, match="got 2 answers"):
        merge_in_order(parts, [["a", "b"], ["d", "e"]], 5)
    with pytest.raises(ValueError, match="twice"):
        merge_in_order([range(0, 2), range(1, 3)], [["a", "b"], ["c", "d"]], 3)
    with pytest.raises(ValueError, match="never answered"):
        merge_in_order([range(0, 2)], [["a", "b"]], 3)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="num_engines"):
        RolloutConfig(num_engines=0)
    for backend in ("tcp", "ipc"):  # refused before any work is done
        with pytest.raises(ValueError, match="weight_backend"):
            RolloutConfig(weight_backend=backend)
    assert RolloutConfig(device="cuda", weight_backend="nccl").weight_backend == "nccl"
    with pytest.raises(ValueError, match="rollout.device"):
        RolloutConfig(device="gpu")
    assert RolloutConfig(device="cuda", weight_backend="gloo").device == "cuda"
