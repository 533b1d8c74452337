"""Transfer groups, shared by the backends that broadcast: the rank an engine worker takes
(vLLM's NCCL layout, which the gloo and direct backends both follow) and the stateless gloo
group that the gloo backend and the NCCL stand-in broadcast over.

vLLM is imported in `join_group` only, so that the learner side (`direct`) can import this
module without loading vLLM's distributed package.
"""

from datetime import timedelta
from typing import Any

from torch import Tensor

TIMEOUT_S = 600.0


def worker_rank(rank_offset: int, dp_index: int, world_size: int, rank: int) -> int:
    """An engine worker's rank in the transfer group, as vLLM's NCCL weight-transfer engine
    computes it (`worker_init_process_group`): its engine's offset, plus its data-parallel
    replica's block (`dp_index` x TP x PP, `world_size` being TP x PP), plus its rank there."""
    return rank_offset + dp_index * world_size + rank


def join_group(
    address: str, port: int, rank: int, world_size: int, timeout_s: float = TIMEOUT_S
) -> Any:
    """A stateless gloo group; its collectives fail after `timeout_s` instead of hanging."""
    from vllm.distributed.utils import stateless_init_torch_distributed_process_group

    return stateless_init_torch_distributed_process_group(
        address, port, rank, world_size, backend="gloo", timeout=timedelta(seconds=timeout_s)
    )


def broadcast(group: Any, tensor: Tensor) -> None:
    """Broadcast from group rank 0 on a stateless group (ranks are group-local)."""
    group.broadcast(tensor, 0).wait()
