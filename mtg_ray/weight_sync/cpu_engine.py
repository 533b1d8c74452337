"""What our CPU weight-transfer backends share on the worker side: weights arrive in checkpoint
format and load through vLLM's layerwise reload, as vLLM's NCCL backend does."""

from typing import Any

import torch
from vllm.distributed.weight_transfer.base import TInitInfo, TUpdateInfo, WeightTransferEngine


class CpuWeightTransferEngine(WeightTransferEngine[TInitInfo, TUpdateInfo]):
    """Subclasses define `init_transfer_engine`, `receive_weights` and `shutdown`."""

    def start_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

        initialize_layerwise_reload(self.model)

    def finish_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        finalize_layerwise_reload(self.model, self.model_config)

    def update_weights(self, update_info: dict[str, Any]) -> None:
        # The base class ends with torch.accelerator.synchronize(), which raises on a CPU-only
        # host; our transfers are synchronous, so there is nothing to wait for there.
        self.receive_weights(self.parse_update_info(update_info))
        if torch.accelerator.is_available():
            torch.accelerator.synchronize()
