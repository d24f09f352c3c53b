"""Search spaces over dotted parameter names: sample a trial's values, lay them over the family's parameters.

Pure Python (no Optuna at import, nothing of ``dlflow``): ``dlflow.tuning.checks`` uses
``overlay`` to check a space against the family's own validation before any work starts.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import optuna


class Dimension(Protocol):
    """What this module reads of a dimension: ``dlflow.config.SearchDimension`` is one (not imported:
    the parameters and the search do not import each other)."""

    @property
    def type(self) -> str: ...
    @property
    def low(self) -> float | None: ...
    @property
    def high(self) -> float | None: ...
    @property
    def log(self) -> bool: ...
    @property
    def step(self) -> float | None: ...
    @property
    def choices(self) -> list[Any] | None: ...
    def contains(self, value: Any) -> bool: ...


def overlay(params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``params`` with each dotted key of ``values`` set (``{"training.lr": 0.01}``)."""
    merged = copy.deepcopy(params)
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = merged
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return merged


def suggest(trial: optuna.Trial, space: dict[str, Dimension]) -> dict[str, Any]:
    """The trial's value for every dimension of ``space``, keyed by the dotted name."""
    values: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "categorical":
            values[name] = trial.suggest_categorical(name, dim.choices)
        elif dim.type == "int":
            values[name] = trial.suggest_int(name, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
        else:
            values[name] = trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)
    return values


def configured_values(space: dict[str, Dimension], params: dict[str, Any]) -> dict[str, Any]:
    """The family's configured value of each dimension that has one inside the dimension's range."""
    found: dict[str, Any] = {}
    for dotted, dimension in space.items():
        node: Any = params
        for name in dotted.split("."):
            node = node.get(name, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING and dimension.contains(node):
            found[dotted] = node
    return found


_MISSING = object()


def kedro_params(family: str, values: dict[str, Any]) -> str:
    """The ``--params`` string that reproduces ``values`` in ``kedro run --pipeline <family>``."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if value is None:
            return "null"
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(text(item) for item in value) + "]"
        return repr(value) if isinstance(value, float) else str(value)

    return ",".join(f"{family}.{name}={text(value)}" for name, value in sorted(values.items()))
