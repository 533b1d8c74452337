"""Starting Ray on this machine: the one place that decides how a local Ray is brought up."""

from typing import Any

import ray


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
