"""scripts/replot_study.py redraws a study's plot from the accuracy table of its report."""

import subprocess
import sys

import numpy as np

from mtg_ray.evaluate.study import method_table
from mtg_ray.paths import REPO_ROOT


def test_replot_reads_the_report_the_study_writes(tmp_path) -> None:
    acc = {"base": np.array([[1, 0], [0, 0]]), "online_dr_dft": np.array([[1, 1], [1, 0]])}
    lines = ["# Study results", "", "Test set: tinyworld, 2 problems, avg@4.", ""]
    lines += ["## Accuracy per method", "", *method_table(acc), "", "## Paired differences"]
    report = tmp_path / "results.md"
    report.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "replot_study.py"), str(report)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    report.write_text("# Study results\n")
    failed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "replot_study.py"), str(report)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert failed.returncode != 0 and "results.md" in failed.stderr
