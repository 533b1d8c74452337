"""Each objective against a float64 loop reference, gradients included."""

import itertools
import math

import pytest
import torch

from mtg_ray.objectives import (
    Objective,
    ObjectiveConfig,
    compute_objective,
    list_objectives,
    normalizer_terms,
)


def reference_loss(logp, mask, behav, has, objective: Objective, standin=None) -> torch.Tensor:
    """Straight from the formulas, one record and one token at a time."""
    name, cfg = objective.name, objective.config
    bound = cfg.log_ratio_bound
    importance = name in ("is", "is_dft")
    expert_dft = name == "dft" or (importance and (cfg.expert_weight == "dft" or name == "is_dft"))
    raw = {}
    for b in range(logp.shape[0]):
        toks = [t for t in range(logp.shape[1]) if mask[b, t]]
        use_is = importance and bool(has[b])
        if use_is and cfg.is_level == "sequence":
            lr = [min(max(float(logp[b, t].detach() - behav[b, t]), -bound), bound) for t in toks]
            w_seq = math.exp(sum(lr) / len(lr)) if lr else 1.0
        for t in toks:
            if use_is and cfg.is_level == "token":
                w = math.exp(min(max(float(logp[b, t].detach() - behav[b, t]), -bound), bound))
            elif use_is:
                w = w_seq
            elif expert_dft or name == "dft":
                w = math.exp(float(logp[b, t].detach()))
            else:
                w = 1.0
            raw[b, t] = (w, use_is)
    # self-normalised by the mean untruncated weight, then truncated
    is_ws = [w for w, use_is in raw.values() if use_is]
    mean = sum(is_ws) / len(is_ws) if cfg.self_normalize and is_ws else 1.0
    weights = {
        k: min(max(w / mean, cfg.is_clip_low), cfg.is_clip) if u else w for k, (w, u) in raw.items()
    }
    for b, t in weights:  # expert rows as objective.expert_rows says
        if has[b] or objective.expert_rows == "keep":
            continue
        p = float(logp[b, t].detach())
        weights[b, t] = {
            "dft": math.exp(p),
            "ratio": min(cfg.is_clip, math.exp(p - float(standin[b, t])))
            if standin is not None
            else None,
            "drop": 0.0,
        }[objective.expert_rows]
    total = sum(-w * logp[b, t] for (b, t), w in weights.items())
    return total / max(len(weights), 1)


def random_batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(4, 6, generator=g, dtype=torch.float64) * 3).requires_grad_()
    behav = -torch.rand(4, 6, generator=g, dtype=torch.float64) * 3
    mask = torch.rand(4, 6, generator=g) > 0.3
    mask[:, 0] = True
    has = torch.tensor([True, False, True, True])
    return logp, mask, behav, has


