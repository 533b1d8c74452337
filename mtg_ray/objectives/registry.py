"""Objectives by name: a new loss is one registered function and its test."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mtg_ray.objectives.config import ObjectiveConfig

ObjectiveFn = Callable[..., Any]
_OBJECTIVES: dict[str, ObjectiveFn] = {}
_IMPORTANCE: set[str] = set()  # objectives weighted by pi_theta / pi_behaviour


def register_objective(name: str, importance: bool = False) -> Callable[[ObjectiveFn], ObjectiveFn]:
    """Register `fn` as objective `name`; `importance`: it weighs by the true ratio (and so
    reads the batch's self-normalisation constant)."""

    def wrap(fn: ObjectiveFn) -> ObjectiveFn:
        if name in _OBJECTIVES:
            raise ValueError(f"objective {name!r} is already registered")
        _OBJECTIVES[name] = fn
        if importance:
            _IMPORTANCE.add(name)
        return fn

    return wrap


def get_objective(name: str) -> ObjectiveFn:
    try:
        return _OBJECTIVES[name]
    except KeyError:
        raise KeyError(f"unknown objective {name!r}; known: {list_objectives()}") from None


def list_objectives() -> list[str]:
    """Registered names, in registration order."""
    return list(_OBJECTIVES)


# How a run weighs its expert rows (`online.expert_rows`): keep (the objective's own weight),
# dft (the detached token probability), ratio (min(is_clip, pi_theta / b), b the record's
# stand-in behaviour log-probs), drop (weight 0, and out of the loss's token and record counts).
EXPERT_ROWS = ("keep", "dft", "ratio", "drop")


@dataclass(frozen=True)
class Objective:
    """A registered loss by name, with the settings it reads, and how it weighs expert rows
    (EXPERT_ROWS)."""

    name: str
    config: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    expert_rows: str = "keep"

    def __post_init__(self) -> None:
        if self.name not in _OBJECTIVES:
            raise ValueError(f"unknown objective {self.name!r}; known: {list_objectives()}")
        if self.expert_rows not in EXPERT_ROWS:
            raise ValueError(f"expert_rows must be one of {EXPERT_ROWS}, got {self.expert_rows!r}")

    def trains(self, source: str) -> bool:
        """Whether rows of `source` enter the loss (all but dropped expert rows)."""
        return not (self.expert_rows == "drop" and source == "expert")

    @property
    def self_normalizes(self) -> bool:
        """Its weights are divided by their mean over the optimizer batch."""
        return self.config.self_normalize and self.name in _IMPORTANCE
