"""Every command README and docs give runs its overrides through the job's own lr lookup, and
each run trains at the lr the command's overrides say: no example is a silent no-op."""

import functools
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mtg_ray.checks import ConfigError
from mtg_ray.config import check_lr_override, compose, trained_lrs
from mtg_ray.paths import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
SCRIPT = re.compile(r"scripts/(run|demo)\.py\b(.*)")


@functools.cache
def run_script():
    """scripts/run.py as a module (its parser and the job's lr lookup)."""
    spec = importlib.util.spec_from_file_location("run_script", REPO_ROOT / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands(text: str) -> list[str]:
    """The `scripts/run.py` / `scripts/demo.py` commands of a page: its indented code blocks
    (continued lines joined) and its inline code spans."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = [line for line in joined.splitlines() if line.startswith("    ")]
    found += re.findall(r"`([^`\n]+)`", joined)
    return [m.group(0) for line in found if (m := SCRIPT.search(line))]


def tokens(command: str) -> list[str] | None:
    """A command's arguments, optional `[...]` parts dropped; None for a template (`<job>`)."""
    script, rest = SCRIPT.match(command).groups()
    rest = re.sub(r"(^|\s)\[[^\]]*\]", " ", rest)
    if "<" in rest or "..." in rest:
        return None
    args = shlex.split(rest)
    if script == "run" and not (args and args[0] in run_script().JOBS):
        return None  # the script named in prose, not a command
    return [f"scripts/{script}.py", *args]


def examples() -> list[tuple[str, list[str]]]:
    out = []
    for page in PAGES:
        for command in commands(page.read_text()):
            if (args := tokens(command)) is not None:
                out.append((f"{page.name}: {command}", args))
    return out


EXAMPLES = examples()


def lrs_of(run, args: list[str]) -> tuple[dict[str, tuple[float, str]], list[str]]:
    """What each run of the example trains at (and the key that sets it), and its overrides."""
    if args[0] == "scripts/demo.py":
        overrides = args[1:]
        return trained_lrs(compose("tiny", overrides), "main"), overrides
    parsed = run.parse(args[1:])
    return run.job_lrs(parsed, compose(parsed.config, parsed.overrides)), parsed.overrides


def test_the_pages_give_examples_that_train() -> None:
    assert len(EXAMPLES) >= 5, EXAMPLES
    run = run_script()
    trained = [e for e, args in EXAMPLES if lrs_of(run, args)[0]]
    assert any("scripts/demo.py" in e for e in trained), "no demo example found"
    assert len(trained) >= 3, trained


@pytest.mark.parametrize("where,args", EXAMPLES, ids=[e for e, _ in EXAMPLES])
def test_every_example_trains_at_the_lr_it_sets(where: str, args: list[str]) -> None:
    lrs, overrides = lrs_of(run_script(), args)
    check_lr_override(lrs, overrides)  # no silent no-op learner.lr
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "learner.lr":
            set_by_it = [lr for lr, k in lrs.values() if k == "learner.lr"]
            assert set_by_it and all(lr == float(value) for lr in set_by_it), (where, lrs)
        elif key.startswith("train.method_lr.") and key.split(".")[-1] in lrs:
            assert lrs[key.split(".")[-1]] == (float(value), "train.method_lr"), (where, lrs)
        elif key == "train.method_lr" and value == "{}":
            assert all(k == "learner.lr" for _, k in lrs.values()), (where, lrs)


def test_a_learner_lr_no_run_reads_fails_naming_method_lr() -> None:
    cfg = compose("tiny", ["learner.lr=1e-4", "world=small"])
    with pytest.raises(ConfigError, match=r"learner\.lr is read by no run.*train\.method_lr"):
        check_lr_override(trained_lrs(cfg, "main"), ["learner.lr=1e-4", "world=small"])
    with pytest.raises(ConfigError, match=r"train\.lr_grid"):
        check_lr_override(trained_lrs(cfg, "select_lr"), ["learner.lr=1e-4"])
    # Where learner.lr does decide, it is what trains.
    assert trained_lrs(cfg, "train") == {"train-dft": (1e-4, "learner.lr")}
    every = compose("tiny", ["train.method_lr={}", "learner.lr=2e-4"])
    check_lr_override(trained_lrs(every, "main"), ["train.method_lr={}", "learner.lr=2e-4"])
    assert {lr for lr, _ in trained_lrs(every, "main").values()} == {2e-4}
    online = compose("online", ["learner.lr=2e-4", "train.method_lr={}", "online.method=dr_dft"])
    assert trained_lrs(online, "online") == {"online dr_dft": (2e-4, "learner.lr")}


def test_a_method_lr_mapping_on_the_command_line_is_the_mapping_written() -> None:
    """A mapping replaces the preset's, new methods included; a method the preset lists no lr
    for is added with `+`, and its error says how."""
    cfg = compose("tiny", ["train.method_lr={dr_dft: 3e-4, distill: 1e-3}"])
    assert cfg.train.method_lr == {"dr_dft": 3e-4, "distill": 1e-3}
    added = compose("tiny", ["+train.method_lr.distill=1e-3"])
    assert added.train.method_lr["distill"] == 1e-3 and added.train.method_lr["sft"] == 1e-6
    with pytest.raises(ConfigError, match=r"add it with \+train\.method_lr\.distill=\.\.\., or"):
        compose("tiny", ["train.method_lr.distill=1e-3"])
    with pytest.raises(ConfigError, match=r"unknown config key train\.nokey; known here"):
        compose("tiny", ["train.nokey={a: 1}"])
    section = compose("paper_base", ["train={epochs: 3}"])  # a section's mapping merges
    assert section.train.epochs == 3 and section.train.eval_every == 10


def test_the_demo_refuses_it_in_one_line_before_anything_starts() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "demo.py"), "learner.lr=1e-4"],
        capture_output=True, text=True, timeout=120, cwd=Path(REPO_ROOT),
    )  # fmt: skip
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("config error: learner.lr is read by")
    assert "train.method_lr" in out.stderr
