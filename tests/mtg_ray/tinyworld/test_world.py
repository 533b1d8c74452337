"""Building, caching and reading tiny worlds."""

import dataclasses
import json
from pathlib import Path

import pytest

from mtg_ray.data import read_benchmark
from mtg_ray.tinyworld import (
    SHIPPED,
    World,
    WorldConfig,
    build_world,
    recipe_hash,
    shipped_hash,
    small,
)
from mtg_ray.tinyworld import world as world_module
from mtg_ray.tinyworld.world import WORLD_MODEL

# Just enough pretraining to exercise every part of a build in a few seconds.
TINY = dict(
    n_train=48, n_test=16, pretrain_steps=6, batch_size=8, facts_train_sample=16,
    tokenizer_problems=50, teacher_steps=2,
)  # fmt: skip


def test_bad_configs_are_refused() -> None:
    for bad in ({"seed": -1}, {"seed": "0"}, {"seed": True}, {"n_train": 0},
                {"train_levels": (1.0, 0.0)}, {"test_levels": (0.0, 0.0, 0.0, 0.0)},
                {"guided_fraction": 1.5}, {"drill_fraction": 0.7, "guided_fraction": 0.5},
                {"guided_levels": (0.0, 0.0, 0.0, 0.0)}, {"vocab_size": 0},
                {"model": dataclasses.replace(WORLD_MODEL, num_attention_heads=3)}):  # fmt: skip
        with pytest.raises(ValueError, match="bad WorldConfig"):
            WorldConfig(**bad)


def test_recipe_hash_follows_the_recipe() -> None:
    assert recipe_hash(WorldConfig()) == recipe_hash(WorldConfig())
    assert recipe_hash(WorldConfig(seed=1)) != recipe_hash(WorldConfig())
    assert recipe_hash(WorldConfig(pretrain_steps=7)) != recipe_hash(WorldConfig())
    # JSON turns tuples into lists: a config read back hashes the same
    listed = WorldConfig(train_levels=[0.25, 0.25, 0.2, 0.3])  # type: ignore[arg-type]
    assert recipe_hash(listed) == recipe_hash(WorldConfig())


def test_the_shipped_world_is_the_default_recipe_and_is_used(tmp_path: Path) -> None:
    assert shipped_hash() == recipe_hash(WorldConfig()), (
        "the tiny world's recipe changed: rebuild the shipped copy with "
        "`python scripts/build_world.py --ship` and commit it"
    )
    world = build_world(WorldConfig(), tmp_path / "cache")
    assert world.root == SHIPPED and not (tmp_path / "cache").exists()  # loaded, not built
    assert world.config == WorldConfig()
    levels = {p.level for p in world.test_problems()}
    assert levels == {"1", "2", "3", "4"}


def test_the_tests_small_world_is_the_small_recipe(shipped_small_world: Path) -> None:
    """The session's small world is the copy in tests/data, not a build in every session."""
    assert shipped_hash(shipped_small_world) == recipe_hash(small()), (
        "the small world's recipe changed: rebuild the tests' copy with "
        "`python scripts/build_world.py --small --ship tests/data/tinyworld-small` and commit it"
    )


def test_the_shipped_world_meets_its_design() -> None:
    """The targets docs/tinyworld.md fixed before the world was built (and before any method
    ran), as `scripts/build_world.py --measure` measured them into facts.json."""
    facts = World.open(SHIPPED).facts
    measured = facts["measured"]
    base, oracle = measured["base"], measured["oracle"]
    best = oracle["runs"][oracle["best_lr"]]["test"]
    assert base["test"]["4"] < 0.05 and not oracle["best_at_edge"]
    assert best["4"] >= 0.25 and best["all"] - base["test"]["all"] >= 0.10  # a
    assert oracle["runs"][oracle["best_lr"]]["heldout"] - oracle["heldout_base"] >= 0.10  # b
    level4 = base["train"]["4"]
    assert level4["missed"] >= 200 and 0.10 <= level4["guided_faithful"] <= 0.60  # c
    expert, own = facts["logprob_per_token_expert"], facts["logprob_per_token_self"]
    assert -3.0 <= expert <= -0.5 and own - expert >= 0.5  # d
    assert measured["teacher"]["test"]["4"] >= 0.30  # e
    config = WorldConfig()
    assert config.levels("pretrain").get(4, 0.0) == 0.0 < config.levels("train")[4]


def test_same_seed_same_world_and_the_cache_is_used(cache: Path, tmp_path: Path) -> None:
    cfg = small(seed=5, **TINY)
    logs: list[str] = []
    first = build_world(cfg, cache, log=logs.append)
    assert any("building" in line for line in logs)
    assert first.root.name == f"tinyworld-{recipe_hash(cfg)}"

    logs.clear()
    again = build_world(cfg, cache, log=logs.append)
    assert again.root == first.root and not logs  # loaded, not rebuilt

    other = build_world(cfg, tmp_path / "elsewhere")  # an independent rebuild
    for name in ("train.jsonl", "test.jsonl", "model/model.safetensors", "model/tokenizer.json",
                 "teacher/model.safetensors"):  # fmt: skip
        assert (first.root / name).read_bytes() == (other.root / name).read_bytes(), name
    strip = lambda facts: {k: v for k, v in facts.items() if k != "timing"}  # noqa: E731
    assert strip(first.facts) == strip(other.facts)

    reseeded = build_world(dataclasses.replace(cfg, seed=6), cache)
    assert reseeded.root != first.root
    assert reseeded.train_path.read_bytes() != first.train_path.read_bytes()
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == sorted(
        [first.root.name, reseeded.root.name]
    )


def test_a_failed_build_leaves_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash mid-build")

    monkeypatch.setattr(world_module.facts_module, "measure", boom)
    with pytest.raises(RuntimeError, match="crash mid-build"):
        build_world(small(seed=7, **TINY), cache)
    assert not [p for p in cache.iterdir() if not p.name.endswith(".lock")]


@pytest.mark.slow  # builds the session's small world (about 20 s)
def test_an_incomplete_folder_is_an_error(small_world: World, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "facts.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="not a complete tiny world"):
        World.open(broken)
    assert World.open(small_world.root).config == small_world.config


@pytest.mark.slow  # builds the session's small world (about 20 s)
def test_splits_read_back_as_problems(small_world: World) -> None:
    train, test = small_world.train_problems(), small_world.test_problems()
    cfg = small_world.config
    assert len(train) == cfg.n_train and len(test) == cfg.n_test
    assert all(p.expert_solution and p.dataset == "tinyworld-train" for p in train)
    assert len({p.problem_id for p in train + test}) == len(train) + len(test)
    as_benchmark = read_benchmark("math500", small_world.test_path)
    assert [(p.question, p.reference_answer, p.expert_solution) for p in as_benchmark] == [
        (p.question, p.reference_answer, p.expert_solution) for p in test
    ]
    saved = json.loads(small_world.facts_path.read_text())
    assert saved == small_world.facts and saved["n_train"] == cfg.n_train


@pytest.mark.slow  # builds the session's small world (about 20 s)
def test_expert_solutions_are_off_policy(small_world: World) -> None:
    """The policy gap: expert text is less likely per token than the model's own samples (the
    shipped world's band is checked in test_the_shipped_world_meets_its_design)."""
    facts = small_world.facts
    assert facts["logprob_per_token_expert"] < facts["logprob_per_token_self"] - 0.25
