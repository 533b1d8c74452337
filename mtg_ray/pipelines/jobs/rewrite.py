"""The rewrite job: the paper's three stages over a problem set, written as resumable shards.

Problems are cut into shards of `rewrite.shard_size`; a shard's parquet file is written
atomically once all of its problems are decided, so after a crash or Ctrl-C the same command
skips finished shards and redoes only the one in flight: every problem ends up in exactly one
shard. A manifest pins the problem ids and settings, so a rerun with other inputs fails loudly
instead of mixing two rewrites.
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mtg_ray.data import Problem, Record, read_records, write_records, write_text
from mtg_ray.grading import Grader
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.jobs.generate import generate_and_grade
from mtg_ray.rewriting import RewriteConfig, expert_record
from mtg_ray.rewriting.config import LATER_REWRITE_DEFAULTS
from mtg_ray.rewriting.prompts import PromptTemplate, end_token_id
from mtg_ray.rewriting.stages import StageSamples, leak_gate, rewrite_stages, screen
from mtg_ray.rollout import Graded, SamplingConfig


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


def guided_text(problem: Problem, template: PromptTemplate, cfg: RewriteConfig) -> str:
    """A guided prompt in `template`'s format: the question with the reference shown as
    `rewrite` shows it."""
    return template.format_guided(problem.question, cfg.reference(problem.expert_solution or ""))


def guided_prompt_ids(
    problem: Problem, tokenizer: Any, template: PromptTemplate, cfg: RewriteConfig
) -> list[int]:
    """The stage-2 prompt (`guided_text`), encoded."""
    return encode(tokenizer, guided_text(problem, template, cfg))


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
    guided: dict[int, Graded], prompt_ids: Mapping[int, list[int]], rollout: Rollout,
    threshold: float, problems: Sequence[Problem], counts: Counter[str], stage: str = "guided",
) -> None:  # fmt: skip
    """`leak_gate` every problem's correct samples of a stage shown the reference, scored on
    the plain prompt (`prompt_ids[i]`, in the format of the model that drew them) by that
    model (`rollout`) in one call (in place), counting the rejections and the samples scored."""
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
        count_drops(counts, dropped, stage, problems[i].level)


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


@dataclass(frozen=True)
class Teacher:
    """The teacher as a rewrite uses it: its engine group (never weight-synced; `group()`
    starts it on first use, so a rewrite resumed or reused whole never does), the prompt
    format it expects, its tokenizer (whose ids are the policy's: `vocab_mismatch`) and each
    teacher stage's sampling."""

    group: Callable[[], Rollout]
    template: PromptTemplate
    tokenizer: Any
    sampling: SamplingConfig

    @property
    def rollout(self) -> Rollout:
        return self.group()


def rewrite_problems(
    problems: Sequence[Problem],
    rollout: Rollout,
    tokenizer: Any,
    template: PromptTemplate,
    cfg: RewriteConfig,
    grader: Grader,
    counts: Counter[str] | None = None,
    steps_check: Callable[[str, str], bool] | None = None,
    teacher: Teacher | None = None,
) -> list[Record]:
    """The sampling stages of `cfg.stages()` in order, each for the problems no earlier stage
    gave a usable correct sample, then the expert fallback. Stage `self`: the policy on the
    plain prompt, for every problem; `guided`: the policy shown the reference; `teacher_self`
    and `teacher`: the teacher (`rewrite.rewriter`), the same two ways, in its own prompt
    format. A correct sample is usable unless a `screen` rule rejects it (and, with
    `rewrite.leak_threshold`, the leak gate: a sample shown the reference scored on the plain
    prompt by the model that drew it); `counts`, if given, gets the rejections (`count_drops`),
    the samples drawn per stage (`count_generated`) and those scored. With
    `rewrite.verify=steps`, `steps_check(expert_solution, response)` (the tiny world's) must
    pass too.

    With `rewrite.one_call` (policy stages), one call samples self and guided for every
    problem (a guided sample does not depend on the self samples: the same distribution) and
    the guided samples are used only where stage 1 fails.
    """
    counts = Counter() if counts is None else counts
    if cfg.verify == "steps" and steps_check is None:
        raise ValueError("rewrite.verify=steps needs the tiny world's step check (its data)")
    if cfg.uses_teacher and teacher is None:
        raise ValueError(f"rewrite.rewriter={cfg.rewriter} needs the teacher's engine group")
    run = StageRun(problems, rollout, tokenizer, template, cfg, grader, counts, teacher)
    check = steps_check if cfg.verify == "steps" else None
    stages = cfg.stages()
    drawn: dict[str, list[Graded]] = {}
    if cfg.one_call and stages[:2] == ("self", "guided") and cfg.guided_samples > 0:
        drawn = run.sample_both()
    results: dict[str, dict[int, Graded]] = {}
    todo = list(range(len(problems)))
    for stage in stages:
        if not todo or (stage == "guided" and cfg.guided_samples == 0):
            continue
        if stage in drawn:
            samples = [drawn[stage][i] for i in todo]
        else:
            samples = run.sample(stage, todo)
        graded = {i: run.usable(stage, i, g) for i, g in zip(todo, samples, strict=True)}
        if cfg.leak_threshold is not None and stage in ("guided", "teacher"):
            run.gate_leaks(stage, graded)
        if check is not None:
            graded = {i: verified(problems[i], g, stage, check, counts) for i, g in graded.items()}
        results[stage] = graded
        todo = [i for i in todo if not graded[i].any_correct]
    selection = cfg.selection()
    records, end = [], end_token_id(template, tokenizer)
    for i, p in enumerate(problems):
        expert_ids = encode(tokenizer, p.expert_solution or "") + [end]  # as `expert_records`
        records += rewrite_stages(
            p, run.prompts[i], run.prompt_ids[i], expert_ids,
            [StageSamples(stage, results.get(stage, {}).get(i), run.behaviour_prompt(stage, i))
             for stage in stages],
            selection,
        )  # fmt: skip
    return records


@dataclass
class StageRun:
    """One `rewrite_problems` call's stages: each stage's prompts, who samples them (the
    policy's rollout group or the teacher's), the screen and the leak gate."""

    problems: Sequence[Problem]
    rollout: Rollout
    tokenizer: Any
    template: PromptTemplate
    cfg: RewriteConfig
    grader: Grader
    counts: Counter[str]
    teacher: Teacher | None

    def __post_init__(self) -> None:
        self.prompts = [self.template.format(p.question) for p in self.problems]
        self.prompt_ids = [encode(self.tokenizer, t) for t in self.prompts]
        self.answers = [p.reference_answer for p in self.problems]

    def _teacher(self, stage: str) -> Teacher | None:
        """The teacher, for a stage it samples (`teacher_self`, `teacher`); else None."""
        return self.teacher if stage.startswith("teacher") else None

    def text(self, stage: str, i: int) -> str:
        """The prompt stage `stage` samples problem i from, in its sampler's format."""
        teacher = self._teacher(stage)
        fmt = teacher.template if teacher else self.template
        if stage_kind(stage) == "self":
            return fmt.format(self.problems[i].question)
        return guided_text(self.problems[i], fmt, self.cfg)

    def ids(self, stage: str, i: int) -> list[int]:
        if stage == "self":
            return self.prompt_ids[i]
        teacher = self._teacher(stage)
        return encode(teacher.tokenizer if teacher else self.tokenizer, self.text(stage, i))

    def behaviour_prompt(self, stage: str, i: int) -> str | None:
        """What a teacher stage's records keep as the prompt their sampler saw."""
        return self.text(stage, i) if self._teacher(stage) else None

    def sampler(self, stage: str) -> Rollout:
        teacher = self._teacher(stage)
        return teacher.rollout if teacher else self.rollout

    def sample(self, stage: str, idx: list[int]) -> list[Graded]:
        cfg, teacher = self.cfg, self._teacher(stage)
        if teacher:
            sampling = teacher.sampling
        else:
            sampling = cfg.sampling(cfg.samples if stage == "self" else cfg.guided_samples)
        start = time.monotonic()
        graded = generate_and_grade(
            self.sampler(stage), [self.ids(stage, i) for i in idx],
            [self.answers[i] for i in idx], sampling, self.grader,
        )  # fmt: skip
        count_generated(self.counts, stage, graded)
        self.counts[f"seconds_{stage}"] += round(time.monotonic() - start, 3)
        return graded

    def sample_both(self) -> dict[str, list[Graded]]:
        """`rewrite.one_call`: the policy's self and guided samples of every problem at once."""
        cfg, n = self.cfg, len(self.problems)
        both = generate_and_grade(
            self.rollout, self.prompt_ids + [self.ids("guided", i) for i in range(n)],
            self.answers * 2,
            [cfg.sampling(cfg.samples)] * n + [cfg.sampling(cfg.guided_samples)] * n, self.grader,
        )  # fmt: skip
        count_generated(self.counts, "guided", both[n:])
        count_generated(self.counts, "self", both[:n])
        return {"self": both[:n], "guided": both[n:]}

    def usable(self, stage: str, i: int, graded: Graded) -> Graded:
        """`graded` with the correct samples a `screen` rule rejects marked failed (counted)."""
        p, kind = self.problems[i], stage_kind(stage)
        reference = "" if kind == "self" else self.cfg.reference(p.expert_solution or "")
        kept, dropped = screen(graded, kind, reference, self.cfg.screen())
        count_drops(self.counts, dropped, stage, p.level)
        return kept

    def gate_leaks(self, stage: str, graded: dict[int, Graded]) -> None:
        """The leak gate on a stage shown the reference: its sampler scores the correct
        samples on the plain prompt in its own format."""
        plain = "teacher_self" if self._teacher(stage) else "self"
        gate_leaks(
            graded, {i: self.ids(plain, i) for i in graded}, self.sampler(stage),
            self.cfg.leak_threshold or 0.0, self.problems, self.counts, stage,
        )  # fmt: skip


def stage_kind(stage: str) -> str:
    """`screen`'s view of a stage: a plain one (self) or one shown the reference (guided)."""
    return "self" if stage in ("self", "teacher_self") else "guided"


def rewrite_manifest(
    problems: Sequence[Problem], cfg: RewriteConfig, model: str, teacher: Teacher | None,
    teacher_model: str,
) -> dict[str, Any]:  # fmt: skip
    """What a rewrite folder is a rewrite of: its problems, settings, policy and teacher."""
    ids = hashlib.sha256("\n".join(p.problem_id for p in problems).encode()).hexdigest()
    manifest = {
        "problems": len(problems),
        "problem_ids_sha256": ids,
        "rewrite": {
            k: v
            for k, v in asdict(cfg).items()
            if k not in LATER_REWRITE_DEFAULTS or LATER_REWRITE_DEFAULTS[k] != v
        },
        "model": model,
    }
    if teacher is not None:  # a rewrite without one keeps the manifest it always had
        manifest["teacher"] = {
            "model": teacher_model, "template": teacher.template.name,
            "sampling": asdict(teacher.sampling),
        }  # fmt: skip
    return json.loads(json.dumps(manifest))  # as read back from its file


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
    teacher: Teacher | None = None,
    teacher_model: str = "",
) -> list[Record]:
    """Rewrite `problems` into `out_dir/shards/`, resuming finished shards; all records
    (`steps_check`, `teacher`: see `rewrite_problems`; `teacher_model` names the teacher in
    the manifest)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = rewrite_manifest(problems, cfg, model, teacher, teacher_model)
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
                    chunk, rollout, tokenizer, template, cfg, grader, counts, steps_check,
                    teacher,
                )  # fmt: skip
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


# What a kept rewrite holds: its manifest and its shards with their counts (not its summary,
# which the run that reuses it makes against its own expert data).
KEPT = ("manifest.json", "shards")


def problems_digest(problems: Sequence[Problem]) -> str:
    """A hash of the problems' text (question, answer, expert solution), not only their ids:
    two data files may number their problems alike."""
    digest = hashlib.sha256()
    for p in problems:
        for text in (p.problem_id, p.question, p.reference_answer, p.expert_solution or ""):
            digest.update(text.encode() + b"\0")
    return digest.hexdigest()


def kept_rewrite(root: Path, manifest: Mapping[str, Any], sampling: Mapping[str, Any]) -> Path:
    """Where a finished rewrite of `manifest` is kept for other runs to reuse, under `root`
    (the cache): keyed by the manifest and what else decides its samples (`sampling`: the
    problems' text, the engines' seeds, counts and settings)."""
    key = json.dumps([manifest, sampling], sort_keys=True)
    return root / "rewrites" / f"rewrite-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def reuse_rewrite(kept: Path, out: Path) -> bool:
    """Copy the rewrite kept at `kept` into `out` if `out` has no finished shard yet (what an
    interrupted attempt left there is replaced); whether it did."""
    if not kept.is_dir() or any((out / "shards").glob("*.parquet")):
        return False
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        for name in KEPT:
            copy = shutil.copytree if (kept / name).is_dir() else shutil.copy2
            copy(kept / name, Path(tmp) / name)
        shutil.rmtree(out / "shards", ignore_errors=True)  # counts of an unfinished shard
        for name in KEPT:  # the shard folder last: its files mark the rewrite done
            os.replace(Path(tmp) / name, out / name)
    return True


def keep_rewrite(out: Path, kept: Path) -> None:
    """Keep the finished rewrite in `out` at `kept` (whole or not at all), unless one is kept
    there already."""
    if kept.is_dir():
        return
    kept.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kept.name}.", dir=kept.parent))
    try:
        for name in KEPT:
            copy = shutil.copytree if (out / name).is_dir() else shutil.copy2
            copy(out / name, tmp / name)
        os.replace(tmp, kept)
    except OSError:  # another run kept it first, or the copy failed: nothing half-kept
        shutil.rmtree(tmp, ignore_errors=True)
