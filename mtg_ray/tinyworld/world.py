"""A built tiny world on disk, its recipe (`WorldConfig`), and the cached build.

`build_world(cfg, cache_root)` returns the world for a recipe, building it only if the cache has
none: `<cache_root>/tinyworld-<hash>/` where the hash covers `RECIPE_VERSION`, the config and the
source of the modules that generate the world. A build happens in a hidden temp folder beside it
and is renamed into place only when complete, under a lock, so a crash never leaves a half world
and concurrent callers build once.
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Qwen2ForCausalLM

from mtg_ray.data import Problem, iter_jsonl, write_jsonl, write_text
from mtg_ray.data.jsonl import require_text
from mtg_ray.models import TinyModelConfig, build_tiny_model
from mtg_ray.rewriting.prompts import PromptTemplate, get_template
from mtg_ray.tinyworld import facts as facts_module
from mtg_ray.tinyworld.pretrain import Schedule, build_corpus, make_batches, pretrain
from mtg_ray.tinyworld.styles import expert_solution, own_solution
from mtg_ray.tinyworld.task import Item, sample_items
from mtg_ray.tinyworld.tokenizer import world_tokenizer

# Bump when the world changes in a way the config and sources do not show (e.g. a dependency).
RECIPE_VERSION = "tinyworld-1"
TEMPLATE = "plain"
SPLIT_LEVELS = (1, 2, 3, 4)  # level 0 is pretraining drill only
SOURCE_MODULES = ("task", "styles", "tokenizer", "pretrain", "sampling", "facts", "world")
REQUIRED = ("model/model.safetensors", "train.jsonl", "test.jsonl", "facts.json", "recipe.json")


WORLD_MODEL = TinyModelConfig(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides a world. Level weights list levels 1..4 in order."""

    seed: int = 0
    n_train: int = 4000
    n_test: int = 500
    train_levels: tuple[float, ...] = (0.4, 0.35, 0.25, 0.0)
    test_levels: tuple[float, ...] = (0.2, 0.3, 0.3, 0.2)
    # pretraining: one step per batch of `batch_size` sequences (drill batches: twice that);
    # the fractions of the batches that are drill (one-operation problems) and guided; the
    # rest are plain
    pretrain_steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    drill_fraction: float = 0.4
    guided_fraction: float = 0.2
    slip_rate: float = 0.0
    # the base model's shape (a Qwen2), initialised from `seed`
    model: TinyModelConfig = field(default_factory=lambda: WORLD_MODEL)
    # facts: train problems sampled for accuracy / guided re-solving / log-probs
    facts_train_sample: int = 200
    num_threads: int = 2

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        for name in ("n_train", "n_test", "pretrain_steps", "batch_size", "facts_train_sample"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_levels", "test_levels"):
            w = tuple(getattr(self, name))
            if len(w) != len(SPLIT_LEVELS) or min(w) < 0 or sum(w) <= 0:
                problems.append(f"{name} needs {len(SPLIT_LEVELS)} non-negative weights, got {w}")
            object.__setattr__(self, name, tuple(float(x) for x in w))  # lists from JSON/yaml
        for name in ("drill_fraction", "guided_fraction", "slip_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.drill_fraction + self.guided_fraction > 1.0:
            problems.append("drill_fraction + guided_fraction must be <= 1")
        if isinstance(self.model, dict):  # read back from recipe.json
            object.__setattr__(self, "model", TinyModelConfig(**self.model))
        m = self.model
        if m.hidden_size % m.num_attention_heads or m.num_attention_heads % m.num_key_value_heads:
            problems.append(
                "model.num_attention_heads must divide model.hidden_size, and "
                "model.num_key_value_heads model.num_attention_heads"
            )
        if problems:
            raise ValueError("bad WorldConfig: " + "; ".join(problems))

    def levels(self, split: str) -> dict[int, float]:
        """{level: weight} for "train" (also the pretraining mix) or "test"."""
        weights = self.train_levels if split == "train" else self.test_levels
        return {level: w for level, w in zip(SPLIT_LEVELS, weights, strict=True) if w > 0}

    def pretrain_batches(self) -> dict[str, int]:
        """How many pretraining batches of each kind (they add up to `pretrain_steps`)."""
        drill = round(self.pretrain_steps * self.drill_fraction)
        guided = round(self.pretrain_steps * self.guided_fraction)
        return {"drill": drill, "plain": self.pretrain_steps - drill - guided, "guided": guided}

    def pretrain_examples(self) -> dict[str, int]:
        """How many pretraining sequences of each kind (drill batches are twice as large)."""
        return {
            kind: n * self.batch_size * (2 if kind == "drill" else 1)
            for kind, n in self.pretrain_batches().items()
        }

    def schedule(self) -> Schedule:
        return Schedule(steps=self.pretrain_steps, batch_size=self.batch_size, lr=self.lr)


def small(seed: int = 0, **overrides: Any) -> WorldConfig:
    """A world for tests and CI end-to-end runs: few problems, a short pretraining."""
    base = WorldConfig(
        seed=seed, n_train=256, n_test=64, pretrain_steps=150, batch_size=16,
        facts_train_sample=64,
    )  # fmt: skip
    return dataclasses.replace(base, **overrides)


def default_cache_root() -> Path:
    """$MTG_RAY_CACHE, else ~/.cache/mtg-ray."""
    return Path(os.environ.get("MTG_RAY_CACHE", "~/.cache/mtg-ray")).expanduser()


def recipe_hash(cfg: WorldConfig) -> str:
    """16 hex digits over RECIPE_VERSION, the config and the generating modules' source."""
    here = Path(__file__).resolve().parent
    sources = {
        m: hashlib.sha256((here / f"{m}.py").read_bytes()).hexdigest() for m in SOURCE_MODULES
    }
    recipe = {"version": RECIPE_VERSION, "config": dataclasses.asdict(cfg), "sources": sources}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def read_split(path: str | os.PathLike[str]) -> list[Problem]:
    """Problems of a split file (also readable as `read_benchmark("math500", path)`)."""
    problems = []
    for row, obj in iter_jsonl(path):
        problems.append(
            Problem(
                problem_id=require_text(obj, "problem_id", path, row),
                question=require_text(obj, "problem", path, row),
                reference_answer=require_text(obj, "answer", path, row),
                expert_solution=require_text(obj, "solution", path, row),
                dataset=require_text(obj, "dataset", path, row),
                level=str(obj.get("level", "")),
            )
        )
    return problems


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


def _split_rows(items: list[Item], split: str, rng: random.Random) -> list[dict[str, Any]]:
    """jsonl rows in the math500 layout (problem/answer/solution) plus id, level, dataset."""
    return [
        {
            "problem_id": f"tinyworld-{split}-{i:05d}",
            "problem": item.question,
            "answer": str(item.answer),
            "solution": expert_solution(item, rng),
            "level": item.level,
            "dataset": f"tinyworld-{split}",
        }
        for i, item in enumerate(items)
    ]


def make_splits(cfg: WorldConfig) -> tuple[list[Item], list[Item]]:
    """Train and test problems; no test expression appears in the train split."""
    train = sample_items(
        random.Random(f"tinyworld:{cfg.seed}:train"), cfg.n_train, cfg.levels("train")
    )
    test = sample_items(
        random.Random(f"tinyworld:{cfg.seed}:test"),
        cfg.n_test,
        cfg.levels("test"),
        exclude={item.expr for item in train},
    )
    return train, test


def _build(cfg: WorldConfig, out: Path, log: Callable[[str], None]) -> None:
    """Write a whole world into the empty folder `out`."""
    template = get_template(TEMPLATE)
    train, test = make_splits(cfg)
    rows = {"train": _split_rows(train, "train", random.Random(f"tinyworld:{cfg.seed}:expert"))}
    rows["test"] = _split_rows(test, "test", random.Random(f"tinyworld:{cfg.seed}:expert-test"))
    for split in ("train", "test"):
        write_jsonl(out / f"{split}.jsonl", rows[split])

    rng = random.Random(f"tinyworld:{cfg.seed}:pretrain")
    corpus = build_corpus(
        rng,
        cfg.pretrain_examples(),
        slip_rate=cfg.slip_rate,
        level_weights=cfg.levels("train"),
        exclude={item.expr for item in train + test},
        template=template,
    )
    longest = max(len(e.prompt) + len(e.response) + 1 for e in corpus)
    if longest > cfg.model.max_position_embeddings:
        raise ValueError(
            f"model.max_position_embeddings {cfg.model.max_position_embeddings} < longest "
            f"sequence {longest}"
        )

    model_dir = build_tiny_model(out / "model", cfg.model, seed=cfg.seed)
    model = Qwen2ForCausalLM.from_pretrained(model_dir)
    tokenizer = world_tokenizer()
    start = time.monotonic()
    losses = pretrain(
        model, tokenizer, make_batches(corpus, cfg.batch_size, rng), cfg.schedule(), log
    )
    pretrain_s = time.monotonic() - start
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)

    start = time.monotonic()
    problems = {s: read_split(out / f"{s}.jsonl") for s in rows}
    levels = {r["problem_id"]: r["level"] for s in rows for r in rows[s]}
    max_new_tokens = max(len(own_solution(item)) for item in train + test) + 16
    measured = facts_module.measure(
        model, tokenizer, template, problems["train"], problems["test"], levels,
        n_train_sample=cfg.facts_train_sample, max_new_tokens=max_new_tokens, seed=cfg.seed,
    )  # fmt: skip
    facts = {
        "n_train": len(train),
        "n_test": len(test),
        "n_pretrain_sequences": len(corpus),
        "n_pretrain_by_kind": cfg.pretrain_examples(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "pretrain_final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "max_new_tokens": max_new_tokens,
        **measured,
        "timing": {
            "pretrain_s": round(pretrain_s, 1),
            "facts_s": round(time.monotonic() - start, 1),
        },
    }
    write_text(out / "facts.json", json.dumps(facts, indent=2) + "\n")
    recipe = {
        "version": RECIPE_VERSION,
        "hash": recipe_hash(cfg),
        "config": dataclasses.asdict(cfg),
    }
    write_text(out / "recipe.json", json.dumps(recipe, indent=2) + "\n")


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


def build_world(
    cfg: WorldConfig | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> World:
    """The world for `cfg` (default `WorldConfig()`), from the cache or freshly built into it."""
    cfg = cfg or WorldConfig()
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"tinyworld-{recipe_hash(cfg)}"
    say = log or (lambda _: None)
    if final.is_dir():
        return World.open(final)
    with _locked(root / f".{final.name}.lock"):
        if final.is_dir():  # another process built it while we waited
            return World.open(final)
        say(f"building {final}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
        try:
            with _threads(cfg.num_threads):
                _build(cfg, tmp, say)
            _fsync_tree(tmp)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return World.open(final)
