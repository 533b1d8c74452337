"""A tiny world's recipe: `WorldConfig`, the splits and the build (`build_into`).

Everything that decides a world's bytes lives in this module and the ones named in
`SOURCE_MODULES`; `recipe_hash` covers their source, the config and `RECIPE_VERSION`, so any
change to them is a new world. Opening, caching and the shipped world are in `store.py`.
"""

import copy
import dataclasses
import functools
import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

from mtg_ray.data import Problem, iter_jsonl, write_jsonl, write_text
from mtg_ray.data.jsonl import require_text
from mtg_ray.models import TinyModelConfig, build_tiny_model
from mtg_ray.rewriting.prompts import get_template
from mtg_ray.tinyworld import facts as facts_module
from mtg_ray.tinyworld.pretrain import Schedule, build_corpus, make_batches, pretrain
from mtg_ray.tinyworld.styles import expert_solution, own_solution
from mtg_ray.tinyworld.task import Expr, Item, sample_items
from mtg_ray.tinyworld.tokenizer import world_tokenizer

# Bump when the world changes in a way the config and sources do not show (e.g. a dependency).
RECIPE_VERSION = "tinyworld-3"
TEMPLATE = "plain"
SPLIT_LEVELS = (1, 2, 3, 4)  # level 0 is pretraining drill only
SOURCE_MODULES = (
    "task", "styles", "tokenizer", "pretrain", "sampling", "facts", "faithful", "world",
)  # fmt: skip
WORLD_MODEL = TinyModelConfig(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=768,
)


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides a world. Level weights list levels 1..4 in order.

    `pretrain_levels` is the pretraining mix; a level weighted there 0 but not in `train_levels`
    is skill only the expert demonstrations carry (the default: level 4). `guided_levels` is
    the mix of the guided pretraining examples (reading a reference and retelling it). The
    teacher is the
    base model's pretraining continued for `teacher_steps` on the `teacher_levels` mix (level 4
    included), on problems of its own.
    """

    seed: int = 0
    n_train: int = 3000
    n_test: int = 500
    pretrain_levels: tuple[float, ...] = (0.3, 0.3, 0.4, 0.0)
    guided_levels: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
    train_levels: tuple[float, ...] = (0.25, 0.25, 0.2, 0.3)
    test_levels: tuple[float, ...] = (0.25, 0.25, 0.2, 0.3)
    # pretraining: one step per batch of `batch_size` sequences (drill batches: twice that);
    # the fractions of the batches that are drill (one-operation problems) and guided; the
    # rest are plain
    pretrain_steps: int = 2250
    batch_size: int = 32
    lr: float = 2e-3
    drill_fraction: float = 0.3
    guided_fraction: float = 0.2
    slip_rate: float = 0.0
    # the share of plain pretraining solutions written in the expert's style
    expert_style_rate: float = 0.05
    # the base model's shape (a Qwen2), initialised from `seed`; its tokenizer, a BPE of at
    # most `vocab_size` tokens trained on the text of `tokenizer_problems` generated problems
    model: TinyModelConfig = field(default_factory=lambda: WORLD_MODEL)
    vocab_size: int = 1024
    tokenizer_problems: int = 4000
    # the teacher: the base's pretraining continued with level 4 added
    teacher_levels: tuple[float, ...] = (0.1, 0.1, 0.3, 0.5)
    teacher_steps: int = 600
    # facts: train problems sampled for accuracy / guided re-solving / log-probs
    facts_train_sample: int = 200
    num_threads: int = 2

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        for name in (
            "n_train", "n_test", "pretrain_steps", "batch_size", "facts_train_sample",
            "vocab_size", "tokenizer_problems", "teacher_steps",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "pretrain_levels", "guided_levels", "train_levels", "test_levels", "teacher_levels",
        ):  # fmt: skip
            w = tuple(getattr(self, name))
            if len(w) != len(SPLIT_LEVELS) or min(w) < 0 or sum(w) <= 0:
                problems.append(f"{name} needs {len(SPLIT_LEVELS)} non-negative weights, got {w}")
            object.__setattr__(self, name, tuple(float(x) for x in w))  # lists from JSON/yaml
        for name in ("drill_fraction", "guided_fraction", "slip_rate", "expert_style_rate"):
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
        """{level: weight} for "pretrain", "guided", "train", "test" or "teacher"."""
        weights = getattr(self, f"{split}_levels")
        return {level: w for level, w in zip(SPLIT_LEVELS, weights, strict=True) if w > 0}

    def pretrain_batches(self, steps: int | None = None) -> dict[str, int]:
        """How many pretraining batches of each kind in `steps` (default `pretrain_steps`)."""
        steps = self.pretrain_steps if steps is None else steps
        drill = round(steps * self.drill_fraction)
        guided = round(steps * self.guided_fraction)
        return {"drill": drill, "plain": steps - drill - guided, "guided": guided}

    def pretrain_examples(self, steps: int | None = None) -> dict[str, int]:
        """How many pretraining sequences of each kind (drill batches are twice as large)."""
        return {
            kind: n * self.batch_size * (2 if kind == "drill" else 1)
            for kind, n in self.pretrain_batches(steps).items()
        }

    def schedule(self, steps: int | None = None) -> Schedule:
        steps = self.pretrain_steps if steps is None else steps
        return Schedule(steps=steps, batch_size=self.batch_size, lr=self.lr)


def small(seed: int = 0, **overrides: Any) -> WorldConfig:
    """A world for tests and CI end-to-end runs: few problems, a short pretraining."""
    base = WorldConfig(
        seed=seed, n_train=256, n_test=64, pretrain_steps=150, batch_size=16,
        facts_train_sample=64, tokenizer_problems=500, teacher_steps=30,
    )  # fmt: skip
    return dataclasses.replace(base, **overrides)


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


def tokenizer_texts(cfg: WorldConfig, exclude: set[Expr]) -> list[str]:
    """What the world's tokenizer is trained on: the prompts and both styles' solutions of
    `tokenizer_problems` problems of every level, none of the splits' expressions."""
    template = get_template(TEMPLATE)
    rng = random.Random(f"tinyworld:{cfg.seed}:tokenizer")
    every_level = {level: 1.0 for level in (0, *SPLIT_LEVELS)}
    texts = []
    for item in sample_items(rng, cfg.tokenizer_problems, every_level, exclude, unique=False):
        expert = expert_solution(item, rng)
        texts += [template.format(item.question), template.format_guided(item.question, expert)]
        texts += [expert, own_solution(item)]
    return texts


