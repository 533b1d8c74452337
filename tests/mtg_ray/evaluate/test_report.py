from itertools import pairwise

from mtg_ray.evaluate.report import (
    bar_figure,
    demo_line,
    headline_accuracy,
    markdown_table,
    write_report,
)

SUMMARY = {
    "logprob_expert": -3.0,
    "logprob_rewritten": -1.0,
    "var_expert": 0.5,
    "var_self": 0.25,
    "var_guided": 0.75,
    "ess_self": 0.9,
    "ess_guided": 0.6,
    "logprob_self": -0.5,
    "logprob_guided": -1.5,
    "expert_share": 0.25,
    "self_fraction": 0.5,
    "guided_fraction": 0.25,
    "expert_fraction": 0.25,
}


def test_demo_line_has_the_exact_shape() -> None:
    acc = {"base": 0.1, "sft": 0.2, "dft": 0.25, "dr_sft": 0.3, "dr_dft": 0.35, "dr_is": 0.4}
    assert demo_line(acc, SUMMARY) == (
        "demo: base=0.1000 sft=0.2000 dft=0.2500 dr_sft=0.3000 dr_dft=0.3500 dr_is=0.4000 "
        "var_expert=0.5000 var_self=0.2500 var_guided=0.7500 expert_share=0.2500"
    )


def test_headline_is_the_first_sets_first_metric() -> None:
    results = {
        "base": {"tinyworld": {"avg@4": 0.1, "pass@4": 0.3}, "gsm8k": {"avg@4": 0.9}},
        "sft": {"tinyworld": {"avg@4": 0.2, "pass@4": 0.4}, "gsm8k": {"avg@4": 0.8}},
    }
    assert headline_accuracy(results) == ("tinyworld", {"base": 0.1, "sft": 0.2})


def test_report_writes_markdown_and_png(tmp_path) -> None:
    results = {
        m: {"tinyworld": {"avg@4": a, "pass@4": a * 2}} for m, a in [("base", 0.1), ("sft", 0.2)]
    }
    table = write_report(tmp_path, results, {"base": 0.1, "sft": 0.2}, SUMMARY)
    assert "| sft | 0.2000 | 0.4000 |" in table
    assert (tmp_path / "results.md").read_text() == table
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_table_shows_faithful_shares_by_stage_and_level_when_the_summary_has_them() -> None:
    results = {"base": {"tinyworld": {"avg@4": 0.1}}}
    assert "faithful" not in markdown_table(results, SUMMARY)
    checked = {**SUMMARY, "faithful_self": 0.8, "faithful_guided": 0.25}
    for level, (a, b) in {"1": (0.9, 0.5), "4": (0.0, float("nan"))}.items():
        checked |= {f"faithful_self_level_{level}": a, f"faithful_guided_level_{level}": b}
    table = markdown_table(results, checked)
    assert "| kept records with faithful steps | all | level 1 | level 4 |" in table
    assert "| self | 0.8000 | 0.9000 | 0.0000 |" in table
    assert "| guided | 0.2500 | 0.5000 | nan |" in table


def test_the_plot_keeps_long_method_names_apart_and_its_error_bars() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    names = ["base", "sft", "dft", "dr_sft", "dr_dft", "dr_is"]
    names += ["online_dr_sft", "online_dr_dft", "online_dr_is"]
    accuracy = {n: 0.1 + 0.01 * i for i, n in enumerate(names)}
    fig = bar_figure(accuracy, "t", errors={n: 0.02 for n in names})
    try:
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()]
        assert [label.get_text() for label in ax.get_xticklabels()] == names
        for left, right in pairwise(boxes):  # neighbours' labels do not overlap
            assert not left.overlaps(right), (left, right)
        assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)
    finally:
        plt.close(fig)


def test_a_teacher_rewrite_adds_its_row_stages_and_demo_keys() -> None:
    teacher = {
        **SUMMARY, "var_teacher": 0.125, "ess_teacher": 0.5, "logprob_teacher": -2.5,
        "log_ratio_teacher": -1.75, "teacher_fraction": 0.5, "self_fraction": 0.25,
        "guided_fraction": 0.0,
    }  # fmt: skip
    acc = {"base": 0.1, "teacher_dr_dft": 0.3}
    assert demo_line(acc, SUMMARY, teacher).endswith(" var_teacher=0.1250 teacher_fraction=0.5000")
    results = {"base": {"tiny": {"avg@1": 0.1}}, "teacher_dr_dft": {"tiny": {"avg@1": 0.3}}}
    table = markdown_table(results, SUMMARY, teacher)
    assert "| rewritten: teacher | -2.5000 | 0.1250 | 0.5000 |" in table
    assert "Teacher rewrite by stage: self 25.0%, guided 0.0%, teacher 50.0%" in table
    assert "gap of its records under the base policy -1.7500" in table
    assert "rewritten: teacher" not in markdown_table(results, SUMMARY)
