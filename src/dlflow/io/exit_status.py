"""The exit status a run asks for when it ends well: a Kedro dataset that records it, ``dlflow.cli`` exits with it.

A batch-inference run whose batch raised the monitoring alert still finishes
(its predictions are written, its metrics logged), then ends with a status of
its own (``monitoring.alert_exit_code``, 3 by default), so a cron job or a
scheduler can tell "ran, and drift was detected" from "ran, all well" (0) and
from "failed" (1). Errors keep Kedro's own way out.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset

_requested: dict[str, int] = {}


def requested_exit_status() -> int:
    """The status the finished run asked for: the largest that any dataset of this kind recorded, else 0."""
    return max(_requested.values(), default=0)


def forget_requests() -> None:
    _requested.clear()


class ExitStatusDataset(AbstractDataset[int, int]):
    """Save an int: the run's exit status, should it end well (0: as usual). Named per catalog entry."""

    def __init__(self, *, name: str = "run", metadata: dict[str, Any] | None = None) -> None:
        self._name, self.metadata = name, metadata

    def save(self, data: int) -> None:
        if not isinstance(data, int) or isinstance(data, bool) or not 0 <= data <= 125:
            raise ValueError(f"an exit status is an int 0-125, got {data!r}")
        _requested[self._name] = data

    def load(self) -> int:
        return _requested.get(self._name, 0)

    def _describe(self) -> dict[str, Any]:
        return {"name": self._name}
