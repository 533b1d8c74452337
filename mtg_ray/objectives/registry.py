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


@dataclass(frozen=True)
class Objective:
    """A registered loss by name, with the settings it reads."""

    name: str
    config: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    def __post_init__(self) -> None:
        if self.name not in _OBJECTIVES:
            raise ValueError(f"unknown objective {self.name!r}; known: {list_objectives()}")

    @property
    def self_normalizes(self) -> bool:
        """Its weights are divided by their mean over the optimizer batch."""
        return self.config.self_normalize and self.name in _IMPORTANCE
