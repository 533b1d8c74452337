"""The Ray actor of one learner rank: `LearnerRank` plus the rendezvous address of its node."""

import ray

from mtg_ray.learner.rank import LearnerRank
from mtg_ray.ports import free_port


class LearnerActor(LearnerRank):
    """A `LearnerRank` in a Ray actor (see `mtg_ray.pipelines.learner_group`)."""

    def master_address(self) -> tuple[str, int]:
        """This node's address and a free port on it, for rank 0 to host the rendezvous."""
        return self.rendezvous_address("auto")

    def rendezvous_address(self, host: str) -> tuple[str, int]:
        """`host` ("auto": this node's Ray address) and a port free on it."""
        host = ray.util.get_node_ip_address() if host == "auto" else host
        return host, free_port(host)
