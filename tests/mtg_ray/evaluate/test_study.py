"""The study's statistics on synthetic per-problem accuracies, and its kept run records."""

import json
import re

import numpy as np
import pytest

from mtg_ray.evaluate.study import (
    Rule,
    data_costs,
    difference_table,
    faithful_table,
    level_difference_table,
    level_means,
    method_table,
    monitor_band,
    offline_of,
    paired_difference,
    rule_table,
    run_means,
    study_pairs,
    two_level_difference,
)


def test_a_difference_on_one_level_shows_in_that_levels_column_alone() -> None:
    rng = np.random.default_rng(1)
    levels = ["1"] * 40 + ["4"] * 40
    base = rng.random((3, 80)) * 0.5
    better = base.copy()
    better[:, 40:] += 0.3  # level 4 only
    rows = level_difference_table({"base": base, "m": better}, levels, [("m", "base")])
    assert rows[0] == "| difference | level 1 | level 4 |"
    cells = rows[2].split(" | ")
    assert cells[0] == "| m - base" and cells[1] == "+0.0000 [+0.0000, +0.0000]"
    assert cells[2].startswith("+0.3000 [") and cells[2].endswith("] * |")


def test_identical_methods_differ_by_exactly_zero() -> None:
    a = np.random.default_rng(0).random((3, 50))
    ci = paired_difference(a, a.copy())
    assert (ci.mean, ci.low, ci.high) == (0.0, 0.0, 0.0)


def test_a_clear_gain_has_an_interval_above_zero_and_noise_straddles_it() -> None:
    rng = np.random.default_rng(1)
    base = rng.random((3, 200))
    gain = paired_difference(np.clip(base + 0.1, 0, 1), base)
    assert 0.05 < gain.low < gain.mean < gain.high
    shuffled = paired_difference(base, base[:, ::-1])  # per-problem gaps that cancel exactly
    assert shuffled.low < 0 < shuffled.high and shuffled.mean == pytest.approx(0.0, abs=1e-12)
    assert paired_difference(base + 0.1, base, seed=7) == paired_difference(
        base + 0.1, base, seed=7
    )
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(base, base[:, :10])


def test_tables_report_seed_spread_and_which_intervals_exclude_zero() -> None:
    acc = {"base": np.array([[0.0, 1.0], [0.5, 0.5]]), "sft": np.array([[1.0, 1.0], [1.0, 1.0]])}
    assert run_means(acc["base"]).tolist() == [0.5, 0.5]
    rows = method_table(acc)
    assert rows[2] == "| base | 0.5000 | 0.0000 | 0.5000, 0.5000 |"
    diff = difference_table(acc, [("sft", "base"), ("dr_sft", "sft")])
    assert len(diff) == 3 and diff[2].startswith("| sft - base | +0.5000")
    assert "two-level 95%" in diff[0] and diff[2].endswith("| no |")  # 2 seeds x 2 problems
    base = np.random.default_rng(5).random((3, 50)) * 0.5
    diff = difference_table({"base": base, "sft": base + 0.5}, [("sft", "base")])
    assert diff[2] == "| sft - base | +0.5000 [+0.5000, +0.5000] | [+0.5000, +0.5000] | yes |"


def test_the_two_level_interval_holds_seed_to_seed_variance() -> None:
    """Seeds that disagree (one +0.2, one -0.2 on every problem): resampling problems alone
    sees no spread at all, resampling seeds first does."""
    base = np.random.default_rng(2).random((4, 100)) * 0.5
    shift = np.array([0.2, -0.2, 0.2, -0.2])[:, None]
    problems_only = paired_difference(base + shift, base)
    both = two_level_difference(base + shift, base)
    assert problems_only.high - problems_only.low < 1e-9  # every problem's seed mean is 0
    assert both.low < -0.05 and both.high > 0.05 and both.mean == pytest.approx(0.0, abs=1e-12)
    noise = np.random.default_rng(3).normal(0, 0.05, base.shape)
    gain = two_level_difference(base + 0.1 + noise, base)
    assert 0.05 < gain.low < gain.mean < gain.high  # a gain every seed shares still shows
    same = two_level_difference(base, base.copy())
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="one shape"):
        two_level_difference(base, base[:, :10])
    # seeds that agree on every problem: the problems' spread alone, as wide as resampling
    # problems (a fresh draw of problems per seed would shrink it by sqrt(seeds))
    per_problem = np.random.default_rng(4).normal(0, 0.3, 500)
    agree = np.tile(per_problem, (5, 1))
    crossed, problems = two_level_difference(agree, 0 * agree), paired_difference(agree, 0 * agree)
    width = problems.high - problems.low
    assert crossed.high - crossed.low == pytest.approx(width, rel=0.15)


