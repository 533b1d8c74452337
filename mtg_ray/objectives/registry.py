"""Objectives by name: a new loss is one registered function and its test."""

from collections.abc import Callable
from typing import Any

Objective = Callable[..., Any]
_OBJECTIVES: dict[str, Objective] = {}


def register_objective(name: str) -> Callable[[Objective], Objective]:
    def wrap(fn: Objective) -> Objective:
        if name in _OBJECTIVES:
            raise ValueError(f"objective {name!r} is already registered")
        _OBJECTIVES[name] = fn
        return fn

    return wrap


def get_objective(name: str) -> Objective:
    try:
        return _OBJECTIVES[name]
    except KeyError:
        raise KeyError(f"unknown objective {name!r}; known: {sorted(_OBJECTIVES)}") from None


def list_objectives() -> list[str]:
    return sorted(_OBJECTIVES)
