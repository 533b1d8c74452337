"""Session-scoped Ray and tiny models: Ray and vLLM engines are expensive to start."""

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from actors.cluster import init_local_ray
from mtg_ray.data import Record
from mtg_ray.models import TinyModelConfig, build_tiny_model
from mtg_ray.models.tiny import build_tokenizer


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    init_local_ray(8, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny Qwen2 models of the same shape, different weights."""
    root = tmp_path_factory.mktemp("models")
    return (
        build_tiny_model(root / "a", TinyModelConfig(seed=0)),
        build_tiny_model(root / "b", TinyModelConfig(seed=1)),
    )


def make_records(n: int, seed: int = 0) -> list[Record]:
    """Arithmetic records from all three sources; self/guided carry made-up behaviour
    log-probs (spread around the tiny model's scale so importance weights vary)."""
    tok = build_tokenizer()
    rng = random.Random(seed)
    sources = ("self", "guided", "expert")
    out = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        prompt = f"Problem: {a}+{b}\nSolution:"
        response = f" {a}+{b}={a + b}. \\boxed{{{a + b}}}"
        p_ids = tok(prompt)["input_ids"]
        r_ids = tok(response)["input_ids"] + [tok.eos_token_id]
        source = sources[i % 3]
        expert = source == "expert"
        out.append(
            Record(
                problem_id=f"p{i}",
                prompt=prompt,
                reference_answer=str(a + b),
                expert_solution=response,
                response=response,
                prompt_token_ids=p_ids,
                response_token_ids=r_ids,
                source=source,
                correct=True,
                behaviour_logprobs=None
                if expert
                else [-4.6 + rng.uniform(-0.5, 0.5) for _ in r_ids],
                policy_version=-1 if expert else 0,
                temperature=None if expert else 1.0,
                top_p=None if expert else 1.0,
                max_tokens=None if expert else 64,
                seed=None,
            )
        )
    return out


@pytest.fixture(scope="session")
def records() -> list[Record]:
    return make_records(8)
