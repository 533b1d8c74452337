"""Starting Ray on this machine (the one place that decides how a local Ray is brought up),
waiting for the cluster to place a group, and the GPUs colocated groups share."""

import logging
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group

from mtg_ray.gpu_plan import GPU_SHARE, GpuPlan
from mtg_ray.tempdirs import OwnedTempDir

log = logging.getLogger(__name__)

_RAY_TEMP_DIRS: list[OwnedTempDir] = []

REPORT_EVERY_S = 60.0


def wait_placed(pg: PlacementGroup, what: str) -> None:
    """Block until `pg` is placed, saying every minute what it waits for: an autoscaler may
    still be adding nodes, and a cluster that lacks them waits for ever, but not silently."""
    waited = 0.0
    while True:
        try:
            ray.get(pg.ready(), timeout=REPORT_EVERY_S)
            return
        except GetTimeoutError:
            waited += REPORT_EVERY_S
            log.warning(
                "%s: still waiting after %.0f s for %d bundle(s) of %s; the cluster has free %s",
                what, waited, len(pg.bundle_specs), pg.bundle_specs[0], ray.available_resources(),
            )  # fmt: skip


def init_local_ray(num_cpus: int | None, host: str = "127.0.0.1", **kwargs: Any) -> None:
    """A new local Ray bound to `host`, with no dashboard and worker logs kept off the console.

    `address="local"` always starts a fresh instance, so a stray `ray start` cluster on this
    machine is never joined by accident. Its session folder (logs, sockets, spilled objects)
    goes into a temp folder this process owns: removed at exit, or by the next run if this one
    was killed (Ray's default, /tmp/ray, keeps every session). `kwargs` go to `ray.init` (e.g.
    a runtime_env).
    """
    # /tmp, not $TMPDIR: Ray's socket paths inside the session folder must stay under 107 bytes.
    temp = OwnedTempDir("mtg-ray-ray-", root="/tmp")
    _RAY_TEMP_DIRS.append(temp)  # kept until exit: Ray's own exit hook shuts it down first
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address=host,
        _temp_dir=temp.path,
        log_to_driver=False,
        **kwargs,
    )


def node_gpus() -> list[int]:
    """The GPUs of each alive node of the cluster Ray is connected to."""
    return [int(n["Resources"].get("GPU", 0)) for n in ray.nodes() if n["Alive"]]


@dataclass
class SharedGpus:
    """The placement group colocated engines and learner ranks share
    (`resources.gpu_mode=colocate`): bundle i is one GPU, and every actor placed there asks
    `share` of it, so learner rank i and the engine (worker) on bundle i use the same GPU."""

    pg: PlacementGroup
    share: float = GPU_SHARE

    @classmethod
    def place(cls, plan: GpuPlan) -> "SharedGpus":
        bundle = {"GPU": 1, "CPU": plan.bundle_cpus}
        pg = placement_group([bundle] * plan.shared_bundles, strategy="PACK")
        wait_placed(pg, "shared GPUs")
        return cls(pg)

    def remove(self) -> None:
        remove_placement_group(self.pg)
