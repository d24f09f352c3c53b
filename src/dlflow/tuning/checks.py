"""A tuning search space checked against its family's own parameters, before any trial runs.

``dlflow.config`` validates each block by itself (a ``SearchDimension`` is well formed);
this module checks that a space fits its family: every key names a tunable parameter
and every value it can draw is one the family's validation accepts.
"""

from __future__ import annotations

from typing import Any

from dlflow.config import SearchDimension, TuningParams, parse
from dlflow.tuning.space import overlay

#: The parameter blocks of a family that a trial may change: the rest is computed before the trials.
TUNABLE_BLOCKS = {"cnn": ("model", "training", "augmentation"), "rnn": ("model", "training", "adversarial")}


def validate_search_spaces(params: dict[str, Any]) -> None:
    """Each family's search space in ``params['tuning']`` against the family's own parameters.

    A CNN space over ``model.options`` reads the architecture's constructor, which imports
    torch: the project's hook runs this only before a tuning pipeline, not on every ``kedro`` command.
    """
    if params.get("tuning"):
        _check_tuning(parse("tuning", params["tuning"]), params)


def check_search_space(family: str, space: dict[str, SearchDimension], family_params: dict[str, Any]) -> None:
    """Refuse, naming the key, a dimension the family does not have or whose values its validation refuses.

    Keys are dotted names under the family's block; ``model.options.<name>`` (CNN) must
    be an argument of the configured architecture's constructor.
    """
    base = parse(family, family_params).model_dump()
    for key, dimension in space.items():
        where = f"tuning.{family}.space.{key}"
        block = key.split(".", 1)[0]
        if block not in TUNABLE_BLOCKS[family]:
            raise ValueError(
                f"{where}: {family}.{block} is not tunable (it is computed before the trials); "
                f"tunable blocks: {', '.join(TUNABLE_BLOCKS[family])}"
            )
        if not _has_key(base, key, family):
            raise ValueError(f"{where}: unknown parameter {family}.{key}")
        for value in dimension.values_to_check():
            try:
                parse(family, overlay(base, {key: value}))
            except ValueError as error:
                raise ValueError(f"{where}: {value!r} is refused by the {family} parameters: {error}") from None


def _check_tuning(tuning: TuningParams, params: dict[str, Any]) -> None:
    """Each family's search space against the family's own parameters (``check_search_space``)."""
    for family in TUNABLE_BLOCKS:
        study = getattr(tuning, family)
        if study is not None and family in params:
            try:
                check_search_space(family, study.space, params[family])
            except ValueError as error:
                raise ValueError(f"Invalid parameters in conf/*/parameters_tuning.yml: {error}") from None


def _has_key(params: dict[str, Any], key: str, family: str) -> bool:
    *parents, leaf = key.split(".")
    node: Any = params
    for name in parents:
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    if not isinstance(node, dict):
        return False
    if leaf in node:
        return True
    if family == "cnn" and parents == ["model", "options"]:
        import inspect

        from dlflow.models.cnn import ARCHITECTURES  # imports torch: only for a space over the options

        architecture = ARCHITECTURES.get(params["model"]["architecture"])
        return architecture is not None and leaf in inspect.signature(architecture).parameters
    return False
