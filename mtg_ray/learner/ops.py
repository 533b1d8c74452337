"""DeepSpeed's compiled ops, built once into the environment instead of in a learner rank.

On CPU, `deepspeed.init_distributed` loads DeepSpeed's shared-memory collective op, compiling it
(torch's JIT C++ extension) on first use: about a minute on two cores, which landed inside the
first learner rank a fresh machine started (the demo's, or a test's). `scripts/setup.sh` builds
it (`python -m mtg_ray.learner.ops`), and builds go to a folder inside the environment
(`TORCH_EXTENSIONS_DIR`, unless the user set it): two environments on one machine would
otherwise share one build folder and rebuild it each time the other had used it.

Every load, even of a built op, takes torch's lock file in the op's build folder (`lock`, a
`FileBaton`) for a moment and waits for ever while that file exists. A process killed in that
moment (a learner rank of a lost node, a killed driver's) leaves the file behind, and every
later learner rank on the machine hangs in `init_distributed`. So ranks load the op first
(`load_cpu_ops`), one process at a time under a kernel lock that dies with its holder: whoever
holds it knows a `lock` file left in the folder has no live owner, and removes it.
"""

import fcntl
import os
import sys
from pathlib import Path

EXTENSIONS_DIR = "TORCH_EXTENSIONS_DIR"


def use_environment_build_dir() -> None:
    """Point torch's extension builds at `<environment>/torch_extensions` unless the user chose a
    folder; call before DeepSpeed loads an op (child processes inherit it)."""
    os.environ.setdefault(EXTENSIONS_DIR, str(Path(sys.prefix) / "torch_extensions"))


def load_cpu_ops() -> None:
    """Load (building if needed) the ops a CPU learner rank uses, so that DeepSpeed finds them
    loaded; one process at a time, clearing a lock file that a killed process left. Call with
    DeepSpeed's CPU accelerator (`DS_ACCELERATOR=cpu`)."""
    use_environment_build_dir()
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None or not builder.is_compatible():
        return
    build_dir = Path(os.environ[EXTENSIONS_DIR]) / builder.name  # torch's folder for the op
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f".{builder.name}.mtg-ray-lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when this process closes it or dies
        (build_dir / "lock").unlink(missing_ok=True)  # every loader holds `held`: none is live
        builder.load()


if __name__ == "__main__":
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    load_cpu_ops()