def test_study_pairs_put_the_papers_comparisons_first() -> None:
    pairs = study_pairs(["sft", "dft", "dr_sft", "dr_dft", "dr_is"])
    assert pairs[:2] == [("dr_sft", "sft"), ("dr_dft", "dft")]
    assert ("dr_is", "dr_dft") in pairs and pairs[-1] == ("dr_is", "base")
    assert study_pairs(["sft"]) == [("sft", "base")]
    online = study_pairs(["dr_sft", "online_dr_sft", "online_dr_is_overlap"])
    assert online[0] == ("online_dr_sft", "dr_sft")  # no offline dr_is: nothing to pair with
    assert ("online_dr_is_overlap", "dr_is") not in online
    controls = study_pairs(["dr_sft", "online_dr_sft_frozen_sampler", "online_dr_sft_near_zero_lr"])
    assert controls[:2] == [
        ("online_dr_sft_frozen_sampler", "dr_sft"),  # must match its offline run
        ("online_dr_sft_near_zero_lr", "dr_sft"),
    ]
    assert ("online_dr_sft_near_zero_lr", "base") in controls  # must match the base
    designs = ["dr_dft", "dr_is", "rounds_dr_dft", "refresh_dr_is_dft", "online_dr_is_anchor"]
    assert [offline_of(m) for m in designs] == ["dr_dft", "dr_is", "dr_dft", "dr_is_dft", "dr_is"]
    bar = study_pairs(["dr_dft", "dr_is", "online_dr_is_expert_drop", "rounds_dr_dft",
                       "online_dr_dft_frozen_sampler", "online_dr_is_frozen_sampler"])  # fmt: skip
    assert ("online_dr_is_expert_drop", "dr_is") in bar  # its own offline method
    assert ("online_dr_is_expert_drop", "dr_dft") in bar  # and the paper's best
    assert [p for p in bar if p == ("rounds_dr_dft", "dr_dft")] == [("rounds_dr_dft", "dr_dft")]
    assert ("online_dr_is_frozen_sampler", "dr_dft") not in bar  # a control: its own only
    assert ("rounds_dr_dft", "dr_dft") in study_pairs(designs)
    twins = study_pairs(["dr_dft", "dr_dft_expert_drop", "online_dr_dft_expert_drop"])
    assert offline_of("online_dr_dft_expert_drop") == "dr_dft_expert_drop"  # same data rule
    assert twins[:2] == [("online_dr_dft_expert_drop", "dr_dft_expert_drop"),
                         ("online_dr_dft_expert_drop", "dr_dft")]  # fmt: skip
    assert offline_of("online_dr_is_dft_expert_drop") == "dr_is_dft"  # no twin registered


def test_runs_training_the_offline_round_are_charged_for_it() -> None:
    costs = {
        "base": [(0.0, 0.0), (0.0, 0.0)],
        "dr_dft": [(24000.0, 140.0), (24000.0, 150.0)],  # the offline round, per seed
        "online_dr_dft": [(23808.0, 300.0), (23808.0, 310.0)],
        "online_dr_dft_anchor": [(11904.0, 160.0), (11904.0, 170.0)],
        "refresh_dr_dft": [(900.0, 20.0), (1100.0, 25.0)],
        "rounds_dr_dft": [(24000.0, 120.0), (24000.0, 130.0)],
    }
    charged = data_costs(costs)
    assert charged["online_dr_dft_anchor"] == [(35904.0, 300.0), (35904.0, 320.0)]
    assert charged["refresh_dr_dft"] == [(24900.0, 160.0), (25100.0, 175.0)]
    for own in ("base", "dr_dft", "online_dr_dft", "rounds_dr_dft"):  # their own rewriting only
        assert charged[own] == costs[own]


