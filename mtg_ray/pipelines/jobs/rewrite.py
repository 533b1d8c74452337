"""The rewrite job: the paper's three stages over a problem set, written as resumable shards.

Problems are cut into shards of `rewrite.shard_size`; a shard's parquet file is written
atomically once all of its problems are decided, so after a crash or Ctrl-C the same command
skips finished shards and redoes only the one in flight: every problem ends up in exactly one
shard. A manifest pins the problem ids and settings, so a rerun with other inputs fails loudly
instead of mixing two rewrites.
"""

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mtg_ray.data import Problem, Record, read_records, write_records, write_text
from mtg_ray.grading import Grader
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.jobs.generate import generate_and_grade
from mtg_ray.rewriting import RewriteConfig, expert_record, needs_guided, rewrite
from mtg_ray.rewriting.prompts import PromptTemplate, end_token_id
from mtg_ray.rewriting.stages import leak_gate, screen
from mtg_ray.rollout import Graded


def encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def expert_records(
    problems: Sequence[Problem], tokenizer: Any, template: PromptTemplate
) -> list[Record]:
    """The raw SFT data: each problem's expert solution on its plain prompt, ended as the
    template ends a turn (`end_token_id`: the token samples stop on)."""
    out, end = [], end_token_id(template, tokenizer)
    for p in problems:
        prompt = template.format(p.question)
        expert_ids = encode(tokenizer, p.expert_solution or "") + [end]
        out.append(expert_record(p, prompt, encode(tokenizer, prompt), expert_ids))
    return out


def guided_prompt_ids(
    problem: Problem, tokenizer: Any, template: PromptTemplate, cfg: RewriteConfig
) -> list[int]:
    """The stage-2 prompt: the question with the reference shown as `rewrite` shows it."""
    shown = cfg.reference(problem.expert_solution or "")
    return encode(tokenizer, template.format_guided(problem.question, shown))


def score_standins(
    records: Sequence[Record], problems: Sequence[Problem], rollout: Rollout, tokenizer: Any,
    template: PromptTemplate, cfg: RewriteConfig, counts: Counter[str] | None = None,
) -> list[Record]:  # fmt: skip
    """`records` with each expert record's `standin_logprobs`: its response scored by the
    rollout group's policy on the guided prompt (the sampling policy shown the reference, the
    stand-in for the expert's unknown behaviour), in one call; None for a pair too long to
    score (counted in `counts`)."""
    by_id = {p.problem_id: p for p in problems}
    todo = [i for i, r in enumerate(records) if r.source == "expert"]
    if not todo:
        return list(records)
    prompts = [guided_prompt_ids(by_id[records[i].problem_id], tokenizer, template, cfg)
               for i in todo]  # fmt: skip
    scores = rollout.score(prompts, [list(records[i].response_token_ids) for i in todo])
    if counts is not None:
        counts["scored"] += len(todo)
        counts["too_long_to_score"] += sum(s is None for s in scores)
    out = list(records)
    for i, score in zip(todo, scores, strict=True):
        out[i] = replace(out[i], standin_logprobs=score)
    return out


def count_drops(counts: Counter[str], dropped: dict[str, int], stage: str, level: str) -> None:
    """Add one problem's `screen` rejections: `dropped_<rule>_<stage>`, and per level
    `dropped_<rule>_<stage>_level_<L>` (the summary's and TensorBoard's keys)."""
    for rule, n in dropped.items():
        counts[f"dropped_{rule}_{stage}"] += n
        if level:
            counts[f"dropped_{rule}_{stage}_level_{level}"] += n


def count_generated(counts: Counter[str], stage: str, graded: Sequence[Graded]) -> None:
    """Add the samples a generate call drew for `stage`: `generated_<stage>` (the cost a run
    reports beside its accuracy)."""
    counts[f"generated_{stage}"] += sum(len(g.samples) for g in graded)


def gate_leaks(
    guided: dict[int, Graded], prompt_ids: Sequence[list[int]], rollout: Rollout,
    threshold: float, problems: Sequence[Problem], counts: Counter[str],
) -> None:  # fmt: skip
    """`leak_gate` every problem's correct guided samples, scored on the plain prompt in one
    call (in place), counting the rejections and the samples scored (`scored`)."""
    todo = [(i, j) for i, g in guided.items() for j, ok in enumerate(g.correct) if ok]
    if not todo:
        return
    scores = rollout.score(
        [prompt_ids[i] for i, _ in todo],
        [list(guided[i].samples[j].token_ids) for i, j in todo],
    )
    counts["scored"] += len(todo)
    counts["too_long_to_score"] += sum(s is None for s in scores)  # left ungated
    plain: dict[int, list[list[float] | None]] = {i: [None] * len(g.samples) for i, g in
                                                  guided.items()}  # fmt: skip
    for (i, j), score in zip(todo, scores, strict=True):
        plain[i][j] = score
    for i in {i for i, _ in todo}:
        guided[i], dropped = leak_gate(guided[i], plain[i], threshold)
        count_drops(counts, dropped, "guided", problems[i].level)


def verified(
    problem: Problem, graded: Graded, stage: str, steps_check: Callable[[str, str], bool],
    counts: Counter[str],
) -> Graded:  # fmt: skip
    """`graded` with the correct samples whose steps fail `steps_check` marked failed
    (`rewrite.verify=steps`), counted as "unfaithful"."""
    reference = problem.expert_solution or ""
    kept = tuple(
        ok and steps_check(reference, s.text)
        for s, ok in zip(graded.samples, graded.correct, strict=True)
    )
    count_drops(counts, {"unfaithful": sum(graded.correct) - sum(kept)}, stage, problem.level)
    return Graded(graded.samples, kept, graded.sampling)


