"""Where the project finds its files: the checkout's configs, and the data the package ships."""

import os
from importlib.resources import files
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def benchmarks_dir() -> Path:
    """Folder of the benchmark test sets (math500.jsonl, gsm8k.jsonl, ...): $MTG_RAY_BENCHMARKS,
    else the copies shipped inside the package (`mtg_ray/data/benchmark_sets`), so an installed
    package reads them too."""
    if override := os.environ.get("MTG_RAY_BENCHMARKS"):
        return Path(override)
    # setuptools installs package data as plain files (wheels are unpacked, and editable installs
    # point at the checkout), so the traversable is a real folder.
    return Path(str(files("mtg_ray.data") / "benchmark_sets"))