CONFIGS = [
    Objective(name, ObjectiveConfig(is_level=level, self_normalize=norm, expert_weight=expert))
    for name in ("sft", "dft")
    for level, norm, expert in [("token", False, "one")]
] + [
    Objective(name, ObjectiveConfig(is_level=level, self_normalize=norm, expert_weight=expert))
    for name, level, norm, expert in itertools.product(
        ("is", "is_dft"), ("token", "sequence"), (False, True), ("one", "dft")
    )
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_float64_reference(cfg: Objective, seed: int) -> None:
    logp, mask, behav, has = random_batch(seed)
    out = compute_objective(cfg, logp, mask, behav, has)
    (grad,) = torch.autograd.grad(out.loss, logp)
    ref = reference_loss(logp, mask, behav, has, cfg)
    (ref_grad,) = torch.autograd.grad(ref, logp)
    torch.testing.assert_close(out.loss, ref, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(grad, ref_grad, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("name", ["sft", "dft", "is", "is_dft"])
@pytest.mark.parametrize("rows", ["keep", "dft", "ratio", "drop"])
def test_expert_rows_are_weighed_as_asked_and_sampled_rows_are_not(name: str, rows: str) -> None:
    objective = Objective(name, ObjectiveConfig(is_clip=1.5), expert_rows=rows)
    logp, mask, behav, has = random_batch(6)
    standin = -3 * torch.rand(4, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    out = compute_objective(objective, logp, mask, behav, has, None, standin, ~has)
    (grad,) = torch.autograd.grad(out.loss, logp)
    ref = reference_loss(logp, mask, behav, has, objective, standin)
    (ref_grad,) = torch.autograd.grad(ref, logp)
    torch.testing.assert_close(out.loss, ref, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(grad, ref_grad, atol=1e-10, rtol=1e-8)
    own = compute_objective(Objective(name, ObjectiveConfig(is_clip=1.5)), logp, mask, behav, has)
    sampled = has.unsqueeze(1) & mask
    assert torch.equal(out.token_weights[sampled], own.token_weights[sampled])
    if rows == "drop":
        assert torch.all(out.token_loss[~has] == 0)
    expert = ~has.unsqueeze(1) & mask
    truncated = expert & (logp.detach() - standin > math.log(1.5))
    assert bool(truncated.any())  # the batch exercises the clip
    clipped = own.clipped | truncated if rows == "ratio" else own.clipped
    assert torch.equal(out.clipped, clipped)  # train/clipped_fraction counts the clip's binds
    if rows == "ratio":  # an expert row without stand-in log-probs is refused
        with pytest.raises(ValueError, match="stand-in"):
            compute_objective(objective, logp, mask, behav, has, None, standin, has)


@pytest.mark.parametrize("cfg", CONFIGS[:2] + CONFIGS[2::3], ids=str)
def test_gradcheck_with_weights_held_fixed(cfg: Objective) -> None:
    """The weights are stop-gradient, so the objective's gradient must be that of
    -mean(w * logp) with w frozen at the evaluation point: check it numerically."""
    from mtg_ray.objectives.losses import weighted_nll

    logp, mask, behav, has = random_batch(3)
    out = compute_objective(cfg, logp, mask, behav, has)
    (grad,) = torch.autograd.grad(out.loss, logp)
    frozen = lambda x: weighted_nll(x, out.token_weights, mask)  # noqa: E731
    assert torch.autograd.gradcheck(frozen, (logp.detach().requires_grad_(),))
    (frozen_grad,) = torch.autograd.grad(frozen(logp), logp)
    torch.testing.assert_close(grad, frozen_grad)
    torch.testing.assert_close(out.loss, frozen(logp))


@pytest.mark.parametrize("name", ["sft", "dft", "is", "is_dft"])
def test_padding_changes_nothing(name: str) -> None:
    cfg = Objective(name)
    logp, mask, behav, has = random_batch(4)
    out = compute_objective(cfg, logp, mask, behav, has)
    (grad,) = torch.autograd.grad(out.loss, logp)
    garbage = torch.full((4, 3), float("-inf"), dtype=torch.float64)
    padded = torch.cat([logp.detach(), garbage], 1).requires_grad_()
    pmask = torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], 1)
    pbehav = torch.cat([behav, torch.full((4, 3), float("nan"), dtype=torch.float64)], 1)
    pout = compute_objective(cfg, padded, pmask, pbehav, has)
    (pgrad,) = torch.autograd.grad(pout.loss, padded)
    torch.testing.assert_close(pout.loss, out.loss)
    torch.testing.assert_close(pgrad[:, :6], grad)
    assert torch.all(pgrad[:, 6:] == 0)


@pytest.mark.parametrize("name", ["sft", "dft", "is", "is_dft"])
def test_empty_mask_is_a_finite_zero_with_a_graph(name: str) -> None:
    logp, _, behav, has = random_batch(5)
    out = compute_objective(Objective(name), logp, torch.zeros(4, 6, dtype=torch.bool), behav, has)
    assert out.loss.item() == 0.0 and out.loss.grad_fn is not None
    (grad,) = torch.autograd.grad(out.loss, logp)
    assert torch.all(grad == 0)


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("diff", [1e4, -1e4])
@pytest.mark.parametrize("norm", [False, True])
def test_extreme_log_ratios_stay_finite(level: str, diff: float, norm: bool) -> None:
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    behav = logp.detach() - diff
    cfg = Objective("is", ObjectiveConfig(is_level=level, self_normalize=norm))
    out = compute_objective(
        cfg, logp, torch.ones(2, 3, dtype=torch.bool), behav, torch.tensor([True, True])
    )
    (grad,) = torch.autograd.grad(out.loss, logp)
    assert torch.isfinite(out.loss) and torch.all(torch.isfinite(grad))
    if norm:  # equal ratios normalise to 1 before truncation: nothing to clip
        assert not out.clipped.any() and torch.allclose(out.token_weights, torch.ones(2, 3))
    else:
        assert out.clipped.all() if diff > 0 else not out.clipped.any()


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_self_normalisation_spans_the_optimizer_batch(level: str) -> None:
    """Cut into micro-batches that share the batch's constant, the weights are the whole
    batch's; normalised before truncation, none exceeds the cap."""
    logp, mask, behav, has = random_batch(3)
    objective = Objective("is", ObjectiveConfig(is_level=level, self_normalize=True, is_clip=1.5))
    whole = compute_objective(objective, logp, mask, behav, has).token_weights
    halves = [slice(0, 2), slice(2, 4)]
    terms = [normalizer_terms(logp[h], behav[h], mask[h], has[h], objective.config) for h in halves]
    constant = sum(t for t, _ in terms) / sum(c for _, c in terms)
    parts = [
        compute_objective(objective, logp[h], mask[h], behav[h], has[h], constant).token_weights
        for h in halves
    ]
    torch.testing.assert_close(torch.cat(parts), whole)
    assert whole.max() <= 1.5
    alone = compute_objective(objective, logp[:2], mask[:2], behav[:2], has[:2]).token_weights
    assert not torch.allclose(alone, whole[:2])  # its own constant differs from the batch's


def test_sequence_weight_is_the_geometric_mean_and_clip_is_reported() -> None:
    logp = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]], requires_grad=True)
    behav = torch.tensor([[-1.5, -1.0, -1.1], [-3.0, -2.0, -1.0]])  # log-ratios .5 0 .1 | 2 1 0
    cfg = Objective("is", ObjectiveConfig(is_level="sequence", is_clip=2.0))
    out = compute_objective(
        cfg, logp, torch.ones(2, 3, dtype=torch.bool), behav, torch.tensor([True, True])
    )
    torch.testing.assert_close(out.token_weights[0], torch.full((3,), math.exp(0.2)))
    torch.testing.assert_close(out.token_weights[1], torch.full((3,), 2.0))  # exp(1) clipped to 2
    assert out.clipped.tolist() == [[False] * 3, [True] * 3]


