"""The study job end to end on a small tiny world: two seeds, two methods and one design (rounds),
real Ray/vLLM/DS; a per-batch online candidate runs the same path (tests/jobs/test_online_job.py
runs that design). The lr selection is left out here (`--no-select-lr`: it is the 4 trainings
the rest costs again) and tested with stand-ins in
tests/mtg_ray/pipelines/jobs/test_select_lr.py."""

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mtg_ray.config import compose
from mtg_ray.evaluate.ledger import load_record
from mtg_ray.pipelines.jobs.study import study_job

pytestmark = pytest.mark.slow


def test_study_runs_each_seed_and_writes_the_report(
    ray_session, small_run: Callable[..., list[str]], tmp_path: Path
) -> None:
    settings = small_run(
        tmp_path / "runs",
        "methods=[sft,dr_sft]",
        "data.max_train_problems=32",
        "data.max_test_problems=8",
        "eval.n=2",
        "rollout.num_engines=1",
        "learner.train_batch_size=16",
        "train.epochs=1",
        "train.method_lr={sft: 1e-3, dr_sft: 1e-4}",
    )
    cfg = compose("tiny", settings)
    command = "python scripts/run.py study --seeds 2 --design dr_sft:design=rounds --no-select-lr"
    rounds = {"method": "dr_sft", "design": "rounds", "rounds": 2, "eval_every": 2}
    line = study_job(cfg, 2, tmp_path / "docs", command, online=[], select=False, designs=[rounds])
    number = "[0-9.]+"
    assert re.fullmatch(
        rf"study: base={number} sft={number} dr_sft={number} rounds_dr_sft={number}",
        line,
    ), line
    for seed in (0, 1):  # seeds vary together, each run in its own folder
        assert (tmp_path / "runs" / f"seed-{seed}" / "dr_sft" / "eval.json").is_file()
    report = (tmp_path / "docs" / "results.md").read_text()
    assert f"Command: `{command}`" in report
    assert "| dr_sft - sft |" in report and "| sft - base |" in report
    assert "| rounds_dr_sft - dr_sft |" in report  # a design against its offline method
    # its steps: expert and loss shares
    assert (tmp_path / "docs" / "results_rounds_dr_sft.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "runs" / "seed-1" / "rounds_dr_sft" / "train_done.json").is_file()
    assert "greedy" in report and "level_" in report
    # the steps of what the online runs trained, checked (the small world is a tiny world)
    faithful = report.split("## Faithful steps")[1].split("## Learning rates")[0]
    assert re.search(r"^\| rounds_dr_sft \| ", faithful, re.M), faithful
    assert "| dr_sft |" not in faithful  # offline runs log no per-step shares
    per_level = report.split("## Paired differences per level")[1]
    assert "| difference | level 1 |" in per_level and "| dr_sft - sft | " in per_level
    cost = dict(re.findall(r"^\| (\w+) \| (\d+) \| \d+ \|$", report, re.M))
    assert cost["base"] == cost["sft"] == "0"  # no sampling for the expert data
    # 32 problems x 2 self samples, and guided samples for the failures
    assert int(cost["dr_sft"]) >= 64 and int(cost["rounds_dr_sft"]) >= 64
    assert (tmp_path / "docs" / "results.png").read_bytes()[:4] == b"\x89PNG"
    # the lrs as given, said so, and every seed trained at them
    assert "Given (`train.method_lr`), not selected here: sft 0.001, dr_sft 0.0001." in report
    assert not (tmp_path / "docs" / "lr_selection.json").exists()
    for seed in (0, 1):
        assert not (tmp_path / "runs" / f"seed-{seed}" / "select_lr").exists()
    # every run is kept as a record, and the records alone carry the study into another
    # session: with the output folder gone, the same call reruns nothing and reports the same
    kept = sorted(p.relative_to(tmp_path / "docs" / "runs").as_posix()
                  for p in (tmp_path / "docs" / "runs").rglob("*.json"))  # fmt: skip
    names = ["base", "dr_sft", "rounds_dr_sft", "sft"]
    assert kept == [f"seed-{s}/{n}.json" for s in (0, 1) for n in names]
    # the pre-registered rules the runs allow, the levels' figure, the monitor from step 0
    assert re.search(r"^\| paper: DR\+SFT > SFT \| dr_sft - sft \| all \| .* \| (yes|no) \|$",
                     report, re.M)  # fmt: skip
    assert re.search(r"^\| \(d\) teacher DR\+IS > .* \| not run \|$", report, re.M)
    assert (tmp_path / "docs" / "results_levels.png").read_bytes()[:4] == b"\x89PNG"
    monitor = load_record(tmp_path / "docs" / "runs", 1, "rounds_dr_sft").scalars
    assert sorted(next(v for t, v in monitor.items() if t.startswith("monitor/"))) == [0, 2]
    log = tmp_path / "docs" / "runs" / "invocations.jsonl"
    (invocation,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert sorted(invocation["made"]) == sorted(k.removesuffix(".json") for k in kept)
    assert "over 1 invocations" in report
    shutil.rmtree(tmp_path / "runs")
    again = study_job(cfg, 2, tmp_path / "docs", command, online=[], select=False, designs=[rounds])
    assert again == line and not (tmp_path / "runs").exists()
    assert (tmp_path / "docs" / "results.md").read_text() == report  # its wall time logged
