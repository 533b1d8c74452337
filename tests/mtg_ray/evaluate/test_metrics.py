import pytest

from mtg_ray.evaluate import avg_at_n, pass_at_n, set_metrics


def test_avg_and_pass_at_n() -> None:
    verdicts = [[True, False, False, False], [False] * 4, [True] * 4]
    assert avg_at_n(verdicts) == pytest.approx(5 / 12)
    assert pass_at_n(verdicts) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        avg_at_n([])
    with pytest.raises(ValueError):
        pass_at_n([])


def test_set_metrics_add_greedy_and_levels_in_numeric_order() -> None:
    verdicts = [[True, False], [False, False], [True, True], [False, True]]
    levels = ["10", "2", "2", ""]
    out = set_metrics(verdicts, levels, greedy=[True, False, True, False])
    assert list(out) == ["avg@2", "pass@2", "greedy", "avg@2/level_2", "avg@2/level_10"]
    assert out["greedy"] == 0.5 and out["avg@2/level_2"] == 0.5 and out["avg@2/level_10"] == 0.5
    assert list(set_metrics(verdicts, [""] * 4)) == ["avg@2", "pass@2"]
    with pytest.raises(ValueError, match="greedy"):
        set_metrics(verdicts, levels, greedy=[True])
