"""Where a study lives, and the study itself: Optuna's RDB storage with heartbeats, sampler and pruner.

Every worker that opens the same ``study_name`` on the same storage joins the
same study; a worker that dies stops beating, and after the grace period the next
worker to start a trial marks its trial failed and queues a retry of it.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from dlflow.config import PrunerParams, SamplerParams, StudyParams, TuningParams

logger = logging.getLogger(__name__)

STORAGE_ENV = "DLFLOW_TUNING_STORAGE"
SQLITE_FILE = "optuna.db"
SCHEMA_ATTEMPTS = 5


def storage_url(tuning: TuningParams, tracking_uri: str, project_root: Path) -> str:
    """``tuning.storage``, else ``$DLFLOW_TUNING_STORAGE``, else an SQLite file beside the MLflow store.

    Beside an ``sqlite:///.../mlflow.db`` tracking store that is ``.../optuna.db``; with a
    tracking server it is ``<project>/mlruns/optuna.db``, which only this machine's workers
    share (set a PostgreSQL URL for workers on several machines).
    """
    explicit = tuning.storage or os.environ.get(STORAGE_ENV)
    if explicit:
        return explicit
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri.removeprefix('sqlite:///')).parent / SQLITE_FILE}"
    logger.warning(
        "Tracking server %s: the study is stored in %s on this machine; set %s (e.g. postgresql://...) "
        "so that workers on other machines join it",
        tracking_uri, project_root / "mlruns" / SQLITE_FILE, STORAGE_ENV,
    )  # fmt: skip
    return f"sqlite:///{project_root / 'mlruns' / SQLITE_FILE}"


def redacted(url: str) -> str:
    """``url`` without its password, for logs and run tags."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def make_storage(url: str, tuning: TuningParams) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats: a trial whose worker stopped beating is failed, then retried."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from sqlalchemy.exc import SQLAlchemyError

    from dlflow.tracking.server import _sqlite_setup_lock  # the lock the MLflow store is created under

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    # Workers that start together would all create the schema of a new database: on SQLite one does it
    # under a file lock while the others wait; elsewhere (PostgreSQL) the losers of the race try again.
    with _sqlite_setup_lock(url), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=tuning.heartbeat_interval_seconds,
                    grace_period=tuning.grace_period_seconds,
                    heartbeat_stale_trial_callback=StaleTrialCallback(
                        RetryHeartbeatStaleTrialCallback(max_retry=tuning.max_retry)
                    ),
                )
            except SQLAlchemyError as error:
                if attempt == SCHEMA_ATTEMPTS - 1:
                    raise
                logger.info("Study storage %s not ready (%s); trying again", redacted(url), type(error).__name__)
                time.sleep(1 + attempt)
    raise AssertionError("unreachable")


class StaleTrialCallback:
    """Called by Optuna for a trial whose worker stopped beating: end its MLflow child run as FAILED,
    then let Optuna's retry callback queue the trial again."""

    def __init__(self, retry: optuna.storages.RetryHeartbeatStaleTrialCallback) -> None:
        self.retry = retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from dlflow.tuning.tracking import fail_child_run

        logger.warning("Trial %d of study %s lost its worker: failed, queued for a retry", trial.number, study.study_name)
        fail_child_run(trial)
        self.retry(study, trial)


def make_sampler(params: SamplerParams) -> optuna.samplers.BaseSampler:
    import optuna

    if params.type == "random":
        return optuna.samplers.RandomSampler(seed=params.seed)
    return optuna.samplers.TPESampler(seed=params.seed, n_startup_trials=params.n_startup_trials)


def make_pruner(params: PrunerParams) -> optuna.pruners.BasePruner:
    import optuna

    if params.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=params.n_startup_trials, n_warmup_steps=params.n_warmup_steps)
    if params.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=params.min_resource, reduction_factor=params.reduction_factor)
    return optuna.pruners.NopPruner()


def open_study(study: StudyParams, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the study, or join it when another worker (or an earlier run of the command) created it."""
    import optuna

    return optuna.create_study(
        study_name=study.study_name,
        storage=storage,
        direction=study.direction,
        sampler=make_sampler(study.sampler),
        pruner=make_pruner(study.pruner),
        load_if_exists=True,
    )
