import pytest

from mtg_ray.learner import LearnerConfig, deepspeed_config, lr_multiplier


def test_accumulation_is_the_ratio_of_batch_sizes() -> None:
    cfg = LearnerConfig(num_workers=2, train_batch_size=16, micro_batch_size=2)
    assert cfg.gradient_accumulation_steps == 4
    ds = deepspeed_config(cfg)
    assert ds["train_batch_size"] == 16 and ds["gradient_accumulation_steps"] == 4
    assert ds["train_micro_batch_size_per_gpu"] == 2 and "bf16" not in ds


def test_dtype_follows_the_backend() -> None:
    assert LearnerConfig().torch_dtype == "float32"
    assert LearnerConfig(backend="nccl").torch_dtype == "bfloat16"
    assert deepspeed_config(LearnerConfig(backend="nccl"))["bf16"] == {"enabled": True}


def test_one_rank_runs_without_zero_partitioning() -> None:
    stage = lambda **kw: deepspeed_config(LearnerConfig(**kw))["zero_optimization"]["stage"]  # noqa: E731
    assert stage(zero_stage=3, num_workers=2, train_batch_size=8, micro_batch_size=2) == 3
    assert stage(zero_stage=2, num_workers=2, train_batch_size=8, micro_batch_size=2) == 2
    assert stage(zero_stage=3, num_workers=1) == 0


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"train_batch_size": 10, "micro_batch_size": 4}, "train_batch_size"),
        ({"zero_stage": 4}, "zero_stage"),
        ({"dtype": "float16"}, "dtype"),
        ({"backend": "mpi"}, "backend"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"num_workers": 0}, "num_workers"),
    ],
)
def test_bad_values_name_their_key(overrides: dict, key: str) -> None:
    with pytest.raises(ValueError, match=f"learner.{key}"):
        LearnerConfig(**overrides)


def test_warmup_then_cosine() -> None:
    values = [lr_multiplier(s, 10, 0.2, 0.1) for s in range(12)]
    assert values[0] == pytest.approx(1 / 3) and values[1] == pytest.approx(2 / 3)
    assert values[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[2:], values[3:], strict=False))
    assert values[10] == pytest.approx(0.1) and values[11] == pytest.approx(0.1)
    assert lr_multiplier(0, 10, 0.0, 0.0) == 1.0