def test_the_faithful_table_averages_steps_then_seeds_for_runs_that_log_it() -> None:
    def run(self_shares: list[float], guided: list[float]) -> dict[str, dict[int, float]]:
        return {"online/faithful_self": dict(enumerate(self_shares)),
                "online/faithful_guided": dict(enumerate(guided))}  # fmt: skip

    scalars = {
        "dr_dft": [{}, {}],  # offline: no per-step shares, no row
        "online_dr_dft": [run([1.0, 0.5], [0.2, float("nan")]), run([0.5, 0.5], [0.4, 0.4])],
        # a step with no guided record logs no share; a run may never log one
        "rounds_dr_dft": [{"online/faithful_self": {1: 0.5}}, {}],
    }
    rows = faithful_table(scalars)
    assert rows[0] == "| run | faithful self | faithful guided |"
    assert rows[2:] == [
        "| online_dr_dft | 0.625 (0.500-0.750) | 0.300 (0.200-0.400) |",
        "| rounds_dr_dft | 0.500 (0.500-0.500) | - |",
    ]
    assert faithful_table({"dr_dft": [{}]}) == []


def test_a_rewritten_results_file_keeps_its_preregistrations() -> None:
    from mtg_ray.pipelines.jobs.study_report import PREREGISTERED, kept_section

    text = f"# Study results\n\n| a | b |\n\n{PREREGISTERED}\n\n### 2026-12-02: x\n\nrule\n"
    assert kept_section(text) == f"\n{PREREGISTERED}\n\n### 2026-12-02: x\n\nrule\n"
    assert kept_section("# Study results\n") == ""


def test_an_online_runs_figure_is_drawn_from_its_kept_scalars(tmp_path) -> None:
    from mtg_ray.evaluate.ledger import RunRecord
    from mtg_ray.evaluate.report import save_figure
    from mtg_ray.pipelines.jobs.study_report import online_figure

    records = [
        RunRecord("online_dr_dft", s, {}, {}, 0.0, 0.0, 1e-4, {
            "online/expert_fraction": {1: 0.1 + s, 2: 0.2 + s},
            "train/loss_share/expert": {1: 0.5, 2: 0.6},
            "monitor/tinyworld/avg@4": {2: 0.25},
        }) for s in (0, 1)
    ]  # fmt: skip
    fig = online_figure(records, "online_dr_dft", problems=100)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[2] == "monitor/tinyworld/avg@4" and len(fig.axes[0].lines) == 2
    assert list(fig.axes[0].lines[1].get_ydata()) == [1.1, 1.2]
    assert not fig.axes[2].patches  # no step-0 point logged: no band
    save_figure(fig, tmp_path / "results_online_dr_dft.png")
    assert (tmp_path / "results_online_dr_dft.png").read_bytes()[:4] == b"\x89PNG"

    for s, record in enumerate(records):  # the monitor from step 0: a band around its mean
        record.scalars["monitor/tinyworld/avg@4"] = {0: 0.4 + 0.2 * s, 2: 0.7}
    fig = online_figure(records, "online_dr_dft", problems=100)
    (band,) = fig.axes[2].patches
    low, high = band.get_y(), band.get_y() + band.get_height()
    half = 1.96 * np.sqrt(0.5 * 0.5 / 400)
    assert low == pytest.approx(0.5 - half) and high == pytest.approx(0.5 + half)
    assert list(fig.axes[2].lines[0].get_xdata()) == [0, 2]  # the curve starts at step 0


def test_monitor_band_is_the_binomial_spread_of_a_fixed_policys_score() -> None:
    assert monitor_band(0.5, 100, 4) == pytest.approx(1.96 * 0.025)
    assert monitor_band(0.0, 100, 4) == 0.0 == monitor_band(1.0, 10, 1)
    rng = np.random.default_rng(0)  # 100 problems of accuracy 0.5, 4 samples: the band holds
    scores = rng.binomial(4, 0.5, size=(4000, 100)).mean(axis=1) / 4
    inside = np.abs(scores - 0.5) <= monitor_band(0.5, 100, 4)
    assert 0.93 < inside.mean() < 0.97


