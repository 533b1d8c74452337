"""The lr selection driver over in-process stand-ins: every method gets the same grid and
budget, validation problems never reach training, the best validation lr wins."""

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from mtg_ray.config import JobConfig
from mtg_ray.data.errors import DataError
from mtg_ray.learner import TrainConfig
from mtg_ray.learner.lr_selection import choose_lr, grid_edge
from mtg_ray.pipelines.jobs import select_lr as select_lr_module
from mtg_ray.pipelines.jobs.select_lr import missing_trials, select_lr, trial_result
from mtg_ray.pipelines.jobs.session import Run, world_hash
from mtg_ray.pipelines.jobs.study_report import selection_lines
from mtg_ray.tinyworld import World, WorldConfig, recipe_hash

GRID = (1e-4, 3e-4, 1e-3)
# The lr at which each method's stand-in policy solves everything; elsewhere it solves nothing.
BEST = {"sft": 1e-3, "dr_dft": 1e-4}


def test_choose_lr_takes_the_best_and_breaks_ties_low() -> None:
    assert choose_lr({"0.0001": 0.2, "0.0003": 0.5, "0.001": 0.4}) == 3e-4
    assert choose_lr({"0.001": 0.5, "0.0001": 0.5, "0.0003": 0.1}) == 1e-4
    with pytest.raises(ValueError, match="no validation scores"):
        choose_lr({})


def test_method_lr_is_checked_and_falls_back_to_learner_lr() -> None:
    cfg = JobConfig(
        train=TrainConfig(method_lr={"sft": 1e-3}),
        learner=dataclasses.replace(JobConfig().learner, lr=2e-4),
    )
    assert cfg.lr_of("sft") == 1e-3 and cfg.lr_of("dft") == 2e-4
    with pytest.raises(ValueError, match="unknown methods"):
        TrainConfig(method_lr={"sgd": 1e-3})
    with pytest.raises(ValueError, match="lr_grid"):
        TrainConfig(lr_grid=())


def _run(standins, tmp_path: Path, created=lambda learner: None) -> Run:
    """A Run whose learner groups are stand-ins that remember their lr (`created` sees each)."""
    cfg = JobConfig(
        methods=tuple(BEST),
        output_dir=str(tmp_path),
        train=TrainConfig(
            lr_grid=GRID, validation_problems=6, validation_n=2, save_every=0, epochs=1
        ),
        learner=dataclasses.replace(JobConfig().learner, train_batch_size=16, micro_batch_size=8),
    )

    class Learner(standins.Learner):
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.lr = lr
            created(self)

        def named_weights(self, bucket_bytes: int):  # the "weights" say which lr trained
            yield from super().named_weights(bucket_bytes)
            yield "lr", torch.tensor([self.lr], dtype=torch.float64)

    class StandInRun(Run):
        def learner_group(self, total_steps: int, lr: float | None = None) -> Learner:
            return Learner(lr if lr is not None else self.cfg.learner.lr)

        def grader(self):
            return standins.grader

    run = StandInRun(cfg, None, tmp_path, "standin", standins.tokenizer)
    run.__dict__["train_problems"] = standins.problems(38)
    return run


