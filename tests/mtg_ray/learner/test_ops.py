"""Where DeepSpeed's compiled ops are built: inside the environment, unless the user chose; and
loading one survives a lock file that a killed process left in its build folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtg_ray.learner.ops import EXTENSIONS_DIR, use_environment_build_dir
from mtg_ray.paths import REPO_ROOT

BUILT = Path(sys.prefix) / "torch_extensions" / "deepspeed_shm_comm"


def test_builds_go_inside_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXTENSIONS_DIR, raising=False)
    use_environment_build_dir()
    assert Path(os.environ[EXTENSIONS_DIR]) == Path(sys.prefix) / "torch_extensions"


def test_a_users_folder_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(EXTENSIONS_DIR, str(tmp_path))
    use_environment_build_dir()
    assert os.environ[EXTENSIONS_DIR] == str(tmp_path)


@pytest.mark.slow  # real DeepSpeed, the op scripts/setup.sh built
def test_a_lock_left_by_a_killed_loader_does_not_hang_the_next(tmp_path: Path) -> None:
    """torch waits for ever on its `lock` file; a learner rank killed while loading leaves one."""
    if not (BUILT / "deepspeed_shm_comm.so").is_file():
        pytest.skip(f"no built op in {BUILT} (scripts/setup.sh builds it)")
    ext = tmp_path / "ext"
    shutil.copytree(BUILT, ext / BUILT.name)  # copy2 keeps the times: the build stays current
    (ext / BUILT.name / "lock").touch()
    env = {**os.environ, EXTENSIONS_DIR: str(ext), "DS_ACCELERATOR": "cpu"}
    load = "from mtg_ray.learner.ops import load_cpu_ops; load_cpu_ops(); print('loaded')"
    done = subprocess.run(
        [sys.executable, "-c", load], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-3000:]
    assert not (ext / BUILT.name / "lock").exists()
