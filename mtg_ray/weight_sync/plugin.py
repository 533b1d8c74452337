"""vLLM plugin (entry point `vllm.general_plugins`): registers our CPU weight-transfer backends,
`gloo` and `shm`, and the CPU stand-in for vLLM's `nccl` (tests), with vLLM's factory in every
process vLLM starts."""

from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory

from mtg_ray.weight_sync.gloo import BACKEND as GLOO
from mtg_ray.weight_sync.gloo import GlooWeightTransferEngine
from mtg_ray.weight_sync.nccl_standin import BACKEND as NCCL_STANDIN
from mtg_ray.weight_sync.nccl_standin import GlooStandInNcclEngine
from mtg_ray.weight_sync.shm import BACKEND as SHM
from mtg_ray.weight_sync.shm import ShmWeightTransferEngine


def register() -> None:
    """Make `weight_transfer_config={"backend": <one of ours>}` available (idempotent)."""
    engines = (
        (GLOO, GlooWeightTransferEngine),
        (SHM, ShmWeightTransferEngine),
        (NCCL_STANDIN, GlooStandInNcclEngine),
    )
    for name, engine in engines:
        try:
            WeightTransferEngineFactory.register_engine(name, engine)
        except ValueError:  # already registered in this process
            pass
