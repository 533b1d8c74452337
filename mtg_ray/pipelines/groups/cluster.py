"""Starting Ray on this machine (the one place that decides how a local Ray is brought up),
and waiting for the cluster to place a group."""

import logging
from typing import Any

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import PlacementGroup

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
