"""The online job on a small tiny world: per-batch rewriting, overlap, crash and resume."""

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mtg_ray.config import compose
from mtg_ray.data import read_records
from mtg_ray.pipelines.groups.grading import grade_parallel
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.pipelines.jobs.online import compare_job, online_job
from mtg_ray.pipelines.jobs.session import KeptLearner, Run, start

from .conftest import on_shared

pytestmark = pytest.mark.slow

STEPS = 3


# The online job's settings over the small run (`small_run`).
ONLINE = (
    "data.max_train_problems=32",
    "data.max_test_problems=8",
    "eval.n=1",
    "rollout.num_engines=1",
    "learner.train_batch_size=8",
    f"online.steps={STEPS}",
    "online.overlap=true",
    "online.max_policy_lag=1",
    "online.save_every=1",
)


def start_on(settings: list[str], engine: RolloutGroup, kept: KeptLearner) -> Run:
    """A run of `settings` on the shared small-world engine and kept learner group."""
    return on_shared(start(compose("online", settings)), engine, kept)


def test_online_run_overlaps_crashes_and_resumes(
    small_engine: RolloutGroup,
    kept_learner: KeptLearner,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    run = start_on(small_run(out, *ONLINE), small_engine, kept_learner)
    rollout = small_engine
    folder = out / "online_dr_dft_overlap"
    ckpt = folder / "ckpt"

    def crashing(pairs):
        if ckpt.is_dir():  # a crash in the first grading after a checkpoint
            raise RuntimeError("worker lost")
        return grade_parallel(pairs, 2)

    with pytest.raises(RuntimeError, match="worker lost"):
        online_job(run, rollout, grader=crashing)
    saved = sorted((folder / "data").glob("step-*.parquet"))
    assert 1 <= len(saved) < STEPS and not (folder / "train_done.json").exists()

    result = online_job(run, rollout)
    assert result["steps"] == STEPS == result["policy_version"]
    assert result["timing"]["steps_run"] == STEPS - 1  # resumed after step 0, not redone
    assert rollout.versions() == [STEPS]  # the rollout group ends on the final weights

    for step in range(STEPS):
        records = read_records(folder / "data" / f"step-{step:05d}.parquet")
        assert len(records) == 8
        for r in records:
            if r.source != "expert":  # sampled at most max_policy_lag versions behind
                assert 0 <= step - r.policy_version <= 1, (step, r.policy_version)
    assert result["last"]["online/policy_lag_max"] <= 1
    assert "train/loss" in result["last"] and result["timing"]["train_s"] > 0
    assert (folder / "model" / "model.safetensors").is_file()


def test_compare_online_reports_both_runs_at_equal_steps(
    small_engine: RolloutGroup,
    kept_learner: KeptLearner,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    # DR+IS: its line also reports the importance weights' variance, offline and online
    settings = small_run(out, *ONLINE, "online.steps=0", "train.epochs=1", "online.method=dr_is")
    line = compare_job(start_on(settings, small_engine, kept_learner), small_engine)
    number = r"([0-9.]+|nan)"  # nan: no sampled record in any step (small world's weak model)
    assert re.fullmatch(
        rf"online: offline_dr_is={number} online_dr_is={number} is_var_offline={number} "
        rf"is_var_online={number} steps=4/4 overlap=True",
        line,
    ), line
    assert (out / "online_dr_is_overlap.txt").read_text().strip() == line
    assert "| online_dr_is_overlap | 4 |" in (out / "results_online_dr_is_overlap.md").read_text()


def test_each_online_design_trains_on_real_groups(
    small_engine: RolloutGroup,
    kept_learner: KeptLearner,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """Rounds, refresh, ratio-weighted expert rows, and anchors with dropped expert rows: each
    trains end to end with one rollout and one learner group, writing what it says."""
    out = tmp_path / "run"
    base = small_run(out, *ONLINE, "online.overlap=false", "online.method=dr_dft")
    designs = {
        "rounds_dr_dft": ["online.design=rounds", "online.rounds=2"],
        "refresh_dr_dft": [  # an lr that moves the policy out of the band within 3 steps
            "online.design=refresh",
            "online.refresh_band=1.05",
            "train.method_lr={dr_dft: 1e-3}",
        ],
        "online_dr_dft_expert_ratio": ["online.expert_rows=ratio"],
        "online_dr_dft_expert_drop_anchor": [
            "online.expert_rows=drop",
            "online.retry_after=1",
            "online.anchor_share=0.5",
        ],  # fmt: skip
    }
    run = start_on(base, small_engine, kept_learner)
    for name, settings in designs.items():
        cfg = compose("online", base + settings)
        result = online_job(dataclasses.replace(run, cfg=cfg), small_engine)
        assert result["steps"] == STEPS and result["timing"]["samples"] > 0, name
    data = {name: out / name / "data" for name in designs}
    assert sorted(p.name for p in data["rounds_dr_dft"].glob("round-*")) == [
        "round-00000.parquet", "round-00002.parquet"
    ]  # fmt: skip
    assert (data["refresh_dr_dft"] / "expert_base.json").is_file()
    shard = out / "rewrite" / "shards" / "shard-00000.parquet"
    offline = {r.problem_id: r for r in read_records(shard)}
    anchored, ratio = data["online_dr_dft_expert_drop_anchor"], data["online_dr_dft_expert_ratio"]
    for step in range(STEPS):
        batch = read_records(anchored / f"step-{step:05d}.parquet")
        assert len(batch) == 8 and all(r == offline[r.problem_id] for r in batch[4:])
        assert len(read_records(anchored / f"rewritten-{step:05d}.parquet")) == 4  # fresh half
        for r in read_records(ratio / f"step-{step:05d}.parquet"):
            assert (r.standin_logprobs is not None) == (r.source == "expert")
