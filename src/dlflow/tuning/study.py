"""One worker's share of a study: trials trained by the shared loop, pruned from their live epoch metric.

``run_worker`` keeps starting trials until the study holds ``n_trials`` finished
or running ones (counted over every worker sharing the study) or this worker's
time budget is spent. A trial's parameters are laid over the family's validated
parameters and handed to ``train``, which runs ``dlflow.training.fit`` with the
callbacks it is given: the MLflow epoch logger and ``PruningCallback``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlflow.training.callbacks import Callback
from dlflow.tuning.space import configured_values, overlay, suggest

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from dlflow.config import StudyParams
    from dlflow.training.history import EpochRecord, FitResult

logger = logging.getLogger(__name__)

#: ``train(family_params, callbacks, checkpoint_dir) -> FitResult``: one trial's training.
TrainFn = Callable[[dict[str, Any], list[Callback], "str | None"], "FitResult"]
MAX_FAILURES_IN_A_ROW = 3


class PruningCallback(Callback):
    """Reports each validated epoch's ``metric`` to the trial and stops the trial when the pruner says so.

    Raised after the epoch was checkpointed and logged (this callback comes last), so the
    pruned trial's curve ends at the epoch that decided it.
    """

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric

    def on_epoch_end(self, record: EpochRecord, model: nn.Module | None) -> None:
        import optuna

        value = getattr(record, self.metric)
        if math.isnan(value):  # not validated this epoch
            return
        self.trial.report(value, record.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric} {value:.4f} at epoch {record.epoch}")


def trial_value(result: FitResult, metric: str, best_restored: bool) -> float:
    """The metric of the weights ``fit`` returned: with ``best_restored`` (early stopping on, so the loop
    restored its lowest-validation-loss epoch) that epoch's, else the last validated epoch's."""
    validated = [r for r in result.history if not math.isnan(getattr(r, metric))]
    if not validated:
        raise ValueError(f"no validated epoch to read {metric} from")
    chosen = next((r for r in validated if r.epoch == result.best_epoch), None) if best_restored else None
    return float(getattr(chosen or validated[-1], metric))


@dataclass
class Objective:
    """Optuna's objective for one family: sample, overlay, train in a child run, return the validation metric."""

    study: StudyParams
    family_params: dict[str, Any]  # validated, without the trial's values
    train: TrainFn
    checkpoint_root: str | None = None  # <root>/trial-<n>: resumed by a retry of the same trial on this machine
    parent_run_id: str | None = None  # the tuning run whose children the trials' MLflow runs are
    failures_in_a_row: int = 0
    last_error: str = ""

    def __call__(self, trial: optuna.Trial) -> float:
        import shutil

        import optuna

        from dlflow.training import MlflowEpochLogger
        from dlflow.tuning.tracking import child_run, log_trial_result, retry_of

        values = suggest(trial, self.study.space)
        params = overlay(self.family_params, values)
        original = retry_of(trial)  # a retry resumes the killed trial's epochs from its checkpoint
        original = trial.number if original is None else original
        checkpoint_dir = f"{self.checkpoint_root}/trial-{original}" if self.checkpoint_root else None
        try:
            with child_run(trial, self.study.study_name, values, self.parent_run_id):
                result = self.train(params, [MlflowEpochLogger(), PruningCallback(trial, self.study.metric)], checkpoint_dir)
                value = trial_value(result, self.study.metric, params["training"].get("early_stopping_patience") is not None)
                log_trial_result(f"trial_{self.study.metric}", value, result.model)
                trial.set_user_attr("history", [vars(record) for record in result.history])
        except Exception as error:  # anywhere in the trial, its run included: counted, so a broken setup stops the worker
            if checkpoint_dir is not None:  # pruned or failed: nothing half-done is trusted later
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
            if not isinstance(error, optuna.TrialPruned):
                self.failures_in_a_row, self.last_error = self.failures_in_a_row + 1, repr(error)
            raise
        self.failures_in_a_row = 0
        if checkpoint_dir is not None:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the model is in the child run now
        return value


def enqueue_configured_values(study: optuna.Study, space: dict[str, Any], params: dict[str, Any]) -> None:
    """Queue the family's configured values as the study's first trial: the search starts from the
    recipe it has to beat. Dimensions without a configured value inside their range are sampled."""
    values = configured_values(space, params)
    sampled = sorted(set(space) - set(values))
    logger.info("Study %s: first trial = the configured values %s%s", study.study_name, values,
                f" (sampled: {', '.join(sampled)})" if sampled else "")  # fmt: skip
    if values:
        study.enqueue_trial(values, skip_if_exists=True)


def _fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's heartbeat check (run at every trial's start too): fail trials whose worker stopped beating."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def counts(study: optuna.Study) -> dict[str, int]:
    """How many of the study's trials are in each state (``COMPLETE``, ``PRUNED``, ``RUNNING``, ...)."""
    found: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        found[trial.state.name] = found.get(trial.state.name, 0) + 1
    return found


def run_worker(study: optuna.Study, objective: Objective, n_trials: int | None, timeout_seconds: float | None) -> int:
    """Run trials until the study has ``n_trials`` finished or running ones, or the time is spent.

    Queued retries of a dead worker's trials (``WAITING``) are run first. A trial that
    raises is failed and the study goes on; ``MAX_FAILURES_IN_A_ROW`` failures stop the
    worker with the last error. Returns the number of trials this worker ran.
    """

    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    ran = 0
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            logger.info("Study %s: this worker's time budget is spent after %d trials", study.study_name, ran)
            break
        _fail_stale_trials(study)  # a dead worker's trial is not "running": fail it, queue its retry
        state = counts(study)
        taken = sum(state.get(name, 0) for name in ("COMPLETE", "PRUNED", "RUNNING"))
        if n_trials is not None and taken >= n_trials and not state.get("WAITING"):
            break
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        ran += 1
        if objective.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            raise RuntimeError(
                f"study {study.study_name}: {objective.failures_in_a_row} trials in a row failed on this worker; "
                f"the last with: {objective.last_error}"
            )
    return ran


def wait_for_workers(study: optuna.Study, objective: Objective, timeout_seconds: float, poll_seconds: float = 2.0) -> None:
    """Wait until no trial of the study is running (other workers finishing theirs), running queued retries.

    A trial whose worker died is failed by the heartbeat check after its grace period
    and its retry is run here.
    """

    deadline = time.monotonic() + timeout_seconds
    while True:
        _fail_stale_trials(study)
        state = counts(study)
        if state.get("WAITING"):
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
            continue
        if not state.get("RUNNING"):
            return
        if time.monotonic() >= deadline:
            logger.warning(
                "Study %s: %d trials still running after the wait; going on without them", study.study_name, state["RUNNING"]
            )
            return
        time.sleep(poll_seconds)
