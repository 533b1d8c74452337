"""The rewrite job: the paper's three stages over a problem set, written as resumable shards.

Problems are cut into shards of `rewrite.shard_size`; a shard's parquet file is written
atomically once all of its problems are decided, so after a crash or Ctrl-C the same command
skips finished shards and redoes only the one in flight: every problem ends up in exactly one
shard. A manifest pins the problem ids and settings, so a rerun with other inputs fails loudly
instead of mixing two rewrites.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mtg_ray.data import Problem, Record, read_records, write_records, write_text
from mtg_ray.grading import Grader
from mtg_ray.pipelines.generate import generate_and_grade
from mtg_ray.pipelines.protocols import Rollout
from mtg_ray.rewriting import RewriteConfig, expert_record, needs_guided, rewrite
from mtg_ray.rewriting.prompts import PromptTemplate
from mtg_ray.rollout import Graded


def encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def expert_records(
    problems: Sequence[Problem], tokenizer: Any, template: PromptTemplate
) -> list[Record]:
    """The raw SFT data: each problem's expert solution (+ eos) on its plain prompt."""
    out = []
    for p in problems:
        prompt = template.format(p.question)
        expert_ids = encode(tokenizer, p.expert_solution or "") + [tokenizer.eos_token_id]
        out.append(expert_record(p, prompt, encode(tokenizer, prompt), expert_ids))
    return out


def rewrite_problems(
    problems: Sequence[Problem],
    rollout: Rollout,
    tokenizer: Any,
    template: PromptTemplate,
    cfg: RewriteConfig,
    grader: Grader,
) -> list[Record]:
    """Stage 1 for all problems, stage 2 for those without a correct sample, stage 3 last."""
    prompts = [template.format(p.question) for p in problems]
    prompt_ids = [encode(tokenizer, t) for t in prompts]
    answers = [p.reference_answer for p in problems]
    self_samples = generate_and_grade(
        rollout, prompt_ids, answers, cfg.sampling(cfg.samples), grader
    )
    guided_idx = [i for i, g in enumerate(self_samples) if needs_guided(g)]
    guided: dict[int, Graded] = {}
    if guided_idx and cfg.guided_samples > 0:
        guided_prompts = [
            encode(
                tokenizer,
                template.format_guided(problems[i].question, problems[i].expert_solution or ""),
            )
            for i in guided_idx
        ]
        graded = generate_and_grade(
            rollout,
            guided_prompts,
            [answers[i] for i in guided_idx],
            cfg.sampling(cfg.guided_samples),
            grader,
        )
        guided = dict(zip(guided_idx, graded, strict=True))
    selection = cfg.selection()
    records = []
    for i, p in enumerate(problems):
        expert_ids = encode(tokenizer, p.expert_solution or "") + [tokenizer.eos_token_id]
        records += rewrite(
            p, prompts[i], prompt_ids[i], expert_ids, self_samples[i], guided.get(i), selection
        )
    return records


def _manifest(problems: Sequence[Problem], cfg: RewriteConfig, model: str) -> dict[str, Any]:
    ids = hashlib.sha256("\n".join(p.problem_id for p in problems).encode()).hexdigest()
    return {
        "problems": len(problems),
        "problem_ids_sha256": ids,
        "rewrite": asdict(cfg),
        "model": model,
    }


def shard_paths(out_dir: Path, num_problems: int, shard_size: int) -> list[Path]:
    count = -(-num_problems // shard_size)
    return [out_dir / "shards" / f"shard-{i:05d}.parquet" for i in range(count)]


def run_rewrite(
    problems: Sequence[Problem],
    rollout: Rollout,
    tokenizer: Any,
    template: PromptTemplate,
    cfg: RewriteConfig,
    out_dir: Path,
    grader: Grader,
    model: str = "",
) -> list[Record]:
    """Rewrite `problems` into `out_dir/shards/`, resuming finished shards; all records."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(problems, cfg, model)
    manifest_path = out_dir / "manifest.json"
    paths = shard_paths(out_dir, len(problems), cfg.shard_size)
    started = any((out_dir / "shards").glob("*.parquet"))
    if manifest_path.is_file() and started:  # a manifest with no shard yet binds nothing
        found = json.loads(manifest_path.read_text())
        if found != manifest:
            raise ValueError(
                f"{manifest_path}: this output folder holds a rewrite of other problems or "
                "settings; use a new output_dir (or delete it) to start over"
            )
    else:
        write_text(manifest_path, json.dumps(manifest, indent=1))
    records: list[Record] = []
    with tqdm(total=len(problems), desc="rewrite", unit="problem") as bar:
        for i, path in enumerate(paths):
            chunk = problems[i * cfg.shard_size : (i + 1) * cfg.shard_size]
            if path.is_file():
                done = read_records(path)
                if {r.problem_id for r in done} != {p.problem_id for p in chunk}:
                    raise ValueError(f"{path}: problems differ from this shard's; start over")
            else:
                done = rewrite_problems(chunk, rollout, tokenizer, template, cfg, grader)
                write_records(path, done)
            records += done
            bar.update(len(chunk))
    return records
