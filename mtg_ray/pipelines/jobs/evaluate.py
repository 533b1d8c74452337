"""Evaluation: sample n responses per problem with the rollout group (and one greedy), grade,
report.

Writes one jsonl row per response (benchmark, problem_id, level, mode: sample | greedy, sample,
response, reference_answer, correct, policy_version) atomically, and returns
`{benchmark: {"avg@n": .., "pass@n": .., "greedy": .., "avg@n/level_<L>": ..}}`.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtg_ray.data import Problem, read_benchmark, write_jsonl
from mtg_ray.evaluate.config import EvalConfig
from mtg_ray.evaluate.metrics import set_metrics
from mtg_ray.grading import Grader
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.jobs.generate import generate_and_grade
from mtg_ray.rewriting.prompts import PromptTemplate
from mtg_ray.tinyworld import World, read_split


def load_eval_sets(
    names: Sequence[str], world: World | None, max_problems: int = 0
) -> dict[str, list[Problem]]:
    """Problems per evaluation set: "tinyworld", a benchmark name, or a jsonl split path."""
    out = {}
    for name in names:
        if name == "tinyworld":
            if world is None:
                raise ValueError("data.test names tinyworld but the run has no tiny world")
            problems = world.test_problems()
        elif Path(name).suffix == ".jsonl":
            problems = read_split(name)
        else:
            problems = read_benchmark(name)
        out[Path(name).stem if name.endswith(".jsonl") else name] = (
            problems[:max_problems] if max_problems else problems
        )
    return out


def evaluate(
    rollout: Rollout,
    tokenizer: Any,
    template: PromptTemplate,
    eval_sets: Mapping[str, Sequence[Problem]],
    cfg: EvalConfig,
    grader: Grader,
    out_path: Path | None = None,
) -> dict[str, dict[str, float]]:
    """Per set, with the rollout group's current weights: avg@n, pass@n, greedy accuracy and
    avg@n per level (`set_metrics`); one jsonl row per response to `out_path` if given."""
    results: dict[str, dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    for bench, problems in eval_sets.items():
        prompts = [
            tokenizer.encode(template.format(p.question), add_special_tokens=False)
            for p in problems
        ]
        answers = [p.reference_answer for p in problems]
        # The sampled and the greedy requests in one generate call: no second wait.
        modes = {"sample": cfg.sampling()}
        if cfg.greedy:
            modes["greedy"] = cfg.greedy_sampling()
        sampling = [c for c in modes.values() for _ in prompts]
        graded = generate_and_grade(
            rollout, prompts * len(modes), answers * len(modes), sampling, grader
        )
        n = len(prompts)
        runs = {mode: graded[k * n : (k + 1) * n] for k, mode in enumerate(modes)}
        results[bench] = set_metrics(
            [list(g.correct) for g in runs["sample"]],
            [p.level for p in problems],
            [g.correct[0] for g in runs["greedy"]] if cfg.greedy else None,
        )
        rows += [
            {
                "benchmark": bench,
                "problem_id": p.problem_id,
                "level": p.level,
                "mode": mode,
                "sample": j,
                "response": s.text,
                "reference_answer": p.reference_answer,
                "correct": ok,
                "policy_version": s.policy_version,
            }
            for mode, graded in runs.items()
            for p, g in zip(problems, graded, strict=True)
            for j, (s, ok) in enumerate(zip(g.samples, g.correct, strict=True))
        ]
    if out_path is not None:
        write_jsonl(out_path, rows)
    return results
