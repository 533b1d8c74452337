"""Resuming a learner checkpoint on another rank count: its layout, and the conversions.

DeepSpeed saves ZeRO state partitioned over the W data-parallel ranks that trained, and only
W ranks can load it; ZeRO stage 0 (what one rank runs: `LearnerConfig.effective_zero_stage`)
saves one copy of everything, which any rank count loads. A checkpoint whose layout the group
cannot load as saved is converted once, into a folder beside its tag folder, and loaded from
there (`resume_route` says which):

- `<tag>.universal`, for ZeRO ranks: DeepSpeed's universal checkpoint (full fp32 weights and
  Adam moments per parameter), made by DeepSpeed's converter (`ds_to_universal`) from a ZeRO
  save or by `universal_from_replicated` from a one-copy save; the ranks load it with
  DeepSpeed's `checkpoint.load_universal`.
- `<tag>.replicated`, for one-copy ranks: DeepSpeed 0.19.8 has no universal loader without
  ZeRO (its engine finds no `mp_rank_*` file in a ZeRO-3 conversion, and its universal path
  calls `update_lp_params`, which a plain torch optimizer lacks), so `replicated_from_universal`
  writes the stage-0 checkpoint DeepSpeed's ordinary load reads: the fp32 weights, the AdamW
  state with its step, the lr schedule, the step counters and the client state.

Each conversion is built in a temporary folder and renamed into place (`build_once`), so a
crash mid-way leaves nothing a rerun trusts: the rerun removes the leftover and starts over.
"""

import argparse
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

NATIVE = "native"  # load the tag folder as saved
UNIVERSAL = "universal"
REPLICATED = "replicated"
# The model-states file of a one-copy or ZeRO-1/2 save, and of a ZeRO-3 save (rank 0's).
MODEL_STATES = "mp_rank_00_model_states.pt"
ZERO3_MODEL_STATES = "zero_pp_rank_0_mp_rank_00_model_states.pt"


@dataclass(frozen=True)
class Layout:
    """How a learner's training state is split: over `world_size` data-parallel ranks at ZeRO
    `zero_stage` (0: every rank holds all of it, so the rank count does not matter)."""

    world_size: int
    zero_stage: int

    @property
    def replicated(self) -> bool:
        return self.zero_stage == 0


def saved_layout(tag_dir: str | Path) -> Layout:
    """The layout a DeepSpeed checkpoint was saved with, from the files DeepSpeed writes: its
    model-states file records the data-parallel world size and the config (read through a
    memory map: a stage-0 file also holds the weights, which are not read)."""
    tag_dir = Path(tag_dir)
    for name in (MODEL_STATES, ZERO3_MODEL_STATES):
        if (tag_dir / name).is_file():
            states = torch.load(tag_dir / name, map_location="cpu", mmap=True, weights_only=False)
            stage = states["ds_config"].get("zero_optimization", {}).get("stage", 0)
            return Layout(int(states["dp_world_size"]), int(stage))
    raise FileNotFoundError(
        f"{tag_dir}: no DeepSpeed model states ({MODEL_STATES} or {ZERO3_MODEL_STATES})"
    )


def resume_route(saved: Layout, current: Layout) -> str:
    """NATIVE when `current` ranks load the checkpoint as saved (the same layout, or one copy
    on both sides); REPLICATED to gather a ZeRO save into one copy; UNIVERSAL to re-partition a
    ZeRO or one-copy save over `current`'s ZeRO ranks. A change of ZeRO stage between two ZeRO
    layouts is refused: DeepSpeed's universal files differ by stage (ZeRO-3's keep Adam's step
    outside the parameters' folders, where a ZeRO-1/2 load does not look)."""
    if saved == current or (saved.replicated and current.replicated):
        return NATIVE
    if current.replicated:
        return REPLICATED
    if saved.replicated or saved.zero_stage == current.zero_stage:
        return UNIVERSAL
    raise ValueError(
        f"the checkpoint was saved at ZeRO stage {saved.zero_stage} on {saved.world_size} ranks "
        f"and this learner runs stage {current.zero_stage}: resume with "
        f"learner.zero_stage={saved.zero_stage} (any learner.num_workers > 1)"
    )


def converted_tag(tag: str, route: str) -> str:
    """The folder, beside `tag`'s, that `route` loads from (`tag` itself when NATIVE)."""
    return tag if route == NATIVE else f"{tag}.{route}"


