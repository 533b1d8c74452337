"""The one training loop with stand-in groups: cursor, policy version, checkpoints, weight
pushes, evaluation hooks, and the offline and online batch sources."""

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from mtg_ray.data import read_records
from mtg_ray.learner import batch_schedule
from mtg_ray.objectives import Objective
from mtg_ray.online import OnlineConfig, problem_schedule
from mtg_ray.pipelines.jobs.batches import OnlineBatches, RecordBatches
from mtg_ray.pipelines.jobs.loop import TrainLoop
from mtg_ray.pipelines.jobs.rewrite import expert_records, rewrite_problems
from mtg_ray.rewriting import RewriteConfig, get_template

SFT = Objective("sft")
PLAIN = get_template("plain")


class StandInMonitor:
    def __init__(self) -> None:
        self.scalars_at: dict[int, dict[str, float]] = {}
        self.histograms: dict[int, list[float]] = {}

    def scalars(self, metrics, step: int, prefix: str = "") -> None:
        self.scalars_at.setdefault(step, {}).update(metrics)

    def histogram(self, tag: str, values, step: int) -> None:
        assert tag == "is/log_ratio"
        self.histograms[step] = list(values)


def offline_loop(standins, out: Path, learner, rollout=None, **kw) -> TrainLoop:
    records = expert_records(standins.problems(12), standins.tokenizer, PLAIN)
    schedule = batch_schedule(len(records), 4, epochs=2, seed=0)  # 6 steps
    return TrainLoop(
        make_learner=lambda: learner,
        source=RecordBatches(records, schedule),
        objective=SFT,
        steps=len(schedule),
        out_dir=out,
        rollout=rollout,
        **kw,
    )


def test_offline_run_resumes_at_its_cursor_and_is_done_once(standins, tmp_path: Path) -> None:
    crashing = standins.Learner(fail_at_step=4)
    with pytest.raises(RuntimeError, match="fails at step 4"):
        offline_loop(standins, tmp_path, crashing, save_every=3).run()
    assert len(crashing.trained) == 4  # saved at 3, lost step 4
    assert not crashing.closed  # its maker owns it (a run keeps its group for the next run)

    learner, monitor = standins.Learner(), StandInMonitor()
    result = offline_loop(standins, tmp_path, learner, save_every=3, monitor=monitor).run()
    assert learner.trained == crashing.trained[3:] + learner.trained[1:]  # step 3 redone
    assert len(learner.trained) == 3 and result["steps"] == 6 == learner.step
    assert result["timing"]["steps_run"] == 3 and sorted(monitor.scalars_at) == [4, 5, 6]
    assert result["policy_version"] == 0  # no rollout group was ever given weights
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "train_done.json").read_text()) == json.loads(json.dumps(result))

    def never():
        raise AssertionError("a finished run builds no learner")

    loop = offline_loop(standins, tmp_path, None, save_every=3)
    loop.make_learner = never
    assert loop.run() == json.loads(json.dumps(result))


def test_offline_evaluations_see_the_weights_of_their_step(standins, tmp_path: Path) -> None:
    rollout, learner = standins.Rollout(), standins.Learner()
    seen = []

    def evaluate() -> dict[str, float]:
        seen.append((rollout.version, rollout.weights))
        return {"eval/toy/avg@1": rollout.weights / 10}

    monitor = StandInMonitor()
    loop = offline_loop(
        standins, tmp_path, learner, rollout, evaluate=evaluate, eval_every=2, monitor=monitor,
        evaluate_at_start=True,
    )  # fmt: skip
    result = loop.run()
    # step 0 sees the start weights; then pushed as version = learner step
    assert seen == [(0, 0.0), (2, 2.0), (4, 4.0), (6, 6.0)]
    assert rollout.pushes == [(0, 0.0), (2, 2.0), (4, 4.0), (6, 6.0)]  # no version twice
    assert result["eval"] == {"eval/toy/avg@1": 0.6} and result["policy_version"] == 6
    assert monitor.scalars_at[0] == {"eval/toy/avg@1": 0.0}  # where the curve starts
    assert monitor.scalars_at[4]["eval/toy/avg@1"] == 0.4

    again = standins.Rollout()
    offline_loop(standins, tmp_path, None, again).run()  # finished: the export is pushed
    assert again.pushes == [(6, 6.0)]


def test_every_step_trains_while_the_rollout_group_has_released_its_gpus(
    standins, tmp_path: Path
) -> None:
    """resources.gpu_mode=colocate: the engines sleep while the learner trains; the loop asks
    before every step, and any sync or evaluation in between wakes them."""
    rollout, learner = standins.Rollout(), standins.Learner()
    train_step = learner.train_step
    released_at_steps = []

    def checked_train_step(records, objective):
        released_at_steps.append(rollout.released)
        return train_step(records, objective)

    learner.train_step = checked_train_step
    evals = []

    def evaluate() -> dict[str, float]:
        evals.append(rollout.released)
        return {}

    offline_loop(standins, tmp_path, learner, rollout, evaluate=evaluate, eval_every=2).run()
    assert released_at_steps == [True] * 6
    assert evals == [False] * 3  # the sync before each evaluation woke the engines


def online_loop(
    standins, out: Path, learner, rollout, cfg: OnlineConfig, steps=6, faithful=None, **kw
):
    problems = standins.problems(12)
    rewrite_cfg = RewriteConfig(samples=2, guided_samples=2)

    def rewrite(batch):
        drops = Counter()
        records = rewrite_problems(
            batch, rollout, standins.tokenizer, PLAIN, rewrite_cfg, standins.grader, drops
        )
        return records, dict(drops)

    schedule = problem_schedule(len(problems), 4, steps, seed=0)
    base = lambda: rollout.update_weights([("w", torch.zeros(1))], 0)  # noqa: E731
    source = OnlineBatches(
        problems, schedule, rewrite, cfg, out / "data", faithful, base_weights=base
    )
    return TrainLoop(
        lambda: learner, source, SFT, steps, out, rollout=rollout, save_every=cfg.save_every, **kw
    )