def test_rules_hold_only_when_every_comparison_is_above_zero_by_both_intervals() -> None:
    rng = np.random.default_rng(0)
    levels = ["1"] * 200 + ["4"] * 200
    base = rng.uniform(0.2, 0.8, size=(5, 400))
    level4 = base.copy()
    level4[:, 200:] += 0.15  # better on level 4 only
    worse = base - 0.1
    acc = {"b": base, "a": level4, "w": worse}
    rules = [
        Rule("on level 4", (("a", "b", "4"),)),
        Rule("on level 1", (("a", "b", "1"),)),
        Rule("both", (("a", "b", "4"), ("a", "w", None))),
        Rule("reversed", (("w", "b", None),)),
        Rule("missing", (("a", "b", None), ("x", "b", None))),
    ]
    rows = rule_table(acc, levels, rules)[2:]
    failed = rule_table(acc, levels, rules[:1], failed=["a"])[2]
    assert failed.endswith("| control failed |")  # a bug to fix before comparing
    holds = {r.split(" | ")[0].strip("| "): r.rsplit(" | ", 1)[1].strip(" |") for r in rows}
    assert holds["on level 4"] == "yes" and holds["on level 1"] == "no"
    assert holds["both"] == "yes" and holds["reversed"] == "no" and holds["missing"] == "not run"
    assert "below 0" in next(r for r in rows if r.startswith("| reversed"))
    assert "| level 4 |" in rows[0] and "+0.1500" in rows[0]


def test_level_means_are_each_seeds_accuracy_on_that_levels_problems() -> None:
    acc = np.array([[1.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]])
    means = level_means(acc, ["1", "1", "4", ""])
    assert list(means) == ["1", "4", "all"]
    assert list(means["1"]) == [0.5, 0.0] and list(means["4"]) == [0.5, 1.0]
    assert list(means["all"]) == [0.5, 0.5]


def test_the_level_figure_draws_bars_seeds_base_and_ceiling(tmp_path) -> None:
    from mtg_ray.evaluate.report import level_figure, save_figure

    means = {m: {"1": np.array([0.8, 0.9]), "4": np.array([0.1, 0.3]), "all": np.array([0.5, 0.6])}
             for m in ("dr_dft", "dft")}  # fmt: skip
    fig = level_figure(means, {"1": 0.85, "4": 0.02, "all": 0.5}, {"1": 0.9, "4": 0.4},
                       {"1": 10, "4": 5, "all": 15}, "t")  # fmt: skip
    ax = fig.axes[0]
    assert [round(p.get_height(), 3) for p in ax.patches] == [0.85, 0.2, 0.55] * 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["level 1\n(10)", "level 4\n(5)",
                                                            "all\n(15)"]  # fmt: skip
    segments = [c for c in ax.collections if c.get_label() in ("base", "oracle")]
    assert sorted(c.get_label() for c in segments) == ["base", "oracle"]
    assert "mean over 2 seeds" in fig.texts[0].get_text()
    save_figure(fig, tmp_path / "levels.png")
    assert (tmp_path / "levels.png").read_bytes()[:4] == b"\x89PNG"


def test_invocations_are_logged_as_they_make_records(tmp_path) -> None:
    from mtg_ray.pipelines.jobs.study_report import InvocationLog

    idle = InvocationLog(tmp_path, "study a")
    idle.close()  # ran nothing (all read back): not logged
    assert idle.rows() == [] and not (tmp_path / "invocations.jsonl").exists()
    first = InvocationLog(tmp_path, "study a")
    first.made("seed-0/base")  # written now: a kill after this still counts it
    killed = [json.loads(x) for x in (tmp_path / "invocations.jsonl").read_text().splitlines()]
    assert [row["made"] for row in killed] == [["seed-0/base"]]
    second = InvocationLog(tmp_path, "study b")
    second.made("seed-0/dr_dft")
    second.made("seed-1/dr_dft")
    rows = InvocationLog(tmp_path, "study c").rows()
    assert [row["command"] for row in rows] == ["study a", "study b"]
    assert rows[1]["made"] == ["seed-0/dr_dft", "seed-1/dr_dft"] and "CPUs" in rows[0]["machine"]
    assert rows == second.rows() and all(row["wall_s"] >= 0 for row in rows)
    stopped = InvocationLog(tmp_path, "study d")  # interrupted before its first record
    stopped.running()
    stopped.close()
    rows = InvocationLog(tmp_path, "study e").rows()
    assert rows[-1]["command"] == "study d" and rows[-1]["made"] == []  # its time still counts


