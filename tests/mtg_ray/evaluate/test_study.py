"""The study's statistics on synthetic per-problem accuracies."""

import numpy as np
import pytest

from mtg_ray.evaluate.study import (
    difference_table,
    method_table,
    offline_of,
    paired_difference,
    run_means,
    study_pairs,
)


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
    assert len(diff) == 3 and diff[2].startswith("| sft - base | +0.5000") and "| yes |" in diff[2]


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
    assert ("rounds_dr_dft", "dr_dft") in study_pairs(designs)


def test_a_rewritten_results_file_keeps_its_preregistrations() -> None:
    from mtg_ray.pipelines.study import PREREGISTERED, kept_section

    text = f"# Study results\n\n| a | b |\n\n{PREREGISTERED}\n\n### 2026-12-02: x\n\nrule\n"
    assert kept_section(text) == f"\n{PREREGISTERED}\n\n### 2026-12-02: x\n\nrule\n"
    assert kept_section("# Study results\n") == ""


def test_an_online_runs_figure_reads_its_steps_from_tensorboard(tmp_path) -> None:
    from mtg_ray.evaluate.report import save_figure
    from mtg_ray.monitor import Monitor, scalar_series
    from mtg_ray.pipelines.study import online_figure

    outs = [tmp_path / "seed-0", tmp_path / "seed-1"]
    for s, out in enumerate(outs):
        monitor = Monitor(out / "tb" / "online_dr_dft")
        for step in range(1, 4):
            monitor.scalars({"online/expert_fraction": 0.1 * step + s,
                             "train/loss_share/expert": 0.5}, step)  # fmt: skip
        monitor.scalars({"monitor/tinyworld/avg@4": 0.25}, 3)
        monitor.scalars({"online/expert_fraction": 0.9}, 2)  # a resumed run redid step 2
        monitor.close()
    assert scalar_series(outs[0] / "tb" / "online_dr_dft", "online/expert_fraction") == {
        1: pytest.approx(0.1), 2: pytest.approx(0.9), 3: pytest.approx(0.3)
    }  # fmt: skip
    fig = online_figure(outs, "online_dr_dft")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[2] == "monitor/tinyworld/avg@4" and len(fig.axes[0].lines) == 2
    save_figure(fig, tmp_path / "results_online_dr_dft.png")
    assert (tmp_path / "results_online_dr_dft.png").read_bytes()[:4] == b"\x89PNG"
