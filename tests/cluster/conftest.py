"""A multi-node Ray cluster simulated on one machine: Ray's own test cluster, whose head and
worker nodes are separate raylets (each with its own workers, object store and node id).

The head holds the driver and grading tasks; one node is for the learner (custom resource
`learner`), two for engines (`rollout`, room for both engines each, so a lost node's engines fit
on the other). A process has one Ray: these tests run last (tests/conftest.py orders them) and
end any local Ray the tests of tests/jobs started.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
import ray
from ray.cluster_utils import Cluster

LEARNER, ROLLOUT = "learner", "rollout"


def eventually(ok: Callable[[], Any], timeout: float = 30.0) -> bool:
    """Whether `ok()` holds within `timeout` seconds (Ray's cluster view and process exits
    are asynchronous)."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def actor_processes(procs: list[psutil.Process], kind: str) -> list[psutil.Process]:
    """Those of `procs` that are Ray actors of class `kind` (their title is ray::<kind>...)."""
    found = []
    for proc in procs:
        try:
            if (proc.cmdline() or [""])[0].startswith(f"ray::{kind}"):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


@dataclass
class SimCluster:
    """The cluster and its worker nodes by role; `rollout` loses nodes as tests remove them."""

    cluster: Cluster
    learner: Any
    rollout: list[Any] = field(default_factory=list)

    def add_rollout_node(self) -> Any:
        node = self.cluster.add_node(num_cpus=2, resources={ROLLOUT: 2})
        self.cluster.wait_for_nodes()
        self.rollout.append(node)
        return node

    def ensure_rollout_nodes(self, count: int) -> None:
        while len(self.rollout) < count:
            self.add_rollout_node()

    def remove_rollout_node(self, node_id: str) -> None:
        """Kill the rollout node `node_id` (its raylet and every worker on it)."""
        node = next(n for n in self.rollout if n.node_id == node_id)
        self.rollout.remove(node)
        self.cluster.remove_node(node)

    @property
    def rollout_ids(self) -> set[str]:
        return {n.node_id for n in self.rollout}

    def processes(self) -> list[psutil.Process]:
        """This cluster's processes: each live node's Ray daemons and all they started (workers,
        actors), and no other Ray on the machine."""
        nodes = [self.cluster.head_node, *self.cluster.worker_nodes]
        found: dict[int, psutil.Process] = {}
        for node in nodes:
            for infos in node.all_processes.values():
                for info in infos:
                    try:
                        root = psutil.Process(info.process.pid)
                        found[root.pid] = root
                        found.update((c.pid, c) for c in root.children(recursive=True))
                    except psutil.NoSuchProcess:
                        continue
        return list(found.values())


@pytest.fixture(scope="module")
def sim_cluster() -> Iterator[SimCluster]:
    if ray.is_initialized():
        ray.shutdown()  # the local Ray of tests/jobs: one Ray per process
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    sim = SimCluster(cluster, cluster.add_node(num_cpus=1, resources={LEARNER: 1}))
    for _ in range(2):
        sim.add_rollout_node()
    env = {"TOKENIZERS_PARALLELISM": "false"}
    ray.init(address=cluster.address, log_to_driver=False, runtime_env={"env_vars": env})
    yield sim
    ray.shutdown()
    cluster.shutdown()