def test_a_given_lr_study_reads_an_earlier_selection_back(tmp_path) -> None:
    from mtg_ray.config import compose
    from mtg_ray.pipelines.jobs.study_report import selection_lines

    lrs = "train.method_lr={dr_dft: 3e-4, distill: 1e-3}"
    cfg = compose("tiny", ["methods=[dr_dft,distill]", lrs])
    assert selection_lines(cfg, None, tmp_path / "none.json")[3:] == [
        "Given (`train.method_lr`), not selected here: dr_dft 0.0003, distill 0.001."
    ]
    kept = tmp_path / "lr_selection.json"
    kept.write_text(json.dumps({
        "lr_grid": [1e-4, 3e-4], "validation_problems": 300, "validation_n": 4,
        "accuracy": {"dr_dft": {"0.0001": 0.5, "0.0003": 0.6}}, "base": 0.55,
        "selected": {"dr_dft": 3e-4}, "base_not_beaten": [],
    }))  # fmt: skip
    lines = selection_lines(cfg, None, kept)
    assert "| dr_dft | 0.5500 | 0.5000 | 0.6000 | 0.0003 |" in lines
    assert any(str(kept) in line for line in lines)


def test_a_kept_run_record_holds_what_the_report_reads(tmp_path) -> None:
    """A finished online run's folder -> its record: metrics, per-problem accuracy, cost, lr and
    the figure's scalars (the last value of a step a resumed run redid), and no other scalars."""
    from mtg_ray.evaluate.ledger import load_record, save_record
    from mtg_ray.monitor import Monitor
    from mtg_ray.pipelines.jobs.study import run_record

    out, name = tmp_path / "seed-1", "online_dr_dft"
    (out / name).mkdir(parents=True)
    (out / name / "eval.json").write_text(json.dumps({"tinyworld": {"avg@2": 0.25}}))
    rows = [("p1", True), ("p1", False), ("p2", False), ("p2", False)]
    (out / name / "eval_samples.jsonl").write_text("".join(
        json.dumps({"benchmark": "tinyworld", "problem_id": p, "level": p[1:], "correct": c})
        + "\n" for p, c in rows
    ))  # fmt: skip
    # its last process ran step 2 alone: the cost must still count both steps
    timing = {"samples": 40, "generate_s": 2.5}
    (out / name / "train_done.json").write_text(json.dumps({"timing": timing}))
    monitor = Monitor(out / "tb" / name)
    for step in (1, 2):
        monitor.scalars({"online/expert_fraction": 0.1 * step, "train/loss": 1.0,
                         "online/generated_self": 32, "online/generated_guided": 8 * step,
                         "time/generate_s": 2.0}, step)  # fmt: skip
    monitor.scalars({"online/expert_fraction": 0.9, "online/generated_guided": 8,
                     "time/generate_s": 2.5}, 2)  # a resumed run redid step 2  # fmt: skip
    monitor.close()
    record = run_record(out, name, 1, 1e-4)
    assert record.metrics == {"tinyworld": {"avg@2": 0.25}}
    assert record.accuracy == {"tinyworld": {"p1": 0.5, "p2": 0.0}}
    assert record.levels == {"tinyworld": {"p1": "1", "p2": "2"}}
    assert (record.samples, record.rewrite_s, record.lr) == (32 + 8 + 32 + 8, 4.5, 1e-4)
    assert record.scalars["online/expert_fraction"] == {
        1: pytest.approx(0.1), 2: pytest.approx(0.9)
    }  # fmt: skip
    assert "train/loss" not in record.scalars  # not one the report or the figure reads
    save_record(tmp_path / "runs", record)
    assert load_record(tmp_path / "runs", 1, name) == record
    assert load_record(tmp_path / "runs", 0, name) is None