def test_selection_trains_every_method_on_the_same_grid_without_validation(
    standins, tmp_path: Path
) -> None:
    trained: list = []
    rollout = standins.Rollout()
    methods = iter(m for m in BEST for _ in GRID)  # select_lr's order: method, then lr

    def created(learner) -> None:
        rollout.method = next(methods)
        trained.append(learner)

    def policy(prompt: str, version: int, i: int) -> str:
        k = standins.answer_of(prompt)
        good = version > 0 and rollout.lr == BEST[rollout.method]
        return f"so \\boxed{{{k if good else k + 1}}}"

    def update(named, version: int) -> None:
        rollout.lr = float(dict(named)["lr"][0])
        rollout.version = version

    rollout.policy, rollout.update_weights, rollout.lr = policy, update, 0.0
    run = _run(standins, tmp_path, created)
    selection = select_lr(run, rollout)

    assert selection["selected"] == BEST
    assert selection["base"] == 0.0 and selection["base_not_beaten"] == []
    assert selection["lr_grid"] == list(GRID) and selection["validation_problems"] == 6
    assert [(lr, acc) for lr, acc in selection["accuracy"]["sft"].items()] == [
        ("0.0001", 0.0), ("0.0003", 0.0), ("0.001", 1.0)
    ]  # fmt: skip
    held_out = {f"p{k}" for k in range(32, 38)}
    assert len(trained) == 2 * len(GRID)
    steps = {len(learner.trained) for learner in trained}
    assert steps == {2}  # 32 problems, batch 16, one epoch: the same budget for every run
    for learner in trained:
        ids = {pid for batch in learner.trained for pid in batch}
        assert ids and not ids & held_out
    on_disk = json.loads((tmp_path / "select_lr" / "selection.json").read_text())
    assert on_disk == selection

    trained.clear()
    assert select_lr(run, rollout) == selection and not trained  # read back, nothing retrained
    # every trial kept (a study's records put back) but no selection.json: it is recomputed
    # from the trials alone, with no rollout group, no rewrite and no training
    (tmp_path / "select_lr" / "selection.json").unlink()
    assert missing_trials(run) == []
    assert select_lr(run, None) == selection and not trained
    (tmp_path / "select_lr" / "selection.json").unlink()
    trial_result(run, "sft", GRID[0]).unlink()
    trial_result(run, "base", None).unlink()
    assert missing_trials(run) == [("base", None), ("sft", GRID[0])]
    with pytest.raises(ValueError, match=r"trials \[\('base', None\), \('sft', 0.0001\)\] are"):
        select_lr(run, None)

    # The study report's section on it (tests/jobs/test_study_job.py runs a study without it).
    lines = "\n".join(selection_lines(run.cfg, selection, tmp_path / "none.json"))
    assert "## Learning rates" in lines and "last 6 problems, then avg@" in lines
    assert "| method | base | lr 0.0001 | lr 0.0003 | lr 0.001 | selected |" in lines
    assert "| sft | 0.0000 | 0.0000 | 0.0000 | 1.0000 | 0.001 |" in lines
    assert "beats the base" not in lines


def test_the_base_model_is_scored_once_and_what_does_not_beat_it_is_named(
    standins, tmp_path: Path, monkeypatch, caplog
) -> None:
    """The base model is scored once, before any training, on the validation problems with the
    trials' sampling; a method whose best lr does not beat it (here a tie) is named in
    selection.json, the log and the study's table, and is still given its best lr."""
    rollout = standins.Rollout()
    methods = iter(m for m in BEST for _ in GRID)
    scored: list[tuple[int, list[str], int, bool]] = []
    evaluate = select_lr_module.evaluate

    def counted(rollout, tokenizer, template, sets, cfg, grader):
        scored.append((rollout.version, [p.problem_id for p in sets["validation"]], cfg.n,
                       cfg.greedy))  # fmt: skip
        return evaluate(rollout, tokenizer, template, sets, cfg, grader)

    def policy(prompt: str, version: int, i: int) -> str:
        """The base solves the even problems; sft at its lr all; dr_dft at its lr what the base
        does, at the others nothing."""
        k = standins.answer_of(prompt)
        if version == 0:
            good = k % 2 == 0
        elif rollout.lr != BEST[rollout.method]:
            good = False
        else:
            good = rollout.method == "sft" or k % 2 == 0
        return f"so \\boxed{{{k if good else k + 1}}}"

    def update(named, version: int) -> None:
        rollout.lr = float(dict(named)["lr"][0])
        rollout.version = version

    def created(learner) -> None:
        rollout.method = next(methods)

    monkeypatch.setattr(select_lr_module, "evaluate", counted)
    rollout.policy, rollout.update_weights, rollout.lr = policy, update, 0.0
    run = _run(standins, tmp_path, created)
    with caplog.at_level(logging.WARNING):
        selection = select_lr(run, rollout)

    held_out = [f"p{k}" for k in range(32, 38)]
    assert scored[0] == (0, held_out, 2, False)  # first, untrained, as every trial validates
    assert [v for v, *_ in scored].count(0) == 1 and len(scored) == 1 + 2 * len(GRID)
    assert all(s[1:] == (held_out, 2, False) for s in scored)  # the same problems and sampling
    assert selection["base"] == 0.5
    assert selection["accuracy"]["dr_dft"] == {"0.0001": 0.5, "0.0003": 0.0, "0.001": 0.0}
    assert selection["selected"] == BEST  # reported, not a new rule
    assert selection["base_not_beaten"] == ["dr_dft"]
    assert (
        "select_lr: no lr of the grid beats the base model (avg@2 0.5000 on the validation "
        "problems) for: dr_dft" in caplog.text
    )
    base = json.loads(trial_result(run, "base", None).read_text())
    assert base["validation"]["avg@2"] == 0.5 and base["world"] is None
    assert base["settings"]["train.validation_n"] == 2 and "eval.n" not in base["settings"]
    assert not any(k.startswith(("learner.", "rewrite.")) for k in base["settings"])
    lines = "\n".join(selection_lines(run.cfg, selection, tmp_path / "none.json"))
    assert "| dr_dft | 0.5000 | 0.5000 | 0.0000 | 0.0000 | 0.0001 |" in lines
    assert "| sft | 0.5000 | 0.0000 | 0.0000 | 1.0000 | 0.001 |" in lines
    assert "No lr of the grid beats the base model (0.5000) for: dr_dft" in lines

    scored.clear()
    assert select_lr(run, None) == selection and not scored  # kept, not scored again
    # the base's score lost alone: scored again (on a fresh group's base policy), nothing trained
    trial_result(run, "base", None).unlink()
    assert select_lr(run, standins.Rollout(policy)) == selection
    assert [(v, n) for v, _, n, _ in scored] == [(0, 2)]


