"""One learner rank driven in-process (one-rank gloo group, no Ray): the modes its forwards
run in."""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from mtg_ray.data.synthetic import arithmetic_records
from mtg_ray.learner import LearnerConfig
from mtg_ray.learner.metrics import source_shares
from mtg_ray.learner.rank import LearnerRank, account_sources, reduced_loss
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


def fake_out(token_loss: list[list[float]]) -> SimpleNamespace:
    """A ForwardOutput's loss fields for records whose per-token terms are `token_loss`."""
    width = max(len(r) for r in token_loss)
    terms = torch.tensor([r + [0.0] * (width - len(r)) for r in token_loss])
    mask = torch.tensor([[i < len(r) for i in range(width)] for r in token_loss])
    counts = mask.sum(-1)
    return SimpleNamespace(
        loss=terms.sum() / counts.sum(),
        record_loss=terms.sum(-1) / counts,
        token_loss=terms,
        response_tokens=int(counts.sum()),
        mask=mask,
    )


# Two ranks x two micro-batches x two records; one long record among short ones.
MICRO = (
    [[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [3.0]], [[2.0, 2.0], [4.0]]],
    [[[0.5], [1.5]], [[1.0], [2.0]]],
)


@pytest.mark.parametrize("reduction", ["token_mean", "sequence_mean", "micro_batch_mean"])
def test_each_reduction_is_what_deepspeed_ends_up_differentiating(reduction: str) -> None:
    """Back-propagated terms, divided by the accumulation steps and averaged over ranks (as
    DeepSpeed does), give the reduction's loss over the whole optimizer batch."""
    records = [r for rank in MICRO for micro in rank for r in micro]
    tokens = sum(len(r) for r in records)
    ranks, accumulation = len(MICRO), len(MICRO[0])
    total = sum(
        float(reduced_loss(fake_out(micro), reduction, accumulation, ranks, tokens, len(records)))
        for rank in MICRO
        for micro in rank
    ) / (accumulation * ranks)
    want = {
        "token_mean": sum(map(sum, records)) / tokens,
        "sequence_mean": sum(sum(r) / len(r) for r in records) / len(records),
        "micro_batch_mean": sum(
            sum(map(sum, micro)) / sum(map(len, micro)) for rank in MICRO for micro in rank
        )
        / ranks,
    }[reduction]
    assert total == pytest.approx(want)


def test_loss_shares_weigh_each_token_as_the_reduction_does() -> None:
    out = fake_out([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [3.0]])  # a long expert, a short self row
    batch = SimpleNamespace(mask=out.mask, sources=["expert", "self"])
    shares = {}
    for reduction in ("token_mean", "sequence_mean"):
        report = {"tokens_by_source": {}, "loss_by_source": {}}
        account_sources(report, out, batch, reduction)
        assert report["tokens_by_source"] == {"expert": 6, "self": 1}
        shares[reduction] = source_shares([report])
    assert shares["token_mean"]["train/loss_share/expert"] == pytest.approx(6 / 9)
    assert shares["sequence_mean"]["train/loss_share/expert"] == pytest.approx(1 / 4)
    assert shares["token_mean"]["train/token_share/self"] == pytest.approx(1 / 7)
    assert shares["token_mean"]["train/loss_share/guided"] == 0.0


def test_a_sequence_mean_step_trains_and_reports_shares(rank) -> None:
    base = rank.cfg
    rank.restart(dataclasses.replace(base, loss_reduction="sequence_mean"), rank.model_path, 4)
    try:
        records = arithmetic_records(4, build_tokenizer())
        tokens = sum(len(r.response_token_ids) for r in records)
        report = rank.train_step(records, tokens, Objective("sft"))
    finally:
        rank.restart(base, rank.model_path, 4)
    shares = source_shares([report])
    assert sum(v for k, v in shares.items() if "loss_share" in k) == pytest.approx(1.0)
    assert sum(report["tokens_by_source"].values()) == tokens
    assert math.isfinite(report["grad_norm"]) and report["grad_norm"] > 0
