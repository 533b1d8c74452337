"""What a pip-installed package carries: the data it reads, checked in a wheel built from a copy
of the checkout (a user's install has nothing beside it)."""

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import mtg_ray
from mtg_ray.data import read_benchmark
from mtg_ray.paths import REPO_ROOT, benchmarks_dir

PACKAGE = Path(mtg_ray.__file__).parent
# The package's data folders: every file in them must be in the wheel, byte for byte.
DATA = ["mtg_ray/data/benchmark_sets", "mtg_ray/tinyworld/shipped"]
NOT_SOURCE = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_benchmarks_are_read_from_the_package_unless_overridden(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("MTG_RAY_BENCHMARKS", raising=False)
    assert benchmarks_dir() == PACKAGE / "data" / "benchmark_sets"
    assert len(read_benchmark("aime24")) == 30  # by name, from the package's copy
    assert (benchmarks_dir() / "LICENSE").read_text().count("MIT License") == 1
    monkeypatch.setenv("MTG_RAY_BENCHMARKS", str(tmp_path))
    assert benchmarks_dir() == tmp_path


def test_the_wheel_carries_the_benchmarks_and_the_shipped_world(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in ("mtg_ray", "actors"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=NOT_SOURCE)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(tmp_path / "dist"), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("mtg_ray-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        inside = {name: digest(zf.read(name)) for name in zf.namelist()}
    expected = {
        path.relative_to(src).as_posix(): digest(path.read_bytes())
        for folder in DATA
        for path in (src / folder).rglob("*")
        if path.is_file()
    }
    names = {Path(name).name for name in expected}
    assert {"math500.jsonl", "gsm8k.jsonl", "LICENSE", "model.safetensors", "train.jsonl"} <= names
    missing = {name for name, sha in expected.items() if inside.get(name) != sha}
    assert not missing, f"not in the wheel (or changed): {sorted(missing)}"