def test_a_trial_made_with_other_settings_is_refused_not_read(standins, tmp_path: Path) -> None:
    """A trial keeps the settings it was made with: a later selection that would make it
    otherwise refuses it, naming its file and what changed; a test-time-only change (eval.n)
    reads it back; a trial kept before settings were is read on its lr alone."""
    rollout = standins.Rollout()
    run = _run(standins, tmp_path)
    selection = select_lr(run, rollout)
    path = trial_result(run, "sft", GRID[0])
    made = json.loads(path.read_text())["settings"]
    assert made["train.validation_n"] == 2 and made["rewrite.temperature"] == 1.0
    assert "eval.n" not in made and "train.lr_grid" not in made and "output_dir" not in made

    def rerun(**sections: Any) -> Run:
        cfg = dataclasses.replace(
            run.cfg,
            **{k: dataclasses.replace(getattr(run.cfg, k), **v) for k, v in sections.items()},
        )
        again = dataclasses.replace(run, cfg=cfg)
        again.__dict__["train_problems"] = run.train_problems
        return again

    assert select_lr(rerun(eval={"n": 16}), None) == selection  # nothing to train again
    hotter = rerun(rewrite={"temperature": 0.7})
    with pytest.raises(
        DataError,
        match=re.escape(f"{path}: field 'settings': was made with other settings than this "
                        "study's (rewrite.temperature 1.0 -> 0.7; to train it again, move its "
                        f"folder {path.parent} away"),
    ):  # fmt: skip
        select_lr(hotter, rollout)
    for name in BEST:
        for lr in GRID:
            kept = trial_result(run, name, lr)
            kept.write_text(json.dumps({"validation": json.loads(kept.read_text())["validation"]}))
    assert select_lr(hotter, None)["selected"] == selection["selected"]


def test_a_trial_made_on_another_world_is_refused_not_read(standins, tmp_path: Path) -> None:
    """A trial (the base model's score among them) names the tiny world it was made on: a
    selection on another world refuses it, naming its file and both worlds, as one on a tiny
    world refuses a trial that names none (kept before trials named their world); a selection
    on no tiny world reads trials of none."""
    rollout = standins.Rollout()
    run = _run(standins, tmp_path)
    run.__dict__["world_hash"] = "aaaa"  # a cached_property: the run's world's recipe hash
    selection = select_lr(run, rollout)
    for name, lr in [("base", None), *((m, lr) for m in BEST for lr in GRID)]:
        assert json.loads(trial_result(run, name, lr).read_text())["world"] == "aaaa"

    def on(world: str | None) -> Run:
        again = dataclasses.replace(run)
        again.__dict__.update(train_problems=run.train_problems, world_hash=world)
        return again

    assert select_lr(on("aaaa"), None) == selection  # the same world: read back
    base = trial_result(run, "base", None)
    with pytest.raises(
        DataError,
        match=re.escape(f"{base}: field 'world': was made on tiny world aaaa, but this study "
                        f"runs on tiny world bbbb (to score it again, move its folder "
                        f"{base.parent} away (and a study's copy, "
                        "<results_dir>/runs/select_lr/base.json))"),
    ):  # fmt: skip
        select_lr(on("bbbb"), rollout)
    trial = trial_result(run, "sft", GRID[1])
    kept = json.loads(trial.read_text())
    trial.write_text(json.dumps({**kept, "world": "bbbb"}))
    with pytest.raises(
        DataError,
        match=re.escape(f"{trial}: field 'world': was made on tiny world bbbb, but this study "
                        "runs on tiny world aaaa (to train it again"),
    ):  # fmt: skip
        select_lr(on("aaaa"), rollout)
    for name, lr in [("base", None), *((m, lr) for m in BEST for lr in GRID)]:
        kept = json.loads(trial_result(run, name, lr).read_text())
        del kept["world"]  # kept before trials named their world
        trial_result(run, name, lr).write_text(json.dumps(kept))
    with pytest.raises(
        DataError, match=re.escape(f"{base}: field 'world': names no tiny world, but this study "
                                   "runs on tiny world aaaa"),
    ):  # fmt: skip
        select_lr(on("aaaa"), rollout)
    assert select_lr(on(None), None) == selection  # no tiny world: trials of none are read