def rewrite_problems(
    problems: Sequence[Problem],
    rollout: Rollout,
    tokenizer: Any,
    template: PromptTemplate,
    cfg: RewriteConfig,
    grader: Grader,
    counts: Counter[str] | None = None,
    steps_check: Callable[[str, str], bool] | None = None,
) -> list[Record]:
    """Stage 1 for all problems, stage 2 for those without a usable correct sample, stage 3
    last. A correct sample is usable unless a `screen` rule rejects it; `counts`, if given,
    gets the rejections (`count_drops`), the samples drawn per stage (`count_generated`) and
    those scored by the leak gate. With `rewrite.verify=steps`,
    `steps_check(expert_solution, response)` (the tiny world's) must pass too.

    Two generate calls, the second for the problems stage 1 left; with `rewrite.one_call`, one
    call samples both stages for every problem (a guided sample does not depend on the self
    samples: the same distribution) and the guided samples are used only where stage 1 fails.
    """
    counts = Counter() if counts is None else counts
    screening = cfg.screen()
    if cfg.verify == "steps" and steps_check is None:
        raise ValueError("rewrite.verify=steps needs the tiny world's step check (its data)")
    check = steps_check if cfg.verify == "steps" else None

    def verify(p: Problem, graded: Graded, stage: str) -> Graded:
        return graded if check is None else verified(p, graded, stage, check, counts)

    prompts = [template.format(p.question) for p in problems]
    prompt_ids = [encode(tokenizer, t) for t in prompts]
    answers = [p.reference_answer for p in problems]
    self_cfg, guided_cfg = cfg.sampling(cfg.samples), cfg.sampling(cfg.guided_samples)

    def guided_prompt(i: int) -> list[int]:
        return guided_prompt_ids(problems[i], tokenizer, template, cfg)

    ahead: list[Graded] = []
    if cfg.one_call and cfg.guided_samples > 0:
        n = len(problems)
        graded = generate_and_grade(
            rollout, prompt_ids + [guided_prompt(i) for i in range(n)], answers * 2,
            [self_cfg] * n + [guided_cfg] * n, grader,
        )  # fmt: skip
        first, ahead = graded[:n], graded[n:]
        count_generated(counts, "guided", ahead)
    else:
        first = generate_and_grade(rollout, prompt_ids, answers, self_cfg, grader)
    count_generated(counts, "self", first)
    self_samples = []
    for p, graded_self in zip(problems, first, strict=True):
        kept, dropped = screen(graded_self, "self", "", screening)
        count_drops(counts, dropped, "self", p.level)
        self_samples.append(verify(p, kept, "self"))
    guided_idx = [i for i, g in enumerate(self_samples) if needs_guided(g)]
    guided: dict[int, Graded] = {}
    if guided_idx and cfg.guided_samples > 0:
        if ahead:
            second = [ahead[i] for i in guided_idx]
        else:
            second = generate_and_grade(
                rollout, [guided_prompt(i) for i in guided_idx],
                [answers[i] for i in guided_idx], guided_cfg, grader,
            )  # fmt: skip
            count_generated(counts, "guided", second)
        for i, g in zip(guided_idx, second, strict=True):
            reference = cfg.reference(problems[i].expert_solution or "")
            guided[i], dropped = screen(g, "guided", reference, screening)
            count_drops(counts, dropped, "guided", problems[i].level)
        if cfg.leak_threshold is not None:
            gate_leaks(guided, prompt_ids, rollout, cfg.leak_threshold, problems, counts)
        guided = {i: verify(problems[i], g, "guided") for i, g in guided.items()}
    selection = cfg.selection()
    records, end = [], end_token_id(template, tokenizer)
    for i, p in enumerate(problems):
        expert_ids = encode(tokenizer, p.expert_solution or "") + [end]  # as `expert_records`
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
    steps_check: Callable[[str, str], bool] | None = None,
) -> list[Record]:
    """Rewrite `problems` into `out_dir/shards/`, resuming finished shards; all records
    (`steps_check`: see `rewrite_problems`)."""
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
                counts: Counter[str] = Counter()
                start = time.monotonic()
                done = rewrite_problems(
                    chunk, rollout, tokenizer, template, cfg, grader, counts, steps_check
                )
                counts["rewrite_s"] = round(time.monotonic() - start, 3)
                # before the shard itself, whose presence marks the shard done
                write_text(counts_path(path), json.dumps(dict(sorted(counts.items())), indent=1))
                write_records(path, done)
            records += done
            bar.update(len(chunk))
    return records


def counts_path(shard: Path) -> Path:
    """Where a shard's counts are kept: `screen` rejections (`count_drops` keys), samples
    drawn and scored, and its seconds (`rewrite_s`)."""
    return shard.with_suffix(".counts.json")


def rewrite_counts(out_dir: Path) -> dict[str, float]:
    """The counts of every shard of the rewrite in `out_dir`, summed."""
    total: Counter[str] = Counter()
    for shard in sorted((out_dir / "shards").glob("*.parquet")):
        if not counts_path(shard).is_file():
            raise FileNotFoundError(
                f"{counts_path(shard)}: missing; the shard was written before its counts were "
                "kept (start the rewrite over in a new output_dir)"
            )
        total.update(json.loads(counts_path(shard).read_text()))
    return {k: float(v) for k, v in sorted(total.items())}
