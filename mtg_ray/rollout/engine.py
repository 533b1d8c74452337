"""One vLLM engine in the calling process: generation, scoring, and weight updates through
vLLM's weight-transfer API. A plain class: `actors.rollout` hosts it in a Ray actor."""

import os
from typing import Any

from mtg_ray.rollout.config import RolloutConfig, SamplingConfig
from mtg_ray.rollout.types import Sample


class RolloutEngine:
    """Engine `index` of a rollout group serving the HF model at `model`. Every sample carries
    the policy version of the weights that made it (the version the last update was given)."""

    def __init__(self, cfg: RolloutConfig, index: int, model: str) -> None:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine in this process
        from vllm import LLM
        from vllm.platforms import current_platform

        kwargs: dict[str, Any] = dict(
            model=model,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            enforce_eager=cfg.enforce_eager,
            seed=cfg.seed + index,
            logprobs_mode="processed_logprobs",
            weight_transfer_config={"backend": cfg.weight_backend},
        )
        if current_platform.is_cpu():
            kwargs["kv_cache_memory_bytes"] = cfg.kv_cache_bytes
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
            kwargs["tensor_parallel_size"] = cfg.tensor_parallel_size
            if cfg.tensor_parallel_size > 1:
                kwargs["distributed_executor_backend"] = "ray"
        self.llm = LLM(**kwargs)
        self.version = 0

    def ready(self) -> int:
        """The policy version of the weights this engine holds."""
        return self.version

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[list[Sample]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            ignore_eos=sampling.ignore_eos,
            logprobs=0,
        )
        outputs = self.llm.generate(
            [{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False
        )
        return [
            [
                Sample(
                    text=c.text,
                    token_ids=tuple(c.token_ids),
                    logprobs=tuple(
                        lp[tok].logprob for tok, lp in zip(c.token_ids, c.logprobs, strict=True)
                    ),
                    finish_reason=str(c.finish_reason),
                    policy_version=self.version,
                )
                for c in out.outputs
            ]
            for out in outputs
        ]

    def score(self, pairs: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """log pi(response_t | prompt, response_<t) under the current weights."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        outputs = self.llm.generate(
            [{"prompt_token_ids": list(p) + list(r)} for p, r in pairs], params, use_tqdm=False
        )
        scores = []
        for (prompt, response), out in zip(pairs, outputs, strict=True):
            ids = list(prompt) + list(response)
            per_pos = out.prompt_logprobs
            scores.append([per_pos[t][ids[t]].logprob for t in range(len(prompt), len(ids))])
        return scores

    def num_workers(self) -> int:
        """vLLM workers of this engine (GPUs with tensor parallelism): its ranks in a transfer
        group."""
        return self.llm.get_world_size(include_dp=True)

    def init_weight_sync(self, info: dict[str, Any]) -> None:
        """Join a transfer group (the backend's init info; blocks until the sender joins)."""
        self.llm.collective_rpc("init_weight_transfer_engine", args=(info,))

    def close_weight_sync(self) -> None:
        self.llm.collective_rpc("shutdown_weight_transfer_engine")

    def start_weight_update(self) -> None:
        self.llm.collective_rpc("start_weight_update")

    def update_weights(self, meta: dict[str, Any]) -> None:
        self.llm.collective_rpc("update_weights", args=(meta,))

    def finish_weight_update(self, version: int) -> None:
        self.llm.collective_rpc("finish_weight_update")
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights
        self.version = version

    def load_folder(self, path: str, version: int) -> None:
        """The weights of the HF folder at `path` (on storage this engine sees), as `version`."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": path})
        self.llm.reset_prefix_cache()
        self.version = version
