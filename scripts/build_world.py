"""Build (or load) the tiny world and print its key facts.

    python scripts/build_world.py [--seed S] [--cache-dir D] [--small] [--ship [DIR]] [--measure]

The default world is shipped in the repository (`mtg_ray/tinyworld/shipped/`): this loads it
unless its recipe changed. Other recipes land in `<cache-dir>/tinyworld-<hash>/` (default cache:
$MTG_RAY_CACHE, else ~/.cache/mtg-ray). `--ship` rebuilds the world from scratch and replaces
the shipped copy in DIR (default: the package's; with `--cache-dir`, a build of the same recipe
there is copied rather than rebuilt): run it after changing the recipe
(`mtg_ray/tinyworld`), and commit. The tests ship the small world too:
`--small --ship tests/data/tinyworld-small`. `--measure` then runs the world-facts job on the
project's own stack (Ray, vLLM, DeepSpeed: the base model's and the teacher's self and guided
stages on the train split, both on the test split, the oracle at the methods' budget;
`mtg_ray/pipelines/jobs/world_facts.py`) and adds its result to the world's facts.json as
`measured`.
"""

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtg_ray.data import write_text
from mtg_ray.tinyworld import (
    SHIPPED,
    WorldConfig,
    build_world,
    default_cache_root,
    ship_world,
    small,
)

if TYPE_CHECKING:
    from mtg_ray.config import JobConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the world's seed (default 0)")
    parser.add_argument("--cache-dir", default=None, help=f"default {default_cache_root()}")
    parser.add_argument("--small", action="store_true", help="the small test/CI world")
    parser.add_argument(
        "--ship", nargs="?", const=str(SHIPPED), default=None, metavar="DIR",
        help=f"rebuild the world shipped in DIR (default {SHIPPED})",
    )  # fmt: skip
    parser.add_argument(
        "--measure", action="store_true",
        help="also measure the facts that need Ray, vLLM and DeepSpeed (minutes)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.measure:  # the measuring run's Ray stays in a private network, like any local run
        from mtg_ray.pipelines.jobs.session import enter_private_network

        enter_private_network(config(args, Path(".")))

    start = time.monotonic()
    cfg = small(seed=args.seed) if args.small else WorldConfig(seed=args.seed)
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    if args.ship:
        world = ship_world(cfg, log=say, dest=Path(args.ship).resolve(), cache_root=args.cache_dir)
    else:
        world = build_world(cfg, args.cache_dir, log=say)
    facts = world.facts
    print(f"world: {world.root}")
    print(f"model: {world.model_dir} ({facts['n_params']} parameters)")
    print(f"sizes: train={facts['n_train']} test={facts['n_test']}")
    print(f"pretraining sequences: {json.dumps(facts['n_pretrain_by_kind'])}")
    print(
        f"base accuracy at T=1: train={facts['train_accuracy_t1']} "
        f"(sample of {facts['train_sample']}, by level "
        f"{json.dumps(facts['train_accuracy_t1_by_level'])}) "
        f"test={facts['test_accuracy_t1']} "
        f"(by level {json.dumps(facts['test_accuracy_t1_by_level'])})"
    )
    print(
        f"guided re-solving on the {facts['guided_on_wrong']} train problems missed: "
        f"guided={facts['guided_success_rate']} "
        f"(by level {json.dumps(facts['guided_success_by_level'])}) "
        f"plain_resample={facts['plain_resample_success_rate']}"
    )
    print(
        f"log-prob per token under the base model: expert={facts['logprob_per_token_expert']} "
        f"self={facts['logprob_per_token_self']} guided={facts['logprob_per_token_guided']}"
    )
    took = time.monotonic() - start
    print(f"build timing: {json.dumps(facts['timing'])}; this run took {took:.1f}s")
    if args.measure:
        start = time.monotonic()
        measured = measure(world.root, args)
        measured["measure_s"] = round(time.monotonic() - start, 1)
        facts["measured"] = measured
        write_text(world.facts_path, json.dumps(facts, indent=2) + "\n")
        print(json.dumps(measured, indent=1))


def config(args: argparse.Namespace, root: Path) -> "JobConfig":
    """The tiny preset on this world, writing under runs/world-facts/<world folder>."""
    from mtg_ray.config import compose

    overrides = ["world=small"] if args.small else []
    overrides += [f"world.seed={args.seed}", f"output_dir=runs/world-facts/{root.name}"]
    if args.cache_dir:
        overrides.append(f"cache_dir={args.cache_dir}")
    return compose("tiny", overrides)


def measure(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The world-facts job on this world (`mtg_ray/pipelines/jobs/world_facts.py`)."""
    from mtg_ray.pipelines.jobs.session import groups, start
    from mtg_ray.pipelines.jobs.world_facts import world_facts_job

    run = start(config(args, root))
    assert run.world is not None and run.world.root == root, (run.world, root)
    with groups(run) as rollout:
        return world_facts_job(run, rollout)


if __name__ == "__main__":
    main()
