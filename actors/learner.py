"""The Ray actor of one learner rank: `LearnerRank` plus the rendezvous address of its node."""

import ray

from mtg_ray.learner.rank import LearnerRank
from mtg_ray.ports import free_port


class LearnerActor(LearnerRank):
    """A `LearnerRank` in a Ray actor (see `mtg_ray.pipelines.groups.learner_group`)."""

    def master_address(self) -> tuple[str, int]:
        """Rank 0: where the process group's store now listens (this node's address only)."""
        host = ray.util.get_node_ip_address()
        return host, self.open_store(host)

    def rendezvous_address(self, host: str) -> tuple[str, int]:
        """`host` ("auto": this node's Ray address) and a port free on it."""
        host = ray.util.get_node_ip_address() if host == "auto" else host
        return host, free_port(host)

    def node_id(self) -> str:
        """The Ray node this rank runs on."""
        return ray.get_runtime_context().get_node_id()
