"""One learner rank driven in-process (one-rank gloo group, no Ray): the modes its forwards
run in."""

import pytest
import torch

from mtg_ray.data.synthetic import arithmetic_records
from mtg_ray.learner import LearnerConfig
from mtg_ray.learner.rank import LearnerRank
from mtg_ray.models import build_tiny_model, build_tokenizer
from mtg_ray.objectives import Objective


@pytest.fixture(scope="module")
def rank(tmp_path_factory):
    cfg = LearnerConfig(
        num_workers=1, train_batch_size=4, micro_batch_size=2, max_length=64,
        gradient_checkpointing=True,
    )  # fmt: skip
    worker = LearnerRank(cfg, 0, str(build_tiny_model(tmp_path_factory.mktemp("m"))), 4)
    worker.setup("127.0.0.1", worker.open_store("127.0.0.1"))
    yield worker
    worker.shutdown()


def test_gradient_checkpointing_recomputes_in_backward_and_scoring_runs_in_eval(rank) -> None:
    """With learner.gradient_checkpointing a decoder layer runs twice per training micro-batch
    (forward, then its recomputation in backward) and in training mode; scoring runs it once,
    in eval mode, and the module is left in eval mode."""
    calls: list[tuple[bool, bool]] = []
    layer = rank.engine.module.model.layers[0]
    hook = layer.register_forward_pre_hook(  # recomputation stops early: no post-hook
        lambda m, args: calls.append((m.training, torch.is_grad_enabled()))
    )
    records = arithmetic_records(4, build_tokenizer())
    tokens = sum(len(r.response_token_ids) for r in records)
    try:
        rank.train_step(records, tokens, Objective("sft"))
        assert len(calls) == 4 and all(training for training, _ in calls)
        assert not rank.engine.module.training
        calls.clear()
        rank.score(records)
        assert calls == [(False, False)] * 2
    finally:
        hook.remove()