def _pretrained(
    cfg: WorldConfig, model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerFast, kind: str,
    exclude: set[Expr], log: Callable[[str], None],
) -> tuple[list[float], int, float]:  # fmt: skip
    """Pretrain `model` in place on a fresh corpus: the base ("pretrain": `pretrain_levels`,
    `pretrain_steps`) or the teacher's continuation ("teacher"). Returns the losses, the number
    of sequences and the seconds it took."""
    steps = cfg.pretrain_steps if kind == "pretrain" else cfg.teacher_steps
    rng = random.Random(f"tinyworld:{cfg.seed}:{kind}")
    corpus = build_corpus(
        rng, cfg.pretrain_examples(steps), slip_rate=cfg.slip_rate,
        expert_style_rate=cfg.expert_style_rate, level_weights=cfg.levels(kind),
        exclude=exclude, template=get_template(TEMPLATE),
        guided_level_weights=cfg.levels("guided" if kind == "pretrain" else kind),
    )  # fmt: skip
    lengths = tokenizer([e.prompt + e.response for e in corpus])["input_ids"]
    longest = max(len(ids) for ids in lengths) + 1
    if longest > cfg.model.max_position_embeddings:
        raise ValueError(
            f"model.max_position_embeddings {cfg.model.max_position_embeddings} < longest "
            f"sequence {longest}"
        )
    start = time.monotonic()
    losses = pretrain(
        model, tokenizer, make_batches(corpus, cfg.batch_size, rng), cfg.schedule(steps), log
    )
    return losses, len(corpus), time.monotonic() - start


def build_into(cfg: WorldConfig, out: Path, log: Callable[[str], None]) -> None:
    """Write a whole world into the empty folder `out` (torch threads: the caller's)."""
    template = get_template(TEMPLATE)
    train, test = make_splits(cfg)
    rows = {"train": _split_rows(train, "train", random.Random(f"tinyworld:{cfg.seed}:expert"))}
    rows["test"] = _split_rows(test, "test", random.Random(f"tinyworld:{cfg.seed}:expert-test"))
    for split in ("train", "test"):
        write_jsonl(out / f"{split}.jsonl", rows[split])
    exclude = {item.expr for item in train + test}

    tokenizer = world_tokenizer(tokenizer_texts(cfg, exclude), cfg.vocab_size)
    model_dir = build_tiny_model(out / "model", cfg.model, seed=cfg.seed, tokenizer=tokenizer)
    model = Qwen2ForCausalLM.from_pretrained(model_dir)
    losses, n_base, pretrain_s = _pretrained(cfg, model, tokenizer, "pretrain", exclude, log)
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    teacher = copy.deepcopy(model)
    teacher_losses, n_teacher, teacher_s = _pretrained(
        cfg, teacher, tokenizer, "teacher", exclude, log
    )
    teacher.save_pretrained(out / "teacher", safe_serialization=True)
    tokenizer.save_pretrained(out / "teacher")

    start = time.monotonic()
    problems = {s: read_split(out / f"{s}.jsonl") for s in rows}
    levels = {r["problem_id"]: r["level"] for s in rows for r in rows[s]}
    # room for either style (the base model writes the expert's now and then), in tokens
    texts = [r["solution"] for split in rows.values() for r in split]
    texts += [own_solution(i) for i in train + test]
    max_new_tokens = max(len(ids) for ids in tokenizer(texts)["input_ids"]) + 16
    measure = functools.partial(
        facts_module.measure, tokenizer=tokenizer, template=template, train=problems["train"],
        test=problems["test"], levels=levels, n_train_sample=cfg.facts_train_sample,
        max_new_tokens=max_new_tokens, seed=cfg.seed,
    )  # fmt: skip
    facts = {
        "n_train": len(train),
        "n_test": len(test),
        "n_pretrain_sequences": n_base,
        "n_pretrain_by_kind": cfg.pretrain_examples(),
        "n_teacher_sequences": n_teacher,
        "n_params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "pretrain_final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "teacher_final_loss": round(sum(teacher_losses[-10:]) / len(teacher_losses[-10:]), 4),
        "max_new_tokens": max_new_tokens,
        "tokens_per_solution": facts_module.tokens_per_solution(tokenizer, rows["train"], train),
        **measure(model),
        "teacher": measure(teacher),
        "timing": {
            "pretrain_s": round(pretrain_s, 1),
            "teacher_s": round(teacher_s, 1),
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
