"""Tiny-world fixtures (the session's `small_world` lives in tests/conftest.py)."""

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"
