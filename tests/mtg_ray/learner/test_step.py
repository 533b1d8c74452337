import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from mtg_ray.learner import (
    by_length,
    collate,
    forward_objective,
    importance_metrics,
    micro_batches,
)
from mtg_ray.learner.export import param_groups
from mtg_ray.learner.step import live_logprobs
from mtg_ray.models import build_tiny_model
from mtg_ray.objectives import Objective, ObjectiveConfig


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return AutoModelForCausalLM.from_pretrained(
        build_tiny_model(tmp_path_factory.mktemp("m")), dtype=torch.float32
    )


def test_one_forward_gives_loss_and_log_ratios(model, record) -> None:
    batch = collate(
        [record([5, 6, 7], [8, 9, 10], [-4.0, -5.0, -6.0]), record([5, 6], [11, 12], None)],
        pad_id=0,
        max_length=16,
    )
    out = forward_objective(model, batch, Objective("is", ObjectiveConfig(is_clip=1.5)))
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=batch.input_ids).logits[:, :-1], -1)
    live = [full[0, 2 + j, t].item() for j, t in enumerate([8, 9, 10])]
    expected = np.mean(np.array(live) - [-4.0, -5.0, -6.0])
    assert out.log_ratio[0].item() == pytest.approx(expected, rel=1e-5)
    assert math.isnan(out.log_ratio[1].item())
    assert out.logprob_mean[0].item() == pytest.approx(np.mean(live), rel=1e-5)
    assert out.response_tokens == 5
    ratios = np.exp(np.array(live) - [-4.0, -5.0, -6.0])
    assert out.clipped_tokens == int((ratios > 1.5).sum())
    assert out.loss.requires_grad and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.lm_head.weight.grad is not None


def test_importance_metrics_skip_expert_records() -> None:
    m = importance_metrics(["self", "expert", "guided"], [0.0, float("nan"), math.log(3.0)], 2.0)
    assert m["is/self/mean"] == 1.0 and m["is/guided/max"] == pytest.approx(3.0)
    assert m["is/all/count"] == 2 and m["is/all/clipped_fraction"] == 0.5
    assert not any(k.startswith("is/expert/") for k in m)
    assert importance_metrics(["expert"], [float("nan")], 2.0) == {}


def test_param_groups_respect_the_bucket_size(model) -> None:
    sizes = {n: p.numel() * 4 for n, p in model.named_parameters()}
    bucket = 3 * max(sizes.values()) // 2
    groups = param_groups(model, bucket)
    assert [n for g in groups for n, _ in g] == list(sizes)
    for g in groups:
        assert len(g) == 1 or sum(sizes[n] for n, _ in g) <= bucket
    assert len(param_groups(model, 1)) == len(sizes)
    assert np.isclose(sum(sizes.values()), sum(sizes[n] for g in groups for n, _ in g))


@pytest.mark.parametrize("chunk_tokens", [0, 7])
def test_packed_records_give_the_padded_log_probs_and_gradients(model, record, chunk_tokens):
    """Records of different lengths back to back in one row (positions restarting per record)
    score exactly as when padded, with the same gradients: attention stays within each record."""
    records = [
        record([5, 6, 7, 8], [9, 10, 11], [-1.0, -2.0, -3.0]),
        record([5, 6], [12, 13, 14, 15, 16], None),
        record([7], [8], [-0.5]),
    ]
    padded = collate(records, pad_id=0, max_length=16)
    packed = collate(records, pad_id=0, max_length=16, pack=True)
    assert packed.packed_input_ids.shape == (1, 4 + 3 + 2 + 5 + 1 + 1)
    assert packed.packed_position_ids[0].tolist() == [*range(7), *range(7), 0, 1]
    grads = []
    for batch in (padded, packed):
        model.zero_grad()
        logprobs = live_logprobs(model, batch, chunk_tokens)
        (logprobs * batch.mask).sum().backward()
        grads.append(model.model.layers[0].self_attn.q_proj.weight.grad.clone())
        if batch is padded:
            want = logprobs.detach()
    torch.testing.assert_close(logprobs.detach(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    assert (logprobs.detach()[~batch.mask] == 0).all()


def test_length_order_pads_less_and_leaves_the_token_mean_gradient_unchanged(model, record):
    """Micro-batches of records sorted by length: fewer padded positions, and under token_mean
    the optimizer batch's gradient is the same as for any other grouping."""
    lengths = [3, 12, 4, 11, 2, 13, 5, 10]
    records = [record([5, 6], list(range(8, 8 + n)), [-1.0] * n) for n in lengths]
    objective = Objective("dft")

    def padded_and_gradient(order: list) -> tuple[int, torch.Tensor]:
        model.zero_grad()
        total = sum(len(r.response_token_ids) for r in order)
        padded = 0
        for micro in micro_batches(order, 2):
            batch = collate(micro, pad_id=0, max_length=32)
            padded += batch.input_ids.numel()
            out = forward_objective(model, batch, objective)
            (out.loss * out.response_tokens / total).backward()
        return padded, model.model.layers[0].mlp.up_proj.weight.grad.clone()

    given, given_grad = padded_and_gradient(records)
    ordered = by_length(records)
    assert [len(r.response_token_ids) for r in ordered] == sorted(lengths)
    fewer, ordered_grad = padded_and_gradient(ordered)
    assert fewer < 0.75 * given
    torch.testing.assert_close(ordered_grad, given_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("reduction", ["token_mean", "sequence_mean"])
def test_dropped_expert_rows_leave_the_gradient_of_the_rows_that_train(
    model, record, reduction
) -> None:
    """expert_rows=drop: a batch with expert rows, counted as the learner group counts it
    (only rows the objective trains), has the gradient of its sampled rows alone."""
    from mtg_ray.learner.batch import response_tokens
    from mtg_ray.learner.rank import reduced_loss

    sampled = [record([5, 6], [8, 9, 10], [-1.0] * 3), record([5], [11, 12], [-2.0] * 2)]
    expert = [record([5, 6], [13, 14, 15, 16], None), record([7], [17], None)]

    def gradient(records: list, objective: Objective) -> torch.Tensor:
        model.zero_grad()
        trained = [r for r in records if objective.trains(r.source)]
        tokens = response_tokens(trained, 32)
        for micro in micro_batches(records, 2):
            out = forward_objective(model, collate(micro, pad_id=0, max_length=32), objective)
            reduced_loss(out, reduction, 1, 1, tokens, len(trained)).backward()
        return model.model.layers[0].mlp.up_proj.weight.grad.clone()

    alone = gradient(sampled, Objective("dft"))
    dropped = gradient(
        [sampled[0], expert[0], expert[1], sampled[1]], Objective("dft", expert_rows="drop")
    )
    torch.testing.assert_close(dropped, alone, rtol=1e-5, atol=1e-8)
    kept = gradient([sampled[0], expert[0], expert[1], sampled[1]], Objective("dft"))
    assert not torch.allclose(kept, alone, rtol=1e-3)
