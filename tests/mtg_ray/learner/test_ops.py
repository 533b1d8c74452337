"""Where DeepSpeed's compiled ops are built: inside the environment, unless the user chose."""

import os
import sys
from pathlib import Path

import pytest

from mtg_ray.learner.ops import EXTENSIONS_DIR, use_environment_build_dir


def test_builds_go_inside_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXTENSIONS_DIR, raising=False)
    use_environment_build_dir()
    assert Path(os.environ[EXTENSIONS_DIR]) == Path(sys.prefix) / "torch_extensions"


def test_a_users_folder_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(EXTENSIONS_DIR, str(tmp_path))
    use_environment_build_dir()
    assert os.environ[EXTENSIONS_DIR] == str(tmp_path)
