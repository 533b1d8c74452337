"""Every config error surfaces when the command line is read, as one line naming the key, the
value and what is allowed, before Ray or any model starts."""

import subprocess
import sys
import time

import pytest

from mtg_ray.config import check_paths, compose
from mtg_ray.paths import REPO_ROOT


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("learner.lr=abc", "learner.lr='abc': expected a number"),
        ("learner.lr=-1", "learner.lr=-1.0: must be > 0"),
        ("learner.lrr=1", "unknown config key learner.lrr; did you mean learner.lr?"),
        ("rewrite.shard_size=0", "rewrite.shard_size=0: must be >= 1"),
        ("rewrite.keep=bogus", "rewrite.keep='bogus'"),
        ("rewrite.samples=-1", "rewrite.samples=-1: must be >= 1"),
        ("rewrite.top_p=0", "rewrite.top_p=0.0: must be in (0, 1]"),
        ("eval.n=0", "eval.n=0: must be >= 1"),
        ("train.epochs=0", "train.epochs=0: must be >= 1"),
        ("train.save_every=x", "train.save_every='x': expected an integer"),
        ("eval.greedy=3", "eval.greedy=3: expected true or false"),
        ("methods=[sft,bogus]", "methods=['sft', 'bogus']: a non-empty list of distinct names"),
        ("methods=[sft,sft]", "methods=['sft', 'sft']"),
        ("+online.method=bogus", "online.method must be one of"),
        ("rollout.weight_backend=tcp", "rollout.weight_backend='tcp': must be one of"),
        ("rollout.gpu_memory_utilization=2", "rollout.gpu_memory_utilization=2.0"),
        ("model.template=nope", "model.template='nope': must be one of"),
        ("data.train=/nonexistent.parquet", "data.train='/nonexistent.parquet': no such file"),
        ("data.test=[nope.jsonl]", "data.test[0]='nope.jsonl': a benchmark name of"),
        ("train.dataset=/no/records", "train.dataset='/no/records': no such file"),
        ("model.path=./no-model", "model.path='./no-model': no such file"),
        ("output_dir=../../somewhere", "output_dir='../../somewhere': a relative path must stay"),
        ("learner.train_batch_size=7", "learner.train_batch_size=7: must be a multiple"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_key(override: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        check_paths(compose("tiny", [override]))
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_what_users_meant_is_accepted() -> None:
    overrides = ["learner.lr=1", "output_dir=/tmp/abs/run", "model.path=Qwen/Q-1.5B"]
    cfg = check_paths(compose("tiny", overrides))
    assert cfg.learner.lr == 1.0 and isinstance(cfg.learner.lr, float)
    assert cfg.output_dir == "/tmp/abs/run" and cfg.model.path == "Qwen/Q-1.5B"
    assert check_paths(compose("tiny", ["output_dir=runs/../runs/x"])).output_dir
    with pytest.raises(ValueError, match="this preset does not set it: add it with"):
        compose("tiny", ["online.steps=3"])


def test_the_cli_fails_in_one_line_before_starting_anything() -> None:
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/run.py"), "main", "learner.lr=abc"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert out.returncode != 0
    assert (
        out.stderr.strip().splitlines()[-1] == "config error: learner.lr='abc': expected a number"
    )
    assert "Ray" not in out.stdout + out.stderr and seconds < 60


def test_a_teacher_that_cannot_be_read_fails_in_one_line_naming_its_key(tmp_path) -> None:
    """Only when a method or the rewrite uses the teacher: its folder must hold a model."""
    assert check_paths(compose("tiny", ["teacher.model.path=/nope"]))  # unused: not checked
    uses = ["methods=[sft,teacher_dr_dft]"]
    cases = {
        "/nope": "teacher.model.path='/nope': no such file",
        str(tmp_path): f"teacher.model.path='{tmp_path}': is not an HF model folder",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError) as err:
            check_paths(compose("tiny", [*uses, f"teacher.model.path={path}"]))
        assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(ValueError, match="rewrite.teacher_after_guided=True: needs rewrite.rewri"):
        compose("tiny", ["rewrite.teacher_after_guided=true"])
    with pytest.raises(ValueError, match="teacher.n=0: must be >= 1"):
        compose("tiny", ["teacher.n=0"])
