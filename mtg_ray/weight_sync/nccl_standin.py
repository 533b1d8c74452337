"""Engine end of `GlooStandInBroadcaster`: vLLM's NCCL weight-transfer engine with the CUDA part
(communicator, streams) replaced by a gloo group, so the direct-sync path runs on CPU engines in
tests. Registered as the `nccl_standin_gloo` backend; same init info, update info, rank layout
and chunking as `nccl`."""

from typing import Any

import torch
from vllm.distributed.weight_transfer.nccl_common import NCCLWeightTransferInitInfo
from vllm.distributed.weight_transfer.nccl_engine import NCCLWeightTransferUpdateInfo
from vllm.distributed.weight_transfer.packed_tensor import unpack_tensor

from mtg_ray.weight_sync.buckets import BucketMeta
from mtg_ray.weight_sync.direct import chunk_bounds
from mtg_ray.weight_sync.gloo import GlooGroupEngine
from mtg_ray.weight_sync.groups import broadcast

BACKEND = "nccl_standin_gloo"


class GlooStandInNcclEngine(
    GlooGroupEngine[NCCLWeightTransferInitInfo, NCCLWeightTransferUpdateInfo]
):
    """Worker side: joins at rank `rank_offset + its rank in the engine` (as vLLM's NCCL engine
    does), receives the packed chunks by broadcast and loads them."""

    init_info_cls = NCCLWeightTransferInitInfo
    update_info_cls = NCCLWeightTransferUpdateInfo

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chunk_bytes = 0

    def init_transfer_engine(self, init_info: NCCLWeightTransferInitInfo) -> None:
        if not init_info.packed:
            raise ValueError("the nccl stand-in speaks only the packed wire format")
        assert init_info.master_address is not None and init_info.master_port is not None
        self.chunk_bytes = init_info.packed_buffer_size_bytes
        super().init_transfer_engine(init_info)

    def receive_weights(self, update_info: NCCLWeightTransferUpdateInfo) -> None:
        group = self.joined()
        meta = BucketMeta(update_info.names, update_info.dtype_names, update_info.shapes)
        sizes = meta.sizes()
        for start, stop in chunk_bounds(sizes, self.chunk_bytes):
            buf = torch.empty(sum(sizes[start:stop]), dtype=torch.uint8)
            broadcast(group, buf)
            self.model.load_weights(
                unpack_tensor(
                    buf, meta.names[start:stop], meta.shapes[start:stop],
                    [getattr(torch, d) for d in meta.dtype_names[start:stop]], sizes[start:stop],
                )
            )  # fmt: skip
