"""One vLLM engine in the calling process: generation, scoring, and weight updates through
vLLM's weight-transfer API. A plain class: `actors.rollout` hosts it in a Ray actor."""

import os
from collections.abc import Sequence
from typing import Any

import torch

from mtg_ray.rollout.config import RolloutConfig, SamplingConfig, per_prompt
from mtg_ray.rollout.gpu_memory import wait_for_free_memory
from mtg_ray.rollout.tied import refresh_tied_heads, watch_tied_heads
from mtg_ray.rollout.types import Sample


def _vllm_params(sampling: SamplingConfig, stop_token_ids: Sequence[int] = ()) -> Any:
    """vLLM's request parameters for `sampling`, with the behaviour log-prob of each token,
    stopping also on `stop_token_ids` (unless it ignores EOS: a benchmark's fixed length)."""
    from vllm import SamplingParams

    return SamplingParams(
        n=sampling.n,
        stop_token_ids=None if sampling.ignore_eos else list(stop_token_ids) or None,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        seed=sampling.seed,
        stop=list(sampling.stop) or None,
        ignore_eos=sampling.ignore_eos,
        logprobs=0,
        flat_logprobs=True,
        # vLLM's detokenizer runs per token per step (and decodes every logprob's token): the
        # text is decoded once at the end instead, unless stop strings need it on the way.
        detokenize=bool(sampling.stop),
    )


def sampled_logprobs(token_ids: Sequence[int], flat: Any) -> tuple[float, ...]:
    """The log-prob of each token from vLLM's flat logprobs of a request asked for 0 extra ones
    (`logprobs=0` / `prompt_logprobs=0`): one entry per position, the token itself."""
    if list(flat.token_ids) != list(token_ids):
        raise RuntimeError("vLLM's logprobs do not line up with the tokens one per position")
    return tuple(flat.logprobs)


# The vLLM releases whose weight-transfer API (and rank layout) this engine and the weight
# sync call; pyproject's `gpu` extra pins the same range (a test keeps them equal).
VLLM_REQUIRED = ">=0.32,<0.33"


def check_vllm_version(installed: str, required: str = VLLM_REQUIRED) -> None:
    """Raise one line naming both versions unless `installed` is in `required`: an older
    vLLM would otherwise fail only at the first weight sync."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    if Version(installed) not in SpecifierSet(required):
        raise RuntimeError(
            f"vLLM {installed} is installed; mtg-ray's rollout engine needs vllm{required} "
            "(its weight-transfer API): pip install 'mtg-ray[gpu]' (or [cpu])"
        )


class RolloutEngine:
    """Engine `index` of a rollout group serving the HF model at `model`. Every sample carries
    the policy version of the weights that made it (the version the last update was given).
    Every request stops on the checkpoint's EOS ids (its `generation_config`, as vLLM reads
    it: an Instruct model lists its end-of-turn token there) and on `stop_token_ids` (the
    prompt format's end of turn, `end_token_id`)."""

    def __init__(
        self, cfg: RolloutConfig, index: int, model: str, stop_token_ids: Sequence[int] = (),
        sleep_mode: bool = False,
    ) -> None:  # fmt: skip
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine in this process
        import vllm
        from vllm import LLM

        check_vllm_version(vllm.__version__)
        from vllm.platforms import current_platform

        kwargs: dict[str, Any] = dict(
            model=model,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            enforce_eager=cfg.enforce_eager,
            seed=cfg.seed + index,
            logprobs_mode="processed_logprobs",
            weight_transfer_config={"backend": cfg.weight_backend},
            generation_config="auto",  # the checkpoint's: its EOS ids stop every request
        )
        if sleep_mode:  # colocated with a learner rank: `sleep` while it trains
            kwargs["enable_sleep_mode"] = True
        if cfg.max_num_seqs:
            kwargs["max_num_seqs"] = cfg.max_num_seqs
        if cfg.max_num_batched_tokens:
            kwargs["max_num_batched_tokens"] = cfg.max_num_batched_tokens
        if current_platform.is_cpu():
            kwargs["kv_cache_memory_bytes"] = cfg.kv_cache_bytes
        else:
            if cfg.gpus_per_engine == 1:  # this process holds the GPU (vLLM's workers: theirs)
                wait_for_free_memory(
                    cfg.gpu_memory_utilization, cfg.start_memory_timeout_s,
                    torch.cuda.mem_get_info,
                )  # fmt: skip
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
            kwargs["tensor_parallel_size"] = cfg.tensor_parallel_size
            kwargs["pipeline_parallel_size"] = cfg.pipeline_parallel_size
            if cfg.gpus_per_engine > 1:  # vLLM's Ray workers, in this actor's bundles
                kwargs["distributed_executor_backend"] = "ray"
        self.llm = LLM(**kwargs)
        self.llm.collective_rpc(watch_tied_heads)
        self.version = 0
        self.stop_token_ids = tuple(stop_token_ids)

    def sleep(self) -> None:
        """Give the GPU to the colocated learner: KV cache dropped, weights to host memory
        (vLLM's sleep level 1). No request may run until `wake_up`."""
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        self.llm.wake_up()

    def ready(self) -> int:
        """The policy version of the weights this engine holds."""
        return self.version

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig | Sequence[SamplingConfig]
    ) -> list[list[Sample]]:
        """Samples per prompt, with one sampling config for all prompts or one per prompt."""
        configs = per_prompt(sampling, len(prompts))
        params = {c: _vllm_params(c, self.stop_token_ids) for c in set(configs)}
        outputs = self.llm.generate(
            [{"prompt_token_ids": p} for p in prompts],
            [params[c] for c in configs],
            use_tqdm=False,
        )
        decode = self.llm.get_tokenizer().decode
        return [
            [
                Sample(
                    text=c.text if cfg.stop else decode(c.token_ids, skip_special_tokens=True),
                    token_ids=tuple(c.token_ids),
                    logprobs=sampled_logprobs(c.token_ids, c.logprobs),
                    finish_reason=str(c.finish_reason),
                    policy_version=self.version,
                )
                for c in out.outputs
            ]
            for cfg, out in zip(configs, outputs, strict=True)
        ]

    def score(self, pairs: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """log pi(response_t | prompt, response_<t) under the current weights."""
        from vllm import SamplingParams

        params = SamplingParams(
            max_tokens=1, prompt_logprobs=0, temperature=1.0, flat_logprobs=True, detokenize=False
        )
        outputs = self.llm.generate(
            [{"prompt_token_ids": list(p) + list(r)} for p, r in pairs], params, use_tqdm=False
        )
        scores = []
        for (prompt, response), out in zip(pairs, outputs, strict=True):
            ids = list(prompt) + list(response)
            # Position 0 has no log-prob (no entries); position t scores ids[t] given ids[:t].
            scored = sampled_logprobs(ids[1:], out.prompt_logprobs)
            scores.append(list(scored[len(prompt) - 1 :]))
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
        self.llm.collective_rpc(refresh_tied_heads)
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights
        self.version = version

    def load_folder(self, path: str, version: int) -> None:
        """The weights of the HF folder at `path` (on storage this engine sees), as `version`."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": path})
        self.llm.collective_rpc(refresh_tied_heads)
        self.llm.reset_prefix_cache()
        self.version = version