def convert(
    ckpt_dir: str | Path, tag: str, saved: Layout, route: str, module: nn.Module,
    optimizer: Any, world_size: int,
) -> str:  # fmt: skip
    """Make `route`'s folder for `ckpt_dir/tag` unless it exists (one process: rank 0) and
    return its tag. `module` and `optimizer` are the loading rank's (names, order and, for
    REPLICATED, the dtype and the torch optimizer the result must fit)."""
    ckpt_dir = Path(ckpt_dir)
    tag_dir = ckpt_dir / tag
    names = [name for name, _ in module.named_parameters()]
    universal = ckpt_dir / converted_tag(tag, UNIVERSAL)
    if route == UNIVERSAL or (
        route == REPLICATED and not (ckpt_dir / converted_tag(tag, REPLICATED)).is_dir()
    ):
        if saved.replicated:
            build_once(universal, lambda out: universal_from_replicated(tag_dir, names, out))
        else:
            build_once(universal, lambda out: ds_to_universal(tag_dir, out))
    if route == REPLICATED:
        build_once(
            ckpt_dir / converted_tag(tag, REPLICATED),
            lambda out: replicated_from_universal(universal, module, optimizer, world_size, out),
        )
    return converted_tag(tag, route)


def build_once(final: Path, build: Callable[[Path], None]) -> None:
    """`build(path)` into a temporary folder beside `final`, then rename it to `final`; nothing
    when `final` exists. A leftover of an interrupted build is removed first."""
    if final.is_dir():
        return
    work = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    build(work / final.name)  # inside `work`: ds_to_universal writes `latest_universal` beside it
    os.replace(work / final.name, final)
    shutil.rmtree(work, ignore_errors=True)


def ds_to_universal(tag_dir: Path, out: Path) -> None:
    """DeepSpeed's converter (`python -m deepspeed.checkpoint.ds_to_universal`), in process and
    serially (its worker pools would fork a rank's process)."""
    from deepspeed.checkpoint import ds_to_universal as converter

    args = dict(input_folder=str(tag_dir), output_folder=str(out), keep_temp_folder=False)
    workers = dict(num_extract_workers=1, num_merge_workers=1)
    converter.main(argparse.Namespace(**args, **workers, strict=True, inject_missing_state=True))


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)


def _save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)


def _param(path: Path) -> Tensor:
    """A universal per-parameter file's tensor (ZeRO-3's converter stores it bare, flat)."""
    obj = _load(path)
    return obj["param"] if isinstance(obj, dict) else obj


def _plain_optimizer_state(sd: Any, where: str) -> dict[str, Any]:
    """`sd` if it is a torch optimizer's state dict; one line saying what to do otherwise (in
    bf16/fp16 DeepSpeed wraps a one-rank optimizer and keeps the fp32 weights in the wrapper)."""
    if not (isinstance(sd, dict) and "state" in sd and "param_groups" in sd):
        raise ValueError(
            f"{where}: this one-rank checkpoint keeps its fp32 weights in DeepSpeed's bf16/fp16 "
            "optimizer wrapper, which this conversion does not read: resume it on one rank (a "
            "one-rank run that is to move to ZeRO ranks later: learner.dtype=float32)"
        )
    return sd


def universal_from_replicated(tag_dir: Path, names: Sequence[str], out: Path) -> None:
    """Write a one-copy (ZeRO stage 0) save of a plain torch AdamW as a universal checkpoint at
    `out`. `names`: the model's parameter names in `named_parameters` order, which is the
    optimizer's (`LearnerRank` builds it from `model.parameters()`). Every parameter gets its
    fp32 weight, moments (zeros where the optimizer holds none: never trained) and step; the
    common state (lr schedule, step counters, client state) goes to the model-states files a
    ZeRO-3 and a ZeRO-1/2 universal load each read."""
    saved = _load(tag_dir / MODEL_STATES)
    optim = _plain_optimizer_state(saved["optimizer"], str(tag_dir))
    order = [i for group in optim["param_groups"] for i in group["params"]]
    if len(order) != len(names):
        raise ValueError(
            f"{tag_dir}: the optimizer holds {len(order)} parameters, the model {len(names)}"
        )
    steps = [s["step"] for s in optim["state"].values() if "step" in s]
    step = torch.as_tensor(steps[0] if steps else 0, dtype=torch.float32)
    zero = out / "zero"
    for index, name in zip(order, names, strict=True):
        weight = saved["module"][name].float()
        state = optim["state"].get(index, {})
        _save({"param": weight}, zero / name / "fp32.pt")
        for key in ("exp_avg", "exp_avg_sq"):
            moment = state.get(key, torch.zeros_like(weight)).float()
            _save({"param": moment}, zero / name / f"{key}.pt")
        _save(step.clone(), zero / name / "step.pt")
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optim["param_groups"]]
    _save(
        {
            "optimizer_state_dict": {"state": {0: {"step": step}}, "param_groups": groups},
            "param_groups": groups,
            "ds_version": saved["ds_version"],
        },
        zero / "optimizer_state.pt",
    )
    common = {k: v for k, v in saved.items() if k not in ("module", "optimizer")}
    _save(common, out / MODEL_STATES)
    _save(common, out / ZERO3_MODEL_STATES)


