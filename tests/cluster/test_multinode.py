"""Multi-node, simulated on one machine (see conftest.py): the learner on its own node, the
engines on two others; weights across nodes, a node lost mid-rewrite and mid-online training,
the driver killed during online mode and resumed.

The tests share one rollout group (engines are expensive to start) and run in file order: each
leaves the group on nodes that are alive, and the next one adds a node where it needs two.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import ray
import torch

from mtg_ray.config import JobConfig, compose
from mtg_ray.data import read_records
from mtg_ray.paths import REPO_ROOT
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.pipelines.jobs.offline import method_objective
from mtg_ray.pipelines.jobs.online import online_job
from mtg_ray.pipelines.jobs.rewrite import run_rewrite
from mtg_ray.pipelines.jobs.session import start
from mtg_ray.tinyworld import World

from .conftest import LEARNER, ROLLOUT, SimCluster, actor_processes, eventually

pytestmark = pytest.mark.slow

STEPS = 3


# The cluster's job settings over the small run (`small_run`): the learner on its node, the
# engines spread over theirs, weights from the driver to them over gloo.
CLUSTER = (
    "data.max_train_problems=24",
    "data.max_test_problems=8",
    "rewrite.shard_size=8",
    "eval.n=1",
    "rollout.weight_backend=gloo",
    "rollout.sync_host=auto",
    f"rollout.node_resource={ROLLOUT}",
    "rollout.placement_strategy=SPREAD",
    "learner.num_workers=1",
    f"learner.node_resource={LEARNER}",
    "learner.train_batch_size=8",
    f"online.steps={STEPS}",
    "online.save_every=1",
)


def job(small_run: Callable[..., list[str]], out: Path) -> JobConfig:
    """The online job on the shared rollout group's two engines, writing to `out`."""
    return compose("online", small_run(out, *CLUSTER, "rollout.num_engines=2"))