def test_registry_and_config_validation() -> None:
    from mtg_ray.objectives import get_objective, register_objective

    assert list_objectives() == ["sft", "dft", "is", "is_dft"]
    with pytest.raises(KeyError, match="known: .*sft"):
        get_objective("ppo")
    with pytest.raises(ValueError, match="already registered"):
        register_objective("sft")(lambda *a: None)
    with pytest.raises(ValueError, match="unknown objective 'ppo'"):
        Objective("ppo")
    for bad in [
        dict(is_level="word"),
        dict(expert_weight="two"),
        dict(is_clip=1.0, is_clip_low=1.0),
        dict(log_ratio_bound=0.0),
    ]:
        with pytest.raises(ValueError, match="objective"):
            ObjectiveConfig(**bad)


@pytest.mark.parametrize("name", ["sft", "dft", "is", "is_dft"])
def test_each_objective_trains(name: str) -> None:
    """A linear softmax policy fitted to fixed targets: the NLL of the targets goes down."""
    torch.manual_seed(0)
    x = torch.randn(8, 5, 4)
    targets = torch.randint(0, 6, (8, 5))
    model = torch.nn.Linear(4, 6)
    with torch.no_grad():
        behav = torch.log_softmax(model(x), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1) - 0.3
    has = torch.tensor([True, False] * 4)
    mask = torch.ones(8, 5, dtype=torch.bool)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def nll() -> float:
        lp = torch.log_softmax(model(x), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return -lp.mean().item()

    before = nll()
    for _ in range(30):
        lp = torch.log_softmax(model(x), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        loss = compute_objective(Objective(name), lp, mask, behav, has).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert nll() < before - 0.1
