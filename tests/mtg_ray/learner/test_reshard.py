"""Resuming on another rank count without DeepSpeed ranks: reading a checkpoint's layout,
choosing the route, the one-copy <-> universal conversions (plain torch) and their atomicity.
Real ranks: `test_a_zero3_checkpoint_resumes_on_another_rank_count` (tests/jobs)."""

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from mtg_ray.learner.reshard import (
    MODEL_STATES,
    NATIVE,
    REPLICATED,
    UNIVERSAL,
    ZERO3_MODEL_STATES,
    Layout,
    build_once,
    converted_tag,
    replicated_from_universal,
    resume_route,
    saved_layout,
    universal_from_replicated,
)
from mtg_ray.learner.rng import resume_seed


def model_states(world: int, stage: int, **extra: Any) -> dict[str, Any]:
    """What DeepSpeed's model-states file records of a save's layout (and `extra`)."""
    ds_config = {"train_batch_size": 8, "zero_optimization": {"stage": stage}}
    return {"dp_world_size": world, "ds_config": ds_config, "ds_version": "0.19.8", **extra}


def test_the_saved_layout_is_read_from_deepspeeds_own_files(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    torch.save(model_states(1, 0), tmp_path / "one" / MODEL_STATES)
    (tmp_path / "z3").mkdir()
    for rank in range(8):  # ZeRO-3: one model-states file per rank, no mp_rank_00 one
        name = ZERO3_MODEL_STATES.replace("rank_0_", f"rank_{rank}_")
        torch.save(model_states(8, 3), tmp_path / "z3" / name)
    assert saved_layout(tmp_path / "one") == Layout(1, 0)
    assert saved_layout(tmp_path / "z3") == Layout(8, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no DeepSpeed model states"):
        saved_layout(tmp_path / "empty")


@pytest.mark.parametrize(
    ("saved", "current", "route"),
    [
        (Layout(8, 3), Layout(8, 3), NATIVE),
        (Layout(2, 0), Layout(1, 0), NATIVE),  # one copy loads on any rank count
        (Layout(8, 3), Layout(16, 3), UNIVERSAL),  # 1x8 -> 2x8
        (Layout(2, 3), Layout(1, 0), REPLICATED),  # one rank runs stage 0
        (Layout(2, 2), Layout(1, 0), REPLICATED),
        (Layout(1, 0), Layout(2, 3), UNIVERSAL),
        (Layout(1, 0), Layout(2, 2), UNIVERSAL),
    ],
)
def test_the_route_follows_the_two_layouts(saved: Layout, current: Layout, route: str) -> None:
    assert resume_route(saved, current) == route
    assert converted_tag("global_step4", route) == (
        "global_step4" if route == NATIVE else f"global_step4.{route}"
    )


def test_a_change_between_zero_stages_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"stage 3 on 8 ranks.*learner.zero_stage=3") as err:
        resume_route(Layout(8, 3), Layout(16, 2))
    assert "\n" not in str(err.value)


def test_a_rank_without_saved_rng_gets_its_own_seed() -> None:
    seeds = {resume_seed(0, 5, rank) for rank in range(4)}
    assert len(seeds) == 4 and resume_seed(0, 5, 2) == resume_seed(0, 5, 2)
    assert resume_seed(0, 6, 2) != resume_seed(0, 5, 2) != resume_seed(1, 5, 2)


class Tied(nn.Module):
    """Embedding, a layer, a head tied to the embedding, a buffer and a parameter no loss
    reaches (no Adam state)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.layer = nn.Linear(6, 6)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.embed.weight
        self.unused = nn.Parameter(torch.ones(3))
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.layer(self.embed(ids))) * self.scale)


def trained(seed: int, steps: int) -> tuple[Tied, torch.optim.AdamW, Any]:
    torch.manual_seed(seed)
    model = Tied()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    for _ in range(steps):
        step(model, opt, sched)
    return model, opt, sched


def step(model: Tied, opt: torch.optim.Optimizer, sched: Any) -> None:
    ids = torch.arange(8) % 11
    loss = nn.functional.cross_entropy(model(ids), (ids + 1) % 11)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_one_copy_crosses_the_universal_format_and_back_exactly(tmp_path: Path) -> None:
    """A one-rank save (module, plain AdamW, lr schedule, client state), written as universal
    and back as one copy into a fresh model: the next step is the uninterrupted one, bit for
    bit, and the tied head, the buffer and the schedule came along."""
    model, opt, sched = trained(0, steps=3)
    tag = tmp_path / "global_step3"
    tag.mkdir()
    state = dict(module=model.state_dict(), optimizer=opt.state_dict())
    extra = dict(lr_scheduler=sched.state_dict(), global_steps=3, mtg_ray={"cursor": 24})
    torch.save(model_states(1, 0, **state, **extra), tag / MODEL_STATES)
    names = [name for name, _ in model.named_parameters()]
    universal_from_replicated(tag, names, tmp_path / "u")
    assert (tmp_path / "u" / MODEL_STATES).is_file()
    assert (tmp_path / "u" / ZERO3_MODEL_STATES).is_file()
    assert sorted(p.name for p in (tmp_path / "u" / "zero" / "layer.weight").iterdir()) == [
        "exp_avg.pt", "exp_avg_sq.pt", "fp32.pt", "step.pt",
    ]  # fmt: skip

    fresh, fresh_opt, fresh_sched = trained(1, steps=0)
    replicated_from_universal(tmp_path / "u", fresh, fresh_opt, 1, tmp_path / "r")
    loaded = torch.load(tmp_path / "r" / MODEL_STATES, weights_only=False)
    assert loaded["mtg_ray"] == {"cursor": 24} and loaded["global_steps"] == 3
    fresh.load_state_dict(loaded["module"])
    fresh_opt.load_state_dict(loaded["optimizer"])
    fresh_sched.load_state_dict(loaded["lr_scheduler"])
    assert fresh.head.weight is fresh.embed.weight and fresh.scale.item() == 2.0
    step(model, opt, sched)
    step(fresh, fresh_opt, fresh_sched)
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 5)
    for (name, a), (_, b) in zip(model.named_parameters(), fresh.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_a_wrapped_one_rank_optimizer_is_refused_in_one_line(tmp_path: Path) -> None:
    """A one-rank bf16 save keeps its fp32 weights in DeepSpeed's fp16 optimizer wrapper: the
    conversion says what to do instead of dropping them."""
    model, opt, _ = trained(0, steps=1)
    tag = tmp_path / "t"
    tag.mkdir()
    wrapped = {"optimizer_state_dict": opt.state_dict(), "fp32_groups": [[]], "cur_scale": 1.0}
    torch.save(model_states(1, 0, module=model.state_dict(), optimizer=wrapped), tag / MODEL_STATES)
    with pytest.raises(ValueError, match="learner.dtype=float32") as err:
        universal_from_replicated(tag, [n for n, _ in model.named_parameters()], tmp_path / "u")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="learner.dtype=float32"):
        replicated_from_universal(tmp_path / "u", model, object(), 1, tmp_path / "r")


def test_a_conversion_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    final = tmp_path / "global_step2.universal"

    def crash(out: Path) -> None:
        (out / "zero").mkdir(parents=True)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        build_once(final, crash)
    assert not final.exists()  # only the leftover, which the next build removes
    built: list[Path] = []

    def build(out: Path) -> None:
        assert not out.exists()
        (out / "zero").mkdir(parents=True)
        built.append(out)

    build_once(final, build)
    build_once(final, build)  # there: not built again
    assert len(built) == 1 and (final / "zero").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == [final.name]
