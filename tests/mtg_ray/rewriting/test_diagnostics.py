import math

import numpy as np
import pytest

from mtg_ray.rewriting.diagnostics import (
    sequence_log_ratios,
    weight_stats,
    weight_stats_by_source,
)


def test_equal_weights_have_full_ess_and_no_variance() -> None:
    stats = weight_stats(np.zeros(10))
    assert stats.count == 10
    assert stats.mean == pytest.approx(1.0)
    assert stats.variance == pytest.approx(0.0)
    assert stats.ess == pytest.approx(10.0)
    assert stats.ess_fraction == pytest.approx(1.0)
    assert stats.clipped_fraction == 0.0


def test_hand_computed_case() -> None:
    w = np.array([0.5, 1.0, 4.0])
    stats = weight_stats(np.log(w), clip=2.0)
    assert stats.mean == pytest.approx(w.mean())
    assert stats.variance == pytest.approx(w.var())
    assert stats.ess == pytest.approx(5.5**2 / (0.25 + 1 + 16))
    assert stats.max == pytest.approx(4.0)
    assert stats.clipped_fraction == pytest.approx(1 / 3)


def test_one_dominant_weight_collapses_ess() -> None:
    stats = weight_stats([15.0] + [0.0] * 99)
    assert stats.ess < 1.01
    assert stats.ess_fraction < 0.02


def test_extreme_log_ratios_stay_finite_and_bad_ones_raise() -> None:
    stats = weight_stats([1e4, -1e4, 0.0])
    assert all(math.isfinite(v) for v in stats.as_dict().values())
    with pytest.raises(ValueError, match="finite"):
        weight_stats([float("nan")])
    assert weight_stats([]).count == 0


def test_sequence_log_ratio_is_the_token_mean() -> None:
    lr = sequence_log_ratios([[-1.0, -2.0], [-0.5]], [[-1.5, -1.5], [-1.0]])
    np.testing.assert_allclose(lr, [0.0, 0.5])
    with pytest.raises(ValueError, match="row 0"):
        sequence_log_ratios([[-1.0]], [[-1.0, -2.0]])


def test_by_source_splits_and_adds_all() -> None:
    stats = weight_stats_by_source(["self", "expert", "self"], [0.0, 2.0, 0.0])
    assert set(stats) == {"self", "expert", "all"}
    assert stats["self"].variance == pytest.approx(0.0)
    assert stats["expert"].mean == pytest.approx(math.exp(2.0))
    assert stats["all"].count == 3
    assert stats["self"].as_dict("is/self/")["is/self/count"] == 2.0