def replicated_from_universal(
    universal: Path, module: nn.Module, optimizer: Any, world_size: int, out: Path
) -> None:
    """Write the universal checkpoint at `universal` as a ZeRO stage-0 checkpoint at `out` for
    `module` (unpartitioned: one copy) and `optimizer` (a plain torch optimizer over its
    parameters): weights in the module's dtype under every state-dict key (tied ones too),
    the optimizer's state dict with the saved moments, step and hyperparameters, and the
    universal checkpoint's common state (lr schedule, step counters, client state)."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"resuming {universal.name} without ZeRO: DeepSpeed wrapped this rank's optimizer "
            f"({type(optimizer).__name__}, for bf16/fp16), whose state this conversion does not "
            "write: resume on >= 2 ZeRO ranks, or here with learner.dtype=float32"
        )
    zero = universal / "zero"
    states_file = next(
        (universal / n for n in (MODEL_STATES, ZERO3_MODEL_STATES) if (universal / n).is_file()),
        None,
    )
    if states_file is None:
        raise FileNotFoundError(f"{universal}: no model states")
    common = _load(states_file)
    global_state = _load(zero / "optimizer_state.pt")
    name_of = {id(param): name for name, param in module.named_parameters()}
    fp32 = {name: _param(zero / name / "fp32.pt") for name in name_of.values()}

    weights = {}
    for key, value in module.state_dict(keep_vars=True).items():
        if isinstance(value, nn.Parameter):
            weights[key] = fp32[name_of[id(value)]].reshape(value.shape).to(value.dtype)
        else:  # a buffer: not trained, as the module has it
            weights[key] = value.detach().clone()

    params = [p for group in optimizer.param_groups for p in group["params"]]
    if any(id(p) not in name_of for p in params):
        raise ValueError(f"{universal}: the optimizer is not over the module's parameters")
    step = _universal_step(zero, [name_of[id(p)] for p in params], global_state)
    state: dict[int, dict[str, Tensor]] = {}
    for index, param in enumerate(params):  # how torch numbers a state dict's parameters
        folder = zero / name_of[id(param)]
        if (folder / "exp_avg.pt").is_file():
            state[index] = {
                "step": step.clone(),
                **{
                    key: _param(folder / f"{key}.pt").reshape(param.shape).float()
                    for key in ("exp_avg", "exp_avg_sq")
                },
            }
    saved_groups = global_state["param_groups"]
    live_groups = optimizer.state_dict()["param_groups"]
    if len(saved_groups) not in (1, len(live_groups)):
        raise ValueError(
            f"{universal}: {len(saved_groups)} saved optimizer param groups for {len(live_groups)}"
        )
    groups = [
        {**live, **{k: v for k, v in saved_groups[min(i, len(saved_groups) - 1)].items()
                    if k != "params"}}
        for i, live in enumerate(live_groups)
    ]  # fmt: skip
    _save(
        {
            **{k: v for k, v in common.items() if k not in ("module", "optimizer")},
            "module": weights,
            "optimizer": {"state": state, "param_groups": groups},
            "dp_world_size": world_size,
        },
        out / MODEL_STATES,
    )


def _universal_step(zero: Path, names: Sequence[str], global_state: dict[str, Any]) -> Tensor:
    """Adam's step in a universal checkpoint: in each parameter's `step.pt` (ZeRO-1/2), else in
    the optimizer's common state (ZeRO-3's converter keeps it there only)."""
    for name in names:
        if (zero / name / "step.pt").is_file():
            return torch.as_tensor(_load(zero / name / "step.pt"), dtype=torch.float32)
    return torch.as_tensor(
        global_state["optimizer_state_dict"]["state"][0]["step"], dtype=torch.float32
    )
