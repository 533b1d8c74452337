"""The online designs' batch sources in the one training loop, with stand-in groups: anchors,
dropped expert rows that return, rounds and refresh, and how each reduces to the offline
round at its extreme setting."""

from collections import Counter
from pathlib import Path

import pytest

from mtg_ray.data import read_records
from mtg_ray.online import OnlineConfig, problem_schedule
from mtg_ray.pipelines.jobs.batches import OnlineBatches, RefreshBatches, RoundBatches
from mtg_ray.pipelines.jobs.loop import TrainLoop
from mtg_ray.pipelines.jobs.rewrite import expert_records, rewrite_problems, score_standins
from mtg_ray.rewriting import RewriteConfig, get_template

from ..conftest import answer_of
from .test_loop import SFT, StandInMonitor

PLAIN = get_template("plain")
REWRITE = RewriteConfig(samples=2, guided_samples=2)
PER_STEP, STEPS = 4, 6


def rewriter(standins, rollout):
    def rewrite(batch):
        counts = Counter()
        records = rewrite_problems(
            batch, rollout, standins.tokenizer, PLAIN, REWRITE, standins.grader, counts
        )
        return records, dict(counts)

    return rewrite


def run(standins, tmp_path: Path, source, rollout, learner=None, monitor=None) -> TrainLoop:
    learner = learner or standins.Learner()
    loop = TrainLoop(
        lambda: learner, source, SFT, STEPS, tmp_path, monitor=monitor, rollout=rollout,
        save_every=3,
    )  # fmt: skip
    return loop


def batches(tmp_path: Path) -> list[list]:
    return [read_records(tmp_path / "data" / f"step-{s:05d}.parquet") for s in range(STEPS)]


def setup(standins, n=12):
    problems = standins.problems(n)
    return problems, problem_schedule(len(problems), PER_STEP, STEPS, seed=0)


def offline_records(standins, problems):
    """The offline round: every problem rewritten at version 0."""
    return rewrite_problems(
        problems, standins.Rollout(), standins.tokenizer, PLAIN, REWRITE, standins.grader
    )


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_anchored_batches_mix_the_offline_round_in(standins, tmp_path: Path, share) -> None:
    problems, schedule = setup(standins)
    offline = offline_records(standins, problems)
    rollout = standins.Rollout()
    cfg = OnlineConfig(anchor_share=share, save_every=3)
    source = OnlineBatches(
        problems, schedule, rewriter(standins, rollout), cfg, tmp_path / "data",
        anchors=offline, seed=1,
    )  # fmt: skip
    run(standins, tmp_path, source, rollout).run()
    n_anchor = round(PER_STEP * share)
    for step, batch in enumerate(batches(tmp_path)):
        assert len(batch) == PER_STEP
        fresh, anchored = batch[: PER_STEP - n_anchor], batch[PER_STEP - n_anchor :]
        assert [r.problem_id for r in fresh] == [
            problems[i].problem_id for i in schedule[step][: PER_STEP - n_anchor]
        ]
        assert all(r.policy_version == step for r in fresh if r.source != "expert")
        assert all(r in offline for r in anchored)
    if share == 1.0:  # the control: nothing sampled, every record from the offline round
        assert rollout.requests == []


def test_with_anchors_asked_for_none_given_is_refused(standins, tmp_path: Path) -> None:
    problems, schedule = setup(standins)
    with pytest.raises(ValueError, match="anchor_share"):
        OnlineBatches(problems, schedule, None, OnlineConfig(anchor_share=0.5), tmp_path)