def test_a_runs_world_hash_is_its_worlds_recipe_hash(tmp_path: Path) -> None:
    """What records and trials name: the opened world's recipe.json hash (a run), or, before a
    run opens it, its config's recipe hash (the same by `build_world`); None on no tiny world."""
    (tmp_path / "recipe.json").write_text(json.dumps({"hash": "aaaa"}))
    world = World(root=tmp_path, config=WorldConfig(), facts={})
    assert Run(JobConfig(), world, tmp_path, "m", None).world_hash == "aaaa"
    assert Run(JobConfig(), None, tmp_path, "m", None).world_hash is None
    assert world_hash(JobConfig()) == recipe_hash(JobConfig().world)
    numina = dataclasses.replace(
        JobConfig(), model=dataclasses.replace(JobConfig().model, path="some/model"),
        data=dataclasses.replace(JobConfig().data, train="train.parquet", test=("math500",)),
    )  # fmt: skip
    assert world_hash(numina) is None


def test_too_many_validation_problems_is_an_error(standins, tmp_path: Path) -> None:
    run = _run(standins, tmp_path)
    run.__dict__["train_problems"] = standins.problems(6)
    with pytest.raises(ValueError, match="validation_problems"):
        select_lr(run, standins.Rollout())


def test_a_winner_at_either_end_of_the_grid_is_flagged() -> None:
    grid = (3e-5, 1e-4, 3e-4, 1e-3)
    assert grid_edge(grid, 3e-5) == "lowest" and grid_edge(grid, 1e-3) == "highest"
    assert grid_edge(grid, 1e-4) == grid_edge(grid, 3e-4) == ""
    assert grid_edge((1e-4,), 1e-4) == ""  # one lr: nothing to extend toward


def test_online_candidates_are_selected_on_the_same_split_and_grid(
    standins, tmp_path: Path
) -> None:
    """An online design (here rounds of dr_dft) trains online per grid lr on the split less
    the held-out problems, at its method's offline steps, and gets its own best lr."""
    trained: list = []
    rollout = standins.Rollout()

    def policy(prompt: str, version: int, i: int) -> str:
        k = standins.answer_of(prompt)
        good = version > 0 and rollout.lr == BEST["dr_dft"]
        return f"so \\boxed{{{k if good else k + 1}}}"

    def update(named, version: int) -> None:
        rollout.lr = float(dict(named)["lr"][0])
        rollout.version = version

    rollout.policy, rollout.update_weights, rollout.lr = policy, update, 0.0
    run = _run(standins, tmp_path, trained.append)
    run = dataclasses.replace(run, cfg=dataclasses.replace(run.cfg, methods=("dr_dft",)))
    run.__dict__["train_problems"] = standins.problems(38)
    offline_only = select_lr(run, rollout)
    assert list(offline_only["selected"]) == ["dr_dft"]
    # a later call with a design (issue 23's study after the re-run) trains its trials alone
    candidate = {"method": "dr_dft", "design": "rounds", "rounds": 2}
    selection = select_lr(run, rollout, [candidate])

    assert selection["selected"] == {"dr_dft": BEST["dr_dft"], "rounds_dr_dft": BEST["dr_dft"]}
    assert list(selection["accuracy"]["rounds_dr_dft"]) == ["0.0001", "0.0003", "0.001"]
    held_out = {f"p{k}" for k in range(32, 38)}
    assert [learner.lr for learner in trained] == list(GRID) * 2  # offline, then online
    for learner in trained:
        assert len(learner.trained) == 2  # online at the offline run's steps, same split
        ids = {pid for batch in learner.trained for pid in batch}
        assert ids and not ids & held_out
    folder = tmp_path / "select_lr" / "rounds_dr_dft" / "lr-0.0001"
    assert (folder / "validation.json").is_file()
    assert (folder / "rounds_dr_dft" / "data" / "round-00000.parquet").is_file()
