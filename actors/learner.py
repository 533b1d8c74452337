"""The Ray actor of one learner rank: `LearnerRank` plus the rendezvous address of its node."""

import ray

from mtg_ray.learner.rank import LearnerRank
from mtg_ray.ports import free_port


class LearnerActor(LearnerRank):
    """A `LearnerRank` in a Ray actor (see `mtg_ray.pipelines.learner_group`)."""

    def master_address(self) -> tuple[str, int]:
        """This node's address and a free port on it, for rank 0 to host the rendezvous."""
        host = ray.util.get_node_ip_address()
        return host, free_port(host)