def test_dropped_problems_return_once_in_the_places_of_expert_rows(
    standins, tmp_path: Path
) -> None:
    """Stand-in: qK with K % 3 == 2 falls back to the expert, except at version >= 2 for
    K < 18; so from step 2 on, returning problems can be solved and find expert rows (of
    K >= 18) to replace."""

    def learns(prompt: str, version: int, index: int) -> str:
        k = standins.answer_of(prompt)
        if k % 3 == 2:
            return f"so \\boxed{{{k if version >= 2 and k < 18 else k + 1}}}"
        return standins.Rollout().policy(prompt, version, index)

    problems, schedule = setup(standins, n=24)
    cfg = OnlineConfig(expert_rows="drop", retry_after=2, save_every=3)

    def train(out: Path, learner=None, monitor=None) -> None:
        rollout = standins.Rollout(learns)
        rewrite = rewriter(standins, rollout)
        source = OnlineBatches(problems, schedule, rewrite, cfg, out / "data")
        run(standins, out, source, rollout, learner, monitor).run()

    monitor = StandInMonitor()
    train(tmp_path / "whole", monitor=monitor)
    trained = batches(tmp_path / "whole")
    placed = 0
    for step in range(STEPS):
        assert len(trained[step]) == PER_STEP
        scheduled = {problems[i].problem_id for i in schedule[step]}
        returned = [r for r in trained[step] if r.problem_id not in scheduled]
        assert len(returned) == monitor.scalars_at[step + 1]["online/retry_placed"]
        if returned:  # each fell back 2 steps before, and is not an expert row now
            before = read_records(tmp_path / "whole" / "data" / f"rewritten-{step - 2:05d}.parquet")
            assert {r.problem_id for r in returned} <= {
                r.problem_id for r in before if r.source == "expert"
            }
            assert all(r.source != "expert" for r in returned)
        placed += len(returned)
    assert placed > 0

    with pytest.raises(RuntimeError):  # a crash: the retries come back from the kept rewrites
        train(tmp_path / "crash", standins.Learner(fail_at_step=4))
    train(tmp_path / "crash")
    assert batches(tmp_path / "crash") == trained