@pytest.fixture(scope="module")
def rollout(
    sim_cluster: SimCluster,
    small_world: World,
    small_run: Callable[..., list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RolloutGroup]:
    cfg = job(small_run, tmp_path_factory.mktemp("unused"))
    group = RolloutGroup(cfg.rollout, str(small_world.model_dir))
    yield group
    group.shutdown()


def engine_nodes(rollout: RolloutGroup) -> list[str]:
    return ray.get([e.node_id.remote() for e in rollout.engines])


def remove_when(
    sim: SimCluster, rollout: RolloutGroup, ready: Callable[[], bool]
) -> threading.Thread:
    """A thread that removes engine 0's node once `ready()` holds and a request is in flight
    on the engines (so the node dies mid-generation); its `.removed` is the node's id."""

    def watch() -> None:
        while not (ready() and rollout.in_flight > 0):
            time.sleep(0.05)
        node = ray.get(rollout.engines[0].node_id.remote())
        thread.removed = node  # type: ignore[attr-defined]
        sim.remove_rollout_node(node)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def live_groups() -> int:
    """Placement groups created or still being placed, over the whole cluster."""
    table = ray.util.placement_group_table().values()
    return sum(pg["state"] in ("CREATED", "PENDING", "RESCHEDULING") for pg in table)


def test_placement_and_weights_across_nodes_shm_refused(
    sim_cluster: SimCluster,
    rollout: RolloutGroup,
    small_world: World,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    head = ray.get_runtime_context().get_node_id()
    assert set(engine_nodes(rollout)) == sim_cluster.rollout_ids  # SPREAD: one per node
    assert head not in sim_cluster.rollout_ids

    run = start(job(small_run, tmp_path / "run"))
    learner = run.learner_group(total_steps=2)  # the run keeps it: closed below
    try:
        assert ray.get(learner.workers[0].node_id.remote()) == sim_cluster.learner.node_id
        records = run.expert[:8]
        prompts = [r.prompt_token_ids for r in records]
        responses = [r.response_token_ids for r in records]
        learner.train_step(records, method_objective(run, "sft"))
        trained = learner.score(records)
        stale = rollout.score(prompts, responses)  # still the base weights
        gap = torch.tensor(sum(stale, [])) - torch.tensor(sum(trained, []))
        assert gap.abs().max() > 1e-3
        stats = rollout.sync_from(learner, 1)  # learner node -> driver (head) -> engine nodes
        assert stats.version == 1 and rollout.versions() == [1, 1]
        for got, want in zip(rollout.score(prompts, responses), trained, strict=True):
            torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-4, rtol=0)
    finally:
        run.learner.close()

    shm = dataclasses.replace(run.cfg.rollout, weight_backend="shm")
    with pytest.raises(ValueError, match="weight_backend=shm needs every engine on this"):
        RolloutGroup(shm, str(small_world.model_dir))  # refused before any engine starts
    assert eventually(lambda: live_groups() == 1)  # the fixture's: nothing left behind


def test_node_lost_mid_rewrite(
    sim_cluster: SimCluster,
    rollout: RolloutGroup,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """Engine 0's node dies while the second shard is generating: its engine comes back on the
    surviving node, the shard's share is redone there, every problem is written exactly once."""
    run = start(job(small_run, tmp_path / "run"))
    out = tmp_path / "rewrite"
    restarts = rollout.restarts
    first_shard = out / "shards" / "shard-00000.parquet"
    remover = remove_when(sim_cluster, rollout, first_shard.is_file)
    records = run_rewrite(
        run.train_problems, rollout, run.tokenizer, run.template, run.cfg.rewrite, out,
        run.grader(), model=run.model_path,
    )  # fmt: skip
    remover.join(timeout=5)
    assert not remover.is_alive(), "the node was never removed: nothing was in flight"
    assert remover.removed not in sim_cluster.rollout_ids  # type: ignore[attr-defined]
    assert rollout.restarts > restarts
    assert set(engine_nodes(rollout)) <= sim_cluster.rollout_ids  # all on surviving nodes

    ids = [p.problem_id for p in run.train_problems]
    assert Counter(r.problem_id for r in records) == Counter(ids)  # keep=one: one each
    shards = sorted((out / "shards").glob("*.parquet"))
    assert sorted(r.problem_id for f in shards for r in read_records(f)) == sorted(ids)


def test_node_lost_mid_online_training(
    sim_cluster: SimCluster,
    rollout: RolloutGroup,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """A rollout node dies while step 1's batch is generating: its engines restart on another
    node with the weights of the version in use, the step's share is redone, and every batch
    is still sampled at its step's policy version."""
    sim_cluster.ensure_rollout_nodes(2)  # somewhere for the lost node's engines to go
    run = start(job(small_run, tmp_path / "run"))
    folder = run.out / "online_dr_dft"
    restarts = rollout.restarts
    remover = remove_when(sim_cluster, rollout, (folder / "data" / "step-00000.parquet").is_file)
    try:
        result = online_job(run, rollout)
    finally:
        run.learner.close()  # the run keeps its learner group: it holds the learner node
    remover.join(timeout=5)
    assert not remover.is_alive(), "the node was never removed: nothing was in flight"
    assert rollout.restarts > restarts
    assert set(engine_nodes(rollout)) <= sim_cluster.rollout_ids

    assert result["steps"] == STEPS == result["policy_version"]
    assert result["timing"]["steps_run"] == STEPS
    assert rollout.versions() == [STEPS, STEPS]
    for step in range(STEPS):
        records = read_records(folder / "data" / f"step-{step:05d}.parquet")
        assert len(records) == 8
        sampled = [r.policy_version for r in records if r.source != "expert"]
        assert all(v == step for v in sampled), (step, sampled)  # sync every step, no overlap


def ray_processes(sim: SimCluster, kind: str) -> list[psutil.Process]:
    """The cluster's processes of Ray actors of class `kind`."""
    return actor_processes(sim.processes(), kind)


def test_driver_killed_during_online_mode_resumes(
    sim_cluster: SimCluster,
    rollout: RolloutGroup,
    small_run: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """`scripts/run.py online` joins the cluster as its own driver and is killed with SIGKILL
    right after a checkpoint: its engines and learner go with it; the same command resumes at
    the checkpoint's cursor and policy version and trains each remaining step once."""
    sim_cluster.ensure_rollout_nodes(2)  # room for the driver's engine beside the shared two
    out = tmp_path / "run"
    command = [
        sys.executable, "scripts/run.py", "online", "--config", "online",
        *small_run(out, *CLUSTER, "rollout.num_engines=1"),
        f"resources.address={sim_cluster.cluster.address}",
    ]  # fmt: skip
    folder = out / "online_dr_dft"
    latest = folder / "ckpt" / "latest"
    engines_before = len(ray_processes(sim_cluster, "RolloutActor"))  # the shared group's
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 (closed below)
    driver = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not latest.is_file() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert latest.is_file(), (tmp_path / "driver.log").read_text()[-3000:]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    cursor = int(latest.read_text().strip().removeprefix("global_step"))
    assert 1 <= cursor < STEPS and not (folder / "train_done.json").exists()
    # Ray ends a dead driver's actors and placement groups: no engine or learner stays.
    assert eventually(lambda: len(ray_processes(sim_cluster, "LearnerActor")) == 0, 60)
    assert eventually(lambda: len(ray_processes(sim_cluster, "RolloutActor")) == engines_before, 60)
    assert eventually(lambda: live_groups() == 1, 60)  # the shared group's

    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    result = json.loads((folder / "train_done.json").read_text())
    assert result["steps"] == STEPS == result["policy_version"]
    assert result["timing"]["steps_run"] == STEPS - cursor  # resumed at the cursor, not redone
    resumed = read_records(folder / "data" / f"step-{cursor:05d}.parquet")
    sampled = [r.policy_version for r in resumed if r.source != "expert"]
    assert all(v == cursor for v in sampled), sampled  # sampled at the saved version