def test_kept_runs_go_back_where_the_jobs_look_and_refuse_another_lr(tmp_path) -> None:
    from mtg_ray.data.errors import DataError
    from mtg_ray.evaluate.ledger import RunRecord, save_record
    from mtg_ray.pipelines.jobs.study import kept_runs, restore_runs

    root = tmp_path / "runs"
    save_record(root, RunRecord("base", 0, {"b": {"avg@2": 0.5}}, {}, 0.0, 0.0, None))
    save_record(root, RunRecord("dr_dft", 0, {"b": {"avg@2": 0.6}}, {}, 9.0, 1.0, 3e-4))
    lrs = {"base": None, "dr_dft": 3e-4, "sft": 1e-5}
    out = tmp_path / "seed-0"
    kept = kept_runs(root, 0, lrs, out, world=None)
    assert list(kept) == ["base", "dr_dft"]  # sft has no record: it is run
    (out / "base").mkdir(parents=True)
    (out / "base" / "eval.json").write_text('{"b": {"avg@2": 0.5}}')
    restore_runs(kept, out)
    assert json.loads((out / "dr_dft" / "eval.json").read_text()) == {"b": {"avg@2": 0.6}}
    assert not (out / "sft").exists()
    with pytest.raises(
        DataError,
        match=r"runs/seed-0/dr_dft.json: field 'lr': is 0.0003.*"
        r"move this record and the run's folder .*seed-0/dr_dft away",
    ):
        kept_runs(root, 0, {**lrs, "dr_dft": 1e-4}, out, world=None)  # fmt: skip


def test_kept_runs_refuse_a_record_made_with_other_settings(tmp_path) -> None:
    from mtg_ray.data.errors import DataError
    from mtg_ray.evaluate.ledger import RunRecord, save_record
    from mtg_ray.pipelines.jobs.study import kept_runs

    root, out = tmp_path / "runs", tmp_path / "seed-0"
    made = {"eval.n": 16, "rewrite.one_call": True, "since_removed": 1}
    save_record(root, RunRecord("dr_dft", 0, {}, {}, 0.0, 0.0, 1e-4, settings=made))
    save_record(root, RunRecord("base", 0, {}, {}, 0.0, 0.0, None))  # kept before settings
    lrs = {"base": None, "dr_dft": 1e-4}
    now = {"eval.n": 16, "rewrite.one_call": True, "added_since": 0}
    made_with = {"base": now, "dr_dft": now}
    assert list(kept_runs(root, 0, lrs, out, made_with, world=None)) == ["base", "dr_dft"]
    other = {**now, "eval.n": 4}
    with pytest.raises(
        DataError,
        match=r"seed-0/dr_dft.json: field 'settings': was made with other settings than this "
        r"study's \(eval.n 16 -> 4; to train it again, move this record and the run's folder "
        r".*seed-0/dr_dft away\)",
    ):
        kept_runs(root, 0, lrs, out, {"base": other, "dr_dft": other}, world=None)


def test_kept_runs_refuse_a_record_made_on_another_world(tmp_path) -> None:
    """A record names the tiny world it was made on (its recipe hash): a study on another world
    refuses it, and one on a tiny world refuses a record that names none (kept before records
    named their world, on a world since replaced); a study on none reads a record of none."""
    from mtg_ray.data.errors import DataError
    from mtg_ray.evaluate.ledger import RunRecord, record_path, save_record
    from mtg_ray.pipelines.jobs.study import keep_run, kept_runs

    root, out = tmp_path / "runs", tmp_path / "seed-0"
    (out / "base").mkdir(parents=True)
    (out / "base" / "eval.json").write_text('{"b": {"avg@2": 0.5}}')
    (out / "base" / "eval_samples.jsonl").write_text("")
    keep_run(root, out, 0, "base", None, world="aaaa")
    path = record_path(root, 0, "base")
    assert json.loads(path.read_text())["world"] == "aaaa"
    assert kept_runs(root, 0, {"base": None}, out, world="aaaa")["base"].world == "aaaa"
    with pytest.raises(
        DataError,
        match=re.escape(f"{path}: field 'world': was made on tiny world aaaa, but this study "
                        f"runs on tiny world bbbb (to train it again, move this record and the "
                        f"run's folder {out / 'base'} away)"),
    ):  # fmt: skip
        kept_runs(root, 0, {"base": None}, out, world="bbbb")
    with pytest.raises(DataError, match=r"tiny world aaaa, but this study runs on none \(to"):
        kept_runs(root, 0, {"base": None}, out, world=None)

    old = json.loads(path.read_text())
    del old["world"]  # a record kept before records named their world
    path.write_text(json.dumps(old))
    with pytest.raises(
        DataError,
        match=re.escape(f"{path}: field 'world': names no tiny world, but this study runs on "
                        "tiny world bbbb"),
    ):  # fmt: skip
        kept_runs(root, 0, {"base": None}, out, world="bbbb")
    assert kept_runs(root, 0, {"base": None}, out, world=None)["base"].world is None
    save_record(root, RunRecord("sft", 0, {}, {}, 0.0, 0.0, 1e-5))  # a run on no tiny world
    assert list(kept_runs(root, 0, {"base": None, "sft": 1e-5}, out, world=None)) == [
        "base", "sft"
    ]  # fmt: skip


