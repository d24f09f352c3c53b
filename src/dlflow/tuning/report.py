"""A finished study as a table, a best-trial summary and Optuna's plots (matplotlib figures)."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd

from dlflow.tuning.space import kedro_params

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, start/end, duration, epochs reported, parameters, MLflow run id."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "epochs": len(trial.intermediate_values),
                "datetime_start": trial.datetime_start,
                "datetime_complete": trial.datetime_complete,
                "duration_seconds": trial.duration.total_seconds() if trial.duration is not None else None,
                **{f"params.{name}": value for name, value in trial.params.items()},
                "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
                "retry_of_trial": trial.system_attrs.get("failed_trial"),
            }
        )
    return pd.DataFrame(rows)


def best_summary(study: optuna.Study, family: str, metric: str) -> dict[str, Any]:
    """The best trial: number, value, parameters, the ``--params`` string that reproduces them, and state counts.

    Before any trial is complete (other workers' still running) the ``best_*`` fields are None.
    """
    import optuna

    states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)]).value_counts().to_dict()
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "metric": metric,
        "direction": study.direction.name.lower(),
        "trials": {state.lower(): int(count) for state, count in states.items()},
    }
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        logger.warning("Study %s has no complete trial yet: %s", study.study_name, summary["trials"])
        return summary | {
            key: None for key in ("best_trial", "best_value", "best_params", "kedro_params", "command", "mlflow_run_id")
        }
    best = study.best_trial
    cli = kedro_params(family, best.params)
    return summary | {
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": dict(best.params),
        "kedro_params": cli,
        "command": f'kedro run --pipeline {family} --params "{cli}"',
        "mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
    }


def study_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """What the parent run logs as metrics: the best value and how many trials ended in each state."""
    trials = summary["trials"]
    best = {}
    if summary["best_trial"] is not None:
        best = {
            f"tuning_best_{summary['metric']}": float(summary["best_value"]),
            "tuning_best_trial": float(summary["best_trial"]),
        }
    return best | {f"tuning_trials_{state}": float(trials.get(state, 0)) for state in ("complete", "pruned", "fail")}


def study_plots(study: optuna.Study) -> dict[str, Figure]:
    """Optimisation history, parallel coordinates and parameter importances (Optuna's matplotlib plots).

    A plot Optuna cannot draw yet (e.g. importances need two complete trials that differ)
    becomes a figure that says why, so the run always has all three.
    """
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    drawers = {
        "optimization_history": optuna_plots.plot_optimization_history,
        "parallel_coordinate": optuna_plots.plot_parallel_coordinate,
        "param_importances": optuna_plots.plot_param_importances,
    }
    figures = {}
    for name, draw in drawers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = draw(study)
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
                figure.set_size_inches(9, 6)
                figure.tight_layout()
            except (ValueError, RuntimeError, ZeroDivisionError) as error:
                logger.warning("Optuna could not draw %s: %s", name, error)
                figure, axes = plt.subplots(figsize=(9, 6))
                axes.axis("off")
                axes.text(0.5, 0.5, f"{name}: not available\n{error}", ha="center", va="center", wrap=True)
        figures[name] = figure
    return figures
