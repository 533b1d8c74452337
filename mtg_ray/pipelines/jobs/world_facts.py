"""The tiny world's facts that need the project's own stack (`docs/tinyworld.md`, targets a-c
and e): how its base model and its teacher re-solve the train split at the rewrite's sample
counts, and what an oracle teaches at the methods' budget.

`scripts/build_world.py --measure` runs it and adds the result to the world's `facts.json`.
The oracle trains with the `train` job's own loop (objective `sft`) on every train problem's
own-style, step-correct solution but the last `train.validation_problems` (at most a fifth),
for exactly the optimizer steps and batch a demo method trains, at each lr of a grid that grows
past an edge winner; each trained model is evaluated on the test split (the `evaluate` job) and
asked to self-solve the held-out problems it never trained on.
"""

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from mtg_ray.data import Problem, write_text
from mtg_ray.learner.schedule import num_steps
from mtg_ray.objectives import Objective
from mtg_ray.pipelines.groups.protocols import Rollout
from mtg_ray.pipelines.jobs.generate import generate_and_grade
from mtg_ray.pipelines.jobs.offline import evaluate_job, train_job
from mtg_ray.pipelines.jobs.rewrite import encode, expert_records, guided_prompt_ids
from mtg_ray.pipelines.jobs.session import Run
from mtg_ray.tinyworld.faithful import is_faithful
from mtg_ray.tinyworld.oracle import Resolved, oracle_problems, stage_shares

ORACLE_GRID = (3e-4, 1e-3, 3e-3)
MAX_GRID = 6  # lrs tried at most: the grid grows by 3x past an edge winner


def resolve(
    run: Run, rollout: Rollout, problems: Sequence[Problem], guided: bool = True
) -> list[Resolved]:
    """Each problem through the rollout group's policy: the self stage (`rewrite.samples`) and,
    with `guided`, where every self sample is wrong, the guided stage (`rewrite.guided_samples`)."""
    cfg, tok = run.cfg.rewrite, run.tokenizer
    answers = [p.reference_answer for p in problems]
    plain = [encode(tok, run.template.format(p.question)) for p in problems]
    first = generate_and_grade(rollout, plain, answers, cfg.sampling(cfg.samples), run.grader())
    missed = [i for i, g in enumerate(first) if guided and not any(g.correct)]
    guided_ids = [guided_prompt_ids(problems[i], tok, run.template, cfg) for i in missed]
    second = generate_and_grade(
        rollout, guided_ids, [answers[i] for i in missed], cfg.sampling(cfg.guided_samples),
        run.grader(),
    ) if missed else []  # fmt: skip
    verdicts = {
        i: tuple(
            (ok, ok and is_faithful(problems[i].expert_solution or "", s.text))
            for s, ok in zip(g.samples, g.correct, strict=True)
        )
        for i, g in zip(missed, second, strict=True)
    }
    return [
        Resolved(str(p.level), tuple(g.correct), verdicts.get(i, ()))
        for i, (p, g) in enumerate(zip(problems, first, strict=True))
    ]


def self_solved(resolved: Sequence[Resolved]) -> float | None:
    """The share of problems with a correct self sample."""
    return stage_shares(resolved)["all"]["self_solved"]


def _levels(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """avg@n overall ("all") and per level, and greedy accuracy, on the tiny world's test split."""
    metrics = results["tinyworld"]
    avg = next(k for k in metrics if k.startswith("avg@") and "/" not in k)
    out = {"all": metrics[avg], "greedy": metrics.get("greedy")}
    out.update({k.rsplit("_", 1)[1]: v for k, v in metrics.items() if k.startswith(avg + "/")})
    return out


def oracle(run: Run, rollout: Rollout, base: Sequence[Resolved]) -> dict[str, Any]:
    """The oracle at each lr of the grid (see the module doc), the best by test avg@n; `base`:
    the base model's `resolve` of the train split, whose held-out part is its self-solve rate."""
    cfg = run.cfg
    held = min(cfg.train.validation_problems, len(run.train_problems) // 5)  # small worlds
    trained, heldout = run.train_problems[:-held], run.train_problems[-held:]
    records = expert_records(oracle_problems(trained), run.tokenizer, run.template)
    steps = num_steps(len(run.train_problems), cfg.learner.train_batch_size, cfg.train.epochs)
    epochs = -(-steps * cfg.learner.train_batch_size // len(records))  # enough passes for them
    train = dataclasses.replace(cfg.train, epochs=epochs, max_steps=steps, eval_every=0)
    oracle_run = dataclasses.replace(run, cfg=dataclasses.replace(cfg, train=train))
    sft = Objective("sft", cfg.objective)
    runs: dict[str, dict[str, Any]] = {}
    grid = list(ORACLE_GRID)
    while True:
        for lr in [x for x in grid if f"{x:g}" not in runs]:
            name = f"oracle/lr-{lr:g}"
            train_job(oracle_run, records, sft, name, rollout, lr)
            runs[f"{lr:g}"] = {
                "test": _levels(evaluate_job(run, rollout, name)),
                "heldout": self_solved(resolve(run, rollout, heldout, guided=False)),
            }
        best = max(grid, key=lambda x: runs[f"{x:g}"]["test"]["all"])
        if len(grid) >= MAX_GRID or best not in (grid[0], grid[-1]):
            break
        grid = [grid[0] / 3, *grid] if best == grid[0] else [*grid, grid[-1] * 3]
    rollout.load_folder(run.model_path, 0)
    return {
        "steps": steps,
        "batch": cfg.learner.train_batch_size,
        "records": len(records),
        "grid": [f"{x:g}" for x in grid],
        "best_lr": f"{best:g}",
        "best_at_edge": best in (grid[0], grid[-1]),
        "runs": runs,
        "heldout_base": self_solved(base[-held:]),
    }


def world_facts_job(run: Run, rollout: Rollout) -> dict[str, Any]:
    """The base model's and the teacher's (if the world has one) stage shares on the train
    split, both on the test split, and the oracle; written to `<out>/world_facts.json`."""
    assert run.world is not None, "world facts need the tiny world"
    out = run.out / "world_facts.json"
    if out.is_file():
        return json.loads(out.read_text())
    base = resolve(run, rollout, run.train_problems)
    facts: dict[str, Any] = {
        "base": {
            "train": stage_shares(base),
            "test": _levels(evaluate_job(run, rollout, "base")),
        }
    }
    if run.world.teacher_dir.is_dir():  # worlds before tinyworld-3 have no teacher
        rollout.load_folder(run.world.teacher_dir, 0)
        facts["teacher"] = {
            "train": stage_shares(resolve(run, rollout, run.train_problems)),
            "test": _levels(evaluate_job(run, rollout, "teacher")),
        }
        rollout.load_folder(run.model_path, 0)
    facts["oracle"] = oracle(run, rollout, base)
    write_text(out, json.dumps(facts, indent=1) + "\n")
    return facts