def test_a_runs_settings_are_what_makes_it_and_nothing_else() -> None:
    from mtg_ray.config import compose
    from mtg_ray.pipelines.jobs.study import online_candidates, planned_settings, seed_config

    def settings(overrides, design):
        cfg = seed_config(compose("tiny", overrides), 1)
        return planned_settings(cfg, online_candidates(cfg, ["dr_sft"], designs=[design]))

    design = {"method": "dr_dft", "expert_rows": "drop", "retry_after": 8}
    made = settings([], design)
    assert made["dr_sft"] == made["base"] and made["dr_sft"]["learner.seed"] == 1
    assert not any(k.startswith("online.") for k in made["dr_sft"])  # offline: no online keys
    assert made["online_dr_dft_expert_drop"]["online.retry_after"] == 8
    assert made["online_dr_sft"]["online.method"] == "dr_sft"
    where = settings(["output_dir=elsewhere", "rollout.sync_timeout_s=600", "train.lr_grid=[1]"],
                     design)  # fmt: skip
    assert where == made  # where it writes and runs, and the lr grid, change no run
    assert settings(["eval.n=4"], design)["base"]["eval.n"] == 4
    assert (
        settings([], {**design, "retry_after": 4})["online_dr_dft_expert_drop"]
        != made["online_dr_dft_expert_drop"]
    )


def test_a_record_that_is_not_one_is_named_with_its_field(tmp_path) -> None:
    from mtg_ray.data.errors import DataError
    from mtg_ray.evaluate.ledger import RunRecord, load_record, record_path, save_record

    root = tmp_path / "runs"
    save_record(root, RunRecord("sft", 2, {}, {}, 0.0, 0.0, 1e-5))
    record_path(root, 2, "sft").rename(record_path(root, 2, "dft"))
    with pytest.raises(DataError, match=r"seed-2/dft.json: field 'name': is 'sft'"):
        load_record(root, 2, "dft")
    record_path(root, 2, "dft").write_text('{"name": "dft"}')
    with pytest.raises(DataError, match=r"seed-2/dft.json: not a run record"):
        load_record(root, 2, "dft")


def test_lr_trials_are_kept_and_found_by_candidate_and_lr(tmp_path) -> None:
    from mtg_ray.evaluate.ledger import save_trial, trials
    from mtg_ray.pipelines.jobs.study import trial_folders

    out = tmp_path / "seed-0"
    for name, lr in (("dr_dft", 1e-5), ("online_dr_dft", 3e-4)):
        folder = out / "select_lr" / name / f"lr-{lr:g}"
        folder.mkdir(parents=True)
        (folder / "validation.json").write_text(json.dumps({"validation": {"avg@4": lr}}))
    (out / "select_lr" / "sft" / "lr-1e-05").mkdir(parents=True)  # training, not validated
    (out / "select_lr" / "base").mkdir()  # the base model's score, at no lr
    (out / "select_lr" / "base" / "validation.json").write_text('{"validation": {"avg@4": 0}}')
    found = trial_folders(out)
    assert [(n, lr) for n, lr, _ in found] == [
        ("base", None), ("dr_dft", 1e-5), ("online_dr_dft", 3e-4)
    ]  # fmt: skip
    for name, lr, path in found:
        save_trial(tmp_path / "runs", name, lr, json.loads(path.read_text()))
    assert (tmp_path / "runs" / "select_lr" / "base.json").is_file()
    assert trials(tmp_path / "runs") == [
        ("base", None, {"validation": {"avg@4": 0}}),
        ("dr_dft", 1e-5, {"validation": {"avg@4": 1e-5}}),
        ("online_dr_dft", 3e-4, {"validation": {"avg@4": 3e-4}}),
    ]


