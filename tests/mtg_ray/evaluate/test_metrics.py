import pytest

from mtg_ray.evaluate import avg_at_n, pass_at_n


def test_avg_and_pass_at_n() -> None:
    verdicts = [[True, False, False, False], [False] * 4, [True] * 4]
    assert avg_at_n(verdicts) == pytest.approx(5 / 12)
    assert pass_at_n(verdicts) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        avg_at_n([])
    with pytest.raises(ValueError):
        pass_at_n([])