@pytest.mark.parametrize("overlap", [False, True])
def test_online_batches_are_sampled_by_the_live_policy(
    standins, tmp_path: Path, overlap: bool
) -> None:
    rollout, learner, monitor = standins.Rollout(), standins.Learner(), StandInMonitor()
    cfg = OnlineConfig(overlap=overlap, max_policy_lag=1, save_every=100)
    result = online_loop(standins, tmp_path, learner, rollout, cfg, monitor=monitor).run()
    assert rollout.pushes[0] == (0, 0.0)  # the start weights first: the group may hold others
    assert [v for v, _ in rollout.pushes] == list(range(7))  # sync_every=1, then the final
    for step in range(6):
        records = read_records(tmp_path / "data" / f"step-{step:05d}.parquet")
        lags = [step - r.policy_version for r in records if r.policy_version >= 0]
        # overlapped, step s's batch was sampled while step s-1 trained: one version behind
        assert set(lags) == {1 if overlap and step else 0}
        assert monitor.scalars_at[step + 1]["online/policy_lag_max"] == max(lags)
        assert monitor.histograms[step + 1]  # the step's log-ratios, from its StepResult
    assert result["policy_version"] == 6 and result["timing"]["steps_run"] == 6
    assert not any(k.startswith("online/faithful") for k in monitor.scalars_at[1])


@pytest.mark.parametrize("overlap", [False, True])
def test_a_frozen_sampler_samples_every_batch_with_the_base_weights(
    standins, tmp_path: Path, overlap: bool
) -> None:
    """The frozen_sampler control: the rollout group is given the base weights before the
    first batch (whatever it held), no sync until the final one, also after a resume."""
    cfg = OnlineConfig(control="frozen_sampler", overlap=overlap, save_every=3)
    rollout = standins.Rollout()
    rollout.update_weights([("w", torch.full((1,), 9.0))], 9)  # left over by another run
    with pytest.raises(RuntimeError):
        online_loop(standins, tmp_path, standins.Learner(fail_at_step=4), rollout, cfg).run()
    assert rollout.pushes[1:] == [(0, 0.0)]  # the base weights, and no sync while training
    again = standins.Rollout()
    again.update_weights([("w", torch.full((1,), 9.0))], 9)
    result = online_loop(standins, tmp_path, standins.Learner(), again, cfg).run()
    assert again.pushes[1:] == [(0, 0.0), (6, 6.0)]  # base again, then the final weights only
    for step in range(6):
        records = read_records(tmp_path / "data" / f"step-{step:05d}.parquet")
        assert {r.policy_version for r in records if r.source != "expert"} == {0}, step
    assert result["policy_version"] == 6


def test_online_steps_report_the_faithful_share_of_their_sampled_records(
    standins, tmp_path: Path
) -> None:
    """With a step check (the tiny world's), each step logs the share of its self and guided
    records that pass it; here the check passes even-numbered problems only."""
    monitor = StandInMonitor()

    def even(record) -> bool:
        return int(record.problem_id.removeprefix("p")) % 2 == 0

    cfg = OnlineConfig(save_every=100)
    loop = online_loop(
        standins, tmp_path, standins.Learner(), standins.Rollout(), cfg, faithful=even,
        monitor=monitor,
    )  # fmt: skip
    loop.run()
    for step in range(6):
        records = read_records(tmp_path / "data" / f"step-{step:05d}.parquet")
        for source in ("self", "guided"):
            flags = [even(r) for r in records if r.source == source]
            want = sum(flags) / len(flags) if flags else None
            got = monitor.scalars_at[step + 1][f"online/faithful_{source}"]
            assert (got != got) if want is None else got == want  # NaN: none of that source


def test_online_checkpoints_are_sync_points_and_resume_there(standins, tmp_path: Path) -> None:
    cfg = OnlineConfig(sync_every=2, max_policy_lag=1, save_every=3)
    rollout = standins.Rollout()
    crashing = standins.Learner(fail_at_step=4)
    with pytest.raises(RuntimeError):
        online_loop(standins, tmp_path, crashing, rollout, cfg).run()
    # syncs on the beat (2, 4) and at the checkpoint (3), though 3 is off the beat
    assert [v for v, _ in rollout.pushes] == [0, 2, 3, 4]
    saved = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    assert saved == [3, {"cursor": 3, "policy_version": 3}]

    fresh = standins.Rollout()  # the driver died: a new rollout group on the base weights
    learner = standins.Learner()
    result = online_loop(standins, tmp_path, learner, fresh, cfg).run()
    assert fresh.pushes[0] == (3, 3.0)  # given back exactly the saved version
    assert result["timing"]["steps_run"] == 3 and len(learner.trained) == 3
    assert learner.trained[0] == crashing.trained[3]  # the lost step again, no earlier one
    assert [v for v, _ in fresh.pushes] == [3, 4, 6]


def test_a_checkpoint_off_its_version_is_refused_online(standins, tmp_path: Path) -> None:
    learner = standins.Learner()
    learner.step = 2
    learner.save_checkpoint(tmp_path / "ckpt", {"cursor": 2, "policy_version": 1})
    loop = online_loop(standins, tmp_path, learner, standins.Rollout(), OnlineConfig())
    with pytest.raises(ValueError, match="policy version 1"):
        loop.run()
