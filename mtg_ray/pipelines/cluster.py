"""Starting Ray on this machine (the one place that decides how a local Ray is brought up),
and waiting for the cluster to place a group."""

import logging
from typing import Any

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import PlacementGroup

log = logging.getLogger(__name__)

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
    machine is never joined by accident. `kwargs` go to `ray.init` (e.g. a runtime_env).
    """
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address=host,
        log_to_driver=False,
        **kwargs,
    )
