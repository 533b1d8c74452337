"""The tiny world: a synthetic math task, two solution styles and a base model, built on CPU.

It reproduces the paper's setting (arXiv 2509.15157) structurally, in minutes and with nothing
downloaded: word-style arithmetic problems with integer answers, expert demonstrations in a style
the base model does not write (a real policy gap), and a small Qwen2 base model that solves some
problems at temperature 1 and solves more when shown the expert solution in the guided prompt.

Usage::

    from mtg_ray.tinyworld import WorldConfig, build_world, small

    world = build_world(WorldConfig(seed=0))   # shipped, or cached under $MTG_RAY_CACHE
    world.model_dir          # HF folder (Qwen2 safetensors + char tokenizer): transformers, vLLM
    world.train_problems()   # list[Problem] with expert solutions (the SFT data to rewrite)
    world.test_problems()    # list[Problem], harder levels included (evaluation only)
    world.train_path, world.test_path  # jsonl; also `read_benchmark("math500", world.test_path)`
    world.facts              # sizes, accuracy at T=1, guided success, log-prob gap (facts.json)
    world.template           # get_template("plain"): the prompts the model was pretrained on

`small()` is the config for tests and CI end-to-end runs. `python scripts/build_world.py` prints
the default world's facts; `--ship` rebuilds the shipped copy (after a recipe change).

Modules: `task` (problems), `styles` (own and expert solutions), `pretrain` (corpus and training
loop), `sampling` (CPU sampling and scoring), `facts` (measurements), `world` (the recipe:
config and build), `store` (opening a world, the shipped world, the cache).
"""

from mtg_ray.tinyworld.store import (
    SHIPPED,
    World,
    build_world,
    default_cache_root,
    ship_world,
    shipped_hash,
)
from mtg_ray.tinyworld.world import (
    RECIPE_VERSION,
    WorldConfig,
    read_split,
    recipe_hash,
    small,
)

__all__ = [
    "RECIPE_VERSION",
    "SHIPPED",
    "ship_world",
    "shipped_hash",
    "World",
    "WorldConfig",
    "build_world",
    "default_cache_root",
    "read_split",
    "recipe_hash",
    "small",
]
