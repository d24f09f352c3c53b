"""``ParameterValidationHook``: every parameter block is checked before any work starts.

Blocks are checked by ``dlflow.config`` once the Kedro context exists; the tuning
search spaces, which read the families' parameters and the CNN constructors, by
``dlflow.tuning.checks`` before a tuning pipeline runs (before MLflow starts a run).
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from dlflow.config import validate_parameters
from dlflow.tuning.checks import validate_search_spaces


class ParameterValidationHook:
    """Fails fast, before any data is touched, when a parameter block is invalid: every block once the
    context exists, and the tuning search spaces before a tuning pipeline runs (before MLflow starts a run)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params
        validate_parameters(context.params)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, pipeline) -> None:
        if any(node.name.startswith("tune_") for node in pipeline.nodes):
            validate_search_spaces(self._params)
