"""The teacher rewriter on a small tiny world with its own teacher (a vLLM engine group of its
own beside the rollout group): offline rewrite and training, online, each resumed after a
crash; the records carry the teacher's log-probs (the teacher re-scores them) and the prompt
it saw."""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from mtg_ray.config import compose
from mtg_ray.data import read_records
from mtg_ray.pipelines.groups.grading import grade_parallel
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.pipelines.jobs.offline import method_objective, rewrite_job, train_job
from mtg_ray.pipelines.jobs.online import online_job
from mtg_ray.pipelines.jobs.session import KeptLearner, Run, start

from .conftest import on_shared

pytestmark = pytest.mark.slow

SETTINGS = (
    "data.max_train_problems=16",
    "data.max_test_problems=8",
    "eval.n=1",
    "rollout.num_engines=1",
    "rewrite.shard_size=8",
    "learner.train_batch_size=8",
    "teacher.n=2",
    "teacher.max_tokens=96",
    "train.max_steps=2",
    "online.steps=2",
    "online.save_every=1",
)


def crash_after(marker: Path) -> Callable:
    """A grader that fails once `marker` exists (a crash after the first thing kept)."""

    def grade(pairs):
        if marker.exists():
            raise RuntimeError("worker lost")
        return grade_parallel(pairs, 2)

    return grade


def test_teacher_rewrites_offline_and_online_and_resumes(
    small_engine: RolloutGroup,
    kept_learner: KeptLearner,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    settings = small_run(out, *SETTINGS, "online.method=teacher_dr_dft")
    run: Run = on_shared(start(compose("online", settings)), small_engine, kept_learner)
    assert run.teacher_path.endswith("teacher")  # the small world's own teacher
    try:
        # offline: a crash after the first shard, then the rerun resumes it
        cfg = run.cfg.rewrite_of("teacher_dr_is")
        shard0 = out / "rewrite_teacher" / "shards" / "shard-00000.parquet"
        crashing = dataclasses.replace(run)
        crashing.grader = lambda: crash_after(shard0)  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="worker lost"):
            rewrite_job(crashing, small_engine, cfg)
        first = read_records(shard0)
        records, summary = rewrite_job(run, small_engine, cfg)
        assert records[: len(first)] == first and len(records) == 16
        teacher_rows = [r for r in records if r.source == "teacher"]
        assert teacher_rows and summary["teacher_fraction"] > 0
        assert summary["generated_teacher"] > 0 and "var_teacher" in summary
        # their behaviour log-probs are the teacher's on the prompt it saw
        group = run.teacher(cfg).rollout
        prompts = [run.teacher_tokenizer.encode(r.behaviour_prompt) for r in teacher_rows]
        scores = group.score(prompts, [r.response_token_ids for r in teacher_rows])
        for r, s in zip(teacher_rows, scores, strict=True):
            assert max(abs(a - b) for a, b in zip(s, r.behaviour_logprobs, strict=True)) < 1e-3
        only_teacher = (teacher_rows * 16)[:16]  # DR+IS on teacher rows alone trains
        result = train_job(
            run, only_teacher, method_objective(run, "teacher_dr_is"), "teacher_dr_is",
            small_engine,
        )  # fmt: skip
        assert result["steps"] == 2 and result["last"]["train/token_share/teacher"] == 1.0

        # online: per-batch teacher rewriting, a crash after step 0's checkpoint, resumed
        small_engine.load_folder(run.model_path, version=0)
        folder = out / "online_teacher_dr_dft"
        with pytest.raises(RuntimeError, match="worker lost"):
            online_job(run, small_engine, grader=crash_after(folder / "ckpt"))
        result = online_job(run, small_engine)
        assert result["steps"] == 2 and result["timing"]["steps_run"] == 1
        step1 = read_records(folder / "data" / "step-00001.parquet")
        assert result["last"]["online/generated_teacher"] > 0
        assert all(r.behaviour_prompt for r in step1 if r.source == "teacher")
    finally:
        run.teachers.close()
