"""Where the project finds files that live outside the package."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The team's shared folder: $MTG_RAY_SHARED, else `shared/` beside the checkout."""
    return Path(os.environ.get("MTG_RAY_SHARED", REPO_ROOT.parent / "shared"))


def benchmarks_dir() -> Path:
    """Folder of the benchmark test sets (math500.jsonl, gsm8k.jsonl, ...)."""
    return Path(os.environ.get("MTG_RAY_BENCHMARKS", shared_dir() / "data" / "benchmarks"))
