"""Redraw a study's plot from its report: `results.png` beside `results.md`.

    python scripts/replot_study.py docs/results.md

The plot is a view of the report's accuracy table (mean and standard deviation over seeds per
method), so a report written before the plot changed gets the current plot without rerunning
the study.
"""

import argparse
import re
from pathlib import Path

from mtg_ray.evaluate.report import plot

ROW = re.compile(r"\| (\S+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9., ]+) \|")


def replot(report: Path) -> Path:
    text = report.read_text()
    benchmark = re.search(r"^Test set: ([^,]+),", text, re.M)
    table = text.partition("## Accuracy per method")[2].split("\n## ", 1)[0]
    rows = [m.groups() for m in map(ROW.fullmatch, table.splitlines()) if m]
    if benchmark is None or not rows:
        raise ValueError(f"{report}: no 'Test set:' line or no accuracy table")
    seeds = len(rows[0][3].split(","))
    out = report.with_name("results.png")
    plot(
        {m: float(mean) for m, mean, _, _ in rows},
        out,
        f"{benchmark.group(1)}: avg@n over {seeds} seeds",
        errors={m: float(std) for m, _, std, _ in rows},
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a study's results.md")
    try:
        print(f"wrote {replot(parser.parse_args().report)}")
    except ValueError as err:
        raise SystemExit(f"replot_study: {err}") from None


if __name__ == "__main__":
    main()
