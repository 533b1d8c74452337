"""Built tiny worlds on disk: opening one, the world shipped in the repository, the cache.

`build_world(cfg)` returns the world for a recipe without building when it can: the world
shipped with the package (`SHIPPED`, built by `scripts/build_world.py --ship`) when the recipe
hash matches it, so every machine trains on the same bytes; else the cached build
`<cache_root>/tinyworld-<hash>/`; else a fresh build into the cache. A build happens in a hidden
temp folder beside its destination and is renamed into place only when complete, under a lock,
so a crash never leaves a half world and concurrent callers build once.
"""

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mtg_ray.data import Problem
from mtg_ray.rewriting.prompts import PromptTemplate, get_template
from mtg_ray.tinyworld.world import TEMPLATE, WorldConfig, build_into, read_split, recipe_hash

REQUIRED = (
    "model/model.safetensors", "teacher/model.safetensors", "train.jsonl", "test.jsonl",
    "facts.json", "recipe.json",
)  # fmt: skip
# The default world, built once and committed (a few MB): the demo never pretrains.
SHIPPED = Path(__file__).resolve().parent / "shipped"


def default_cache_root() -> Path:
    """$MTG_RAY_CACHE, else ~/.cache/mtg-ray."""
    return Path(os.environ.get("MTG_RAY_CACHE", "~/.cache/mtg-ray")).expanduser()


@dataclass(frozen=True)
class World:
    """A complete world folder: base model, splits, facts. Open one with `World.open`."""

    root: Path
    config: WorldConfig
    facts: dict[str, Any] = field(compare=False)

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def teacher_dir(self) -> Path:
        """The teacher: the base's pretraining continued with level 4 (HF folder)."""
        return self.root / "teacher"

    @property
    def train_path(self) -> Path:
        return self.root / "train.jsonl"

    @property
    def test_path(self) -> Path:
        return self.root / "test.jsonl"

    @property
    def facts_path(self) -> Path:
        return self.root / "facts.json"

    @property
    def template(self) -> PromptTemplate:
        return get_template(TEMPLATE)

    def train_problems(self) -> list[Problem]:
        return read_split(self.train_path)

    def test_problems(self) -> list[Problem]:
        return read_split(self.test_path)

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> "World":
        """Load a built world; a folder missing any part is an error, never half-used."""
        root = Path(root)
        missing = [name for name in REQUIRED if not (root / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{root} is not a complete tiny world (missing {missing})")
        recipe = json.loads((root / "recipe.json").read_text())
        facts = json.loads((root / "facts.json").read_text())
        return cls(root=root, config=WorldConfig(**recipe["config"]), facts=facts)


def _fsync_tree(folder: Path) -> None:
    """Flush every file of a finished build to disk and make it world-readable (mkdtemp: 0700)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
    folder.chmod(0o755)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if absent), held for the block."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch intra-op threads fixed to `n` for the block (builds are deterministic per count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def shipped_hash(folder: Path = SHIPPED) -> str | None:
    """The recipe hash of the world shipped in `folder` (default: the package's), or None if
    there is none."""
    recipe = folder / "recipe.json"
    return json.loads(recipe.read_text())["hash"] if recipe.is_file() else None


def _build_atomic(cfg: WorldConfig, final: Path, say: Callable[[str], None]) -> None:
    """Build into a temp folder beside `final`, then rename it into place (under a lock)."""
    with _locked(final.parent / f".{final.name}.lock"):
        if final.is_dir():  # another process built it while we waited
            return
        say(f"building {final}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        try:
            with _threads(cfg.num_threads):
                build_into(cfg, tmp, say)
            _fsync_tree(tmp)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def build_world(
    cfg: WorldConfig | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> World:
    """The world for `cfg` (default `WorldConfig()`): shipped, cached, or freshly built."""
    cfg = cfg or WorldConfig()
    digest = recipe_hash(cfg)
    if shipped_hash() == digest:
        return World.open(SHIPPED)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"tinyworld-{digest}"
    if not final.is_dir():
        _build_atomic(cfg, final, log or (lambda _: None))
    return World.open(final)


def ship_world(
    cfg: WorldConfig, log: Callable[[str], None] | None = None, dest: Path = SHIPPED,
    cache_root: str | os.PathLike[str] | None = None,
) -> World:  # fmt: skip
    """Make `cfg`'s world the one shipped in `dest` (default: the package's world; the tests
    ship the small one), replacing the old one whole: a copy of its build in `cache_root` if
    one is there (builds are deterministic on one machine, and `--measure` may have added its
    facts), else a fresh build."""
    say = log or (lambda _: None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}-{recipe_hash(cfg)}"
    shutil.rmtree(staging, ignore_errors=True)
    cached = Path(cache_root) / f"tinyworld-{recipe_hash(cfg)}" if cache_root else None
    if cached is not None and cached.is_dir():
        World.open(cached)  # complete, or an error
        say(f"copying {cached}")
        shutil.copytree(cached, staging)
    else:
        _build_atomic(cfg, staging, say)
    old = dest.parent / f".{dest.name}-old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.rename(dest, old)
    os.rename(staging, dest)
    shutil.rmtree(old, ignore_errors=True)
    say(f"shipped {dest} (recipe {recipe_hash(cfg)})")
    return World.open(dest)
