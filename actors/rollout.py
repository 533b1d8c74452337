"""The Ray actor of one rollout engine: `RolloutEngine` plus the node it runs on."""

import ray

from mtg_ray.rollout.engine import RolloutEngine


class RolloutActor(RolloutEngine):
    """A `RolloutEngine` in a Ray actor (see `mtg_ray.pipelines.groups.rollout_group`)."""

    def node_id(self) -> str:
        """The Ray node this engine runs on (the shm weight backend needs the sender's)."""
        return ray.get_runtime_context().get_node_id()