def test_rounds_sample_each_round_at_its_start_in_one_call(standins, tmp_path: Path) -> None:
    problems, schedule = setup(standins)
    rollout = standins.Rollout()
    cfg = OnlineConfig(design="rounds", rounds=3, save_every=3)
    source = RoundBatches(problems, schedule, rewriter(standins, rollout), cfg, tmp_path / "data")
    with pytest.raises(RuntimeError):
        run(standins, tmp_path, source, rollout, standins.Learner(fail_at_step=3)).run()
    # rounds 0 (steps 0-1) and 1 (steps 2-3): all 8 problems at the round's first version
    assert [r for r in rollout.requests if r[0] == 2 * PER_STEP] == [(8, 0), (8, 2)]
    again = standins.Rollout()
    source = RoundBatches(problems, schedule, rewriter(standins, again), cfg, tmp_path / "data")
    run(standins, tmp_path, source, again).run()
    # resumed at step 3: round 1 is read back, round 2 sampled at its start
    assert [r for r in again.requests if r[0] == 2 * PER_STEP] == [(8, 4)]
    for step, batch in enumerate(batches(tmp_path)):
        assert [r.problem_id for r in batch] == [problems[i].problem_id for i in schedule[step]]
        assert {r.policy_version for r in batch if r.source != "expert"} <= {step // 2 * 2}
    one = RoundBatches(
        problems, schedule, None, OnlineConfig(design="rounds", rounds=1), tmp_path / "x"
    )
    assert not one.wants_sync(3, 0)  # one round: never synced, the offline round itself


def test_refresh_rewrites_only_the_records_that_drifted(standins, tmp_path: Path) -> None:
    """The stand-in scores -0.5 nats/token; its samples were drawn at -0.1 (drift 0.4)."""
    problems, schedule = setup(standins)
    offline = offline_records(standins, problems)
    by_id = {r.problem_id: r for r in offline}
    for band, refreshed in [(2.0, False), (1.2, True)]:
        out = tmp_path / f"band-{band}"
        rollout, monitor = standins.Rollout(), StandInMonitor()
        cfg = OnlineConfig(design="refresh", refresh_band=band, save_every=3)
        source = RefreshBatches(
            problems, schedule, rewriter(standins, rollout), cfg, out / "data", offline,
            rollout.score, experts=expert_records(problems, standins.tokenizer, PLAIN),
        )  # fmt: skip
        run(standins, out, source, rollout, monitor=monitor).run()
        for step, batch in enumerate(batches(out)):
            ids = [problems[i].problem_id for i in schedule[step]]
            if not refreshed:  # the control: an unreached band trains the offline records
                assert batch == [by_id[i] for i in ids]
                continue
            for rec in batch:  # expert rows scored as the base scores them: never drifted
                old = by_id[rec.problem_id]
                assert rec == old if old.source == "expert" else rec.policy_version == step
            n_sampled = sum(by_id[i].source != "expert" for i in ids)
            assert (
                monitor.scalars_at[step + 1].get("online/refreshed_self", 0)
                + (monitor.scalars_at[step + 1].get("online/refreshed_guided", 0))
                == n_sampled
            )
        assert rollout.requests == [] or refreshed
        assert (out / "data" / "expert_base.json").is_file()


def test_expert_rows_get_the_guided_prompts_scores_as_their_stand_in(standins) -> None:
    problems = standins.problems(6)
    records = offline_records(standins, problems)
    scored = score_standins(
        records, problems, standins.Rollout(), standins.tokenizer, PLAIN, REWRITE
    )
    for before, after in zip(records, scored, strict=True):
        if before.source == "expert":
            assert after.standin_logprobs == [-0.5] * len(before.response_token_ids)
        else:
            assert after == before
    # expert pairs too long for the rollout group: no stand-in (they train as expert rows
    # without one), counted, never a failed call
    rollout, counts = standins.Rollout(), Counter()
    rollout.max_model_len = 1
    scored = score_standins(
        records, problems, rollout, standins.tokenizer, PLAIN, REWRITE, counts
    )  # fmt: skip
    experts = [r for r in scored if r.source == "expert"]
    assert experts and all(r.standin_logprobs is None for r in experts)
    assert counts["too_long_to_score"] == counts["scored"] == len(experts)


def test_a_resumed_refresh_trains_what_an_uninterrupted_one_does(standins, tmp_path: Path) -> None:
    """Two passes over the problems (12 problems, 4 per step, 6 steps): the second pass trains
    the records refreshed in the first, also after a crash in between."""
    problems, schedule = setup(standins)
    offline = offline_records(standins, problems)
    cfg = OnlineConfig(design="refresh", refresh_band=1.2, save_every=3)

    def slipping(prompt: str, version: int, index: int) -> str:
        """As the stand-in policy, except that after the first step qK with K % 3 == 0 is no
        longer solved alone: its refreshed record is the expert fallback."""
        k = answer_of(prompt)
        solved = (k % 3 == 0 and version == 0) or ("ref \\boxed" in prompt and k % 3 == 1)
        return f"so \\boxed{{{k if solved else k + 1}}}"

    def train(out: Path, learner=None) -> None:
        rollout = standins.Rollout(policy=slipping)
        source = RefreshBatches(
            problems, schedule, rewriter(standins, rollout), cfg, out / "data", offline,
            rollout.score, experts=expert_records(problems, standins.tokenizer, PLAIN),
        )  # fmt: skip
        run(standins, out, source, rollout, learner).run()

    train(tmp_path / "whole")
    # a record refreshed into an expert fallback in the first pass is weighed against the
    # base model in the second (the stand-in scores it as the base did: never drifted)
    refreshes = sorted((tmp_path / "whole" / "data").glob("refresh-*.parquet"))
    first_pass = [r for path in refreshes[:3] for r in read_records(path)]
    again = {r.problem_id for path in refreshes[3:] for r in read_records(path)}
    experts = {r.problem_id for r in first_pass if r.source == "expert"}
    assert experts and not experts & again
    with pytest.raises(RuntimeError):
        train(tmp_path / "crash", standins.Learner(fail_at_step=4))
    train(tmp_path / "crash")
    assert batches(tmp_path / "crash") == batches(tmp_path / "whole")

    # a resumed source starts from the records as refreshed before its first step
    refreshed = read_records(tmp_path / "whole" / "data" / "refresh-00001.parquet")
    for first, applied in [(1, False), (2, True)]:
        source = RefreshBatches(
            problems, schedule, None, cfg, tmp_path / "whole" / "data", offline, None, experts=[]
        )
        source._apply_refreshes(before=first)
        current = {r.problem_id: r for r in source.current}
        assert all((current[r.problem_id] == r) == applied for r in refreshed)