def test_two_online_runs_of_one_name_are_refused() -> None:
    from mtg_ray.config import compose
    from mtg_ray.pipelines.jobs.study import online_candidates

    cfg = compose("tiny", [])
    names = [c.online.design for c in online_candidates(cfg, ["dr_dft"], designs=[
        {"method": "dr_dft", "design": "rounds", "rounds": 3}])]  # fmt: skip
    assert names == ["per_batch", "rounds"]
    with pytest.raises(ValueError, match="both be named 'online_dr_dft'"):
        online_candidates(cfg, ["dr_dft"], designs=[{"method": "dr_dft"}])


def test_a_rounds_runs_first_round_is_held_to_its_offline_rounds_expert_share() -> None:
    from mtg_ray.evaluate.study import first_round_control

    def rounds(first: float) -> dict:  # 6 steps in 3 rounds: steps 1-2 are the first round
        return {"online/expert_fraction": {1: first, 2: first, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0}}

    offline = {"rewrite/expert_share": {0: 0.1}, "rewrite/problems": {0: 3000.0}}
    diffs, mean, half = first_round_control([rounds(0.1), rounds(0.12)], [offline] * 2, 3, 500)
    assert diffs == pytest.approx([0.0, 0.02]) and mean == pytest.approx(0.01)
    one = 0.11 * 0.89 * (1 / 1000 + 1 / 3000)  # the second seed's pooled share
    assert half == pytest.approx(1.96 * np.sqrt(0.1 * 0.9 * (1 / 1000 + 1 / 3000) + one) / 2)
    assert abs(mean) <= half  # within sampling: the control holds
    _, far, band = first_round_control([rounds(0.3)] * 2, [offline] * 2, 3, 500)
    assert abs(far) > band  # a first round far from the offline round's: a bug


def test_the_report_is_written_from_records_alone(tmp_path) -> None:
    """write_study on synthetic records: rules, the rounds control, per-level figure and the
    rounds run's figure, no job run."""
    from mtg_ray.config import compose
    from mtg_ray.evaluate.ledger import RunRecord
    from mtg_ray.pipelines.jobs.study_report import write_study

    rng = np.random.default_rng(6)
    problems = {f"p{i}": str(1 + i % 4) for i in range(40)}
    steps = {s: 0.05 for s in range(1, 10)}

    def record(name: str, seed: int, gain: float, scalars: dict) -> RunRecord:
        acc = {p: float(np.clip(rng.random() * 0.5 + gain, 0, 1)) for p in problems}
        metrics = {"tinyworld": {"avg@4": float(np.mean(list(acc.values()))), "greedy": 0.5}}
        settings = {"online.rounds": 3, "learner.train_batch_size": 32, "online.eval_problems": 8}
        return RunRecord(name, seed, metrics, {"tinyworld": acc}, 0.0, 0.0, None, scalars,
                         {"tinyworld": problems}, settings)  # fmt: skip

    offline = {"rewrite/expert_share": {0: 0.05}, "rewrite/problems": {0: 3000.0}}
    rounds = {"online/expert_fraction": steps, "monitor/tinyworld/avg@4": {0: 0.3, 8: 0.5}}
    records = {
        "base": [record("base", s, 0.0, {}) for s in (0, 1)],
        "dr_dft": [record("dr_dft", s, 0.3, offline) for s in (0, 1)],
        "rounds_dr_dft": [record("rounds_dr_dft", s, 0.3, rounds) for s in (0, 1)],
    }
    cfg = compose("tiny", ["methods=[dr_dft]"])
    line = write_study(cfg, 2, "study", records, [{"wall_s": 60.0}], None, tmp_path,
                       ["rounds_dr_dft"])  # fmt: skip
    assert line.startswith("study: base=")
    report = (tmp_path / "results.md").read_text()
    assert "Wall time: 1.0 min over 1 invocations" in report
    assert re.search(r"^\| \(a\) rounds DR\+DFT > its offline twin \| rounds_dr_dft - dr_dft \|",
                     report, re.M)  # fmt: skip
    assert "| rounds_dr_dft: first round's expert share - dr_dft's offline round's | " in report
    assert re.search(r"\| \+0\.0000 \| \+-0\.\d+ \| yes \|$", report, re.M)  # same share
    for png in ("results.png", "results_levels.png", "results_rounds_dr_dft.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
