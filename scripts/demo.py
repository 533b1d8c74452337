"""The main job on the built-in tiny default (README's run command).

    python scripts/demo.py [key=value ...]

Loads the tiny world (shipped in the repository), rewrites its train split with the base model,
trains SFT and DFT on the raw expert data and DR+SFT, DR+DFT and DR+IS on the rewritten data
(each at its selected lr, `train.method_lr`), evaluates all of them and the base model on the
world's test split, and prints the table. The last line is the `demo:` line.
Same as `python scripts/run.py main [key=value ...]`; rerun after a crash to continue.
"""

import sys

from mtg_ray.config import check_lr_override, check_paths, compose, trained_lrs
from mtg_ray.pipelines.jobs.offline import main_job
from mtg_ray.pipelines.jobs.session import enter_private_network, start


def main() -> None:
    overrides = sys.argv[1:]
    try:
        cfg = check_paths(compose("tiny", overrides))
        check_lr_override(trained_lrs(cfg, "main"), overrides)
    except ValueError as e:  # every config error is one line, before Ray or a model starts
        sys.exit(f"config error: {e}")
    enter_private_network(cfg)
    run = start(cfg)
    print(main_job(run), flush=True)


if __name__ == "__main__":
    main()
