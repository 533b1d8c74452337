"""The offline jobs end to end on a small tiny world: real vLLM, DeepSpeed and Ray on CPU."""

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from mtg_ray.config import compose
from mtg_ray.data import read_records
from mtg_ray.pipelines.groups.grading import grade_parallel
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.pipelines.jobs.offline import main_job
from mtg_ray.pipelines.jobs.rewrite import run_rewrite
from mtg_ray.pipelines.jobs.session import KeptLearner, start
from mtg_ray.rewriting import RewriteConfig
from mtg_ray.rewriting.prompts import get_template
from mtg_ray.tinyworld import World

from .conftest import on_shared

pytestmark = pytest.mark.slow

DEMO = re.compile(
    r"demo: base=[0-9.]+ sft=[0-9.]+ dft=[0-9.]+ dr_sft=[0-9.]+ dr_dft=[0-9.]+ dr_is=[0-9.]+ "
    r"var_expert=[0-9.]+ var_self=([0-9.]+|nan) var_guided=([0-9.]+|nan) expert_share=[0-9.]+"
)


# The offline jobs' settings over the small run (`small_run`): three rewrite shards.
OFFLINE = (
    "data.max_train_problems=48",
    "data.max_test_problems=16",
    "rewrite.shard_size=16",
    "eval.n=2",
    "rollout.num_engines=1",
    "learner.train_batch_size=16",
    "train.epochs=1",
    "train.save_every=1",
)


def test_main_job_end_to_end_and_rerun(
    small_engine: RolloutGroup,
    kept_learner: KeptLearner,
    small_world: World,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    run = on_shared(start(compose("tiny", small_run(out, *OFFLINE))), small_engine, kept_learner)
    assert run.world is not None and run.world.root == small_world.root  # cached, not rebuilt
    line = main_job(run, small_engine)
    assert DEMO.fullmatch(line), line
    assert (out / "demo.txt").read_text().strip() == line
    assert (out / "results.png").stat().st_size > 0 and "| dr_dft |" in (
        out / "results.md"
    ).read_text()
    assert list((out / "tb" / "dr_dft").glob("events.out.tfevents.*"))
    shards = sorted((out / "rewrite" / "shards").glob("*.parquet"))
    records = [r for s in shards for r in read_records(s)]
    assert len(shards) == 3 and len(records) == 48
    assert len({r.problem_id for r in records}) == 48  # keep=one: every problem exactly once
    for method in ("sft", "dft", "dr_sft", "dr_dft", "dr_is"):
        assert (out / method / "model" / "model.safetensors").is_file()

    # A rerun after losing a shard, a summary and one method's results redoes only those.
    shards[1].unlink()
    (out / "rewrite" / "summary.json").unlink()
    (out / "dft" / "eval.json").unlink()
    small_engine.load_folder(run.model_path, version=0)  # a new job starts on the base policy
    assert DEMO.fullmatch(main_job(run, small_engine))
    again = [r for s in shards for r in read_records(s)]
    assert sorted(r.problem_id for r in again) == sorted(r.problem_id for r in records)


def test_rewrite_resumes_after_a_crash(
    small_engine: RolloutGroup, small_world: World, tmp_path: Path
) -> None:
    problems = small_world.train_problems()[:24]
    tokenizer = AutoTokenizer.from_pretrained(small_world.model_dir)
    cfg = RewriteConfig(samples=2, guided_samples=2, max_tokens=96, shard_size=8)
    rollout = small_engine
    calls = []

    def flaky(pairs):
        calls.append(len(pairs))
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while grading the second shard
        return grade_parallel(pairs, 2)

    template = get_template("plain")
    with pytest.raises(KeyboardInterrupt):
        run_rewrite(problems, rollout, tokenizer, template, cfg, tmp_path, flaky)
    first = tmp_path / "shards" / "shard-00000.parquet"
    assert first.is_file() and not (tmp_path / "shards" / "shard-00001.parquet").exists()
    before = first.read_bytes()
    records = run_rewrite(
        problems, rollout, tokenizer, template, cfg, tmp_path, lambda p: grade_parallel(p, 2)
    )
    assert first.read_bytes() == before  # finished shards are not redone
    assert sorted(r.problem_id for r in records) == sorted(p.problem_id for p in problems)
    other = RewriteConfig(samples=3, shard_size=8)
    with pytest.raises(ValueError, match="other problems or settings"):
        run_rewrite(problems, rollout, tokenizer, template, other, tmp_path, flaky)
