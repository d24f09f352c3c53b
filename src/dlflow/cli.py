"""Project commands for the ``kedro`` CLI: ``kedro run`` with the project's default runner.

Kedro lets a project's ``cli.py`` override a built-in command. This one keeps
Kedro's ``run`` exactly as it is (every option, same code) and only changes
what ``--runner`` defaults to: ``dlflow.runner.SkipUnchangedRunner``, which
skips ingestion and preprocessing nodes whose outputs are current.
``kedro run --runner SequentialRunner`` (or ``--params cache.enabled=false``)
runs every node.
"""

from __future__ import annotations

import copy

import click
from kedro.framework.cli.project import run as kedro_run

DEFAULT_RUNNER = "dlflow.runner.SkipUnchangedRunner"


def _with_default_runner(command: click.Command, runner: str) -> click.Command:
    command = copy.deepcopy(command)
    (option,) = [param for param in command.params if param.name == "runner"]
    option.default = runner
    option.show_default = True
    option.help = f"{option.help} Default: {runner}, which skips unchanged ingestion/preprocessing nodes."
    return command


@click.group(name="dlflow")
def cli() -> None:
    """dlflow's project commands."""


cli.add_command(_with_default_runner(kedro_run, DEFAULT_RUNNER), name="run")
