"""DeepSpeed's compiled ops, built once into the environment instead of in a learner rank.

On CPU, `deepspeed.init_distributed` loads DeepSpeed's shared-memory collective op, compiling it
(torch's JIT C++ extension) on first use: about a minute on two cores, which landed inside the
first learner rank a fresh machine started (the demo's, or a test's). `scripts/setup.sh` builds
it (`python -m mtg_ray.learner.ops`), and builds go to a folder inside the environment
(`TORCH_EXTENSIONS_DIR`, unless the user set it): two environments on one machine would
otherwise share one build folder and rebuild it each time the other had used it.
"""

import os
import sys
from pathlib import Path

EXTENSIONS_DIR = "TORCH_EXTENSIONS_DIR"


def use_environment_build_dir() -> None:
    """Point torch's extension builds at `<environment>/torch_extensions` unless the user chose a
    folder; call before DeepSpeed loads an op (child processes inherit it)."""
    os.environ.setdefault(EXTENSIONS_DIR, str(Path(sys.prefix) / "torch_extensions"))


def build_cpu_ops() -> None:
    """Compile (or find compiled) the ops a CPU learner rank loads."""
    use_environment_build_dir()
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is not None and builder.is_compatible():
        builder.load()


if __name__ == "__main__":
    build_cpu_ops()
