"""Hooks into the training loop, and the live MLflow epoch logger.

This is the only module of ``dlflow.training`` that touches MLflow, and it
imports it lazily, so importing the training loop stays cheap.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from dlflow.training.config import TrainConfig
    from dlflow.training.history import EpochRecord, FitResult

logger = logging.getLogger("dlflow.training")


class Callback:
    """Base class: override the hooks you need; each one does nothing by default."""

    def on_resume(self, history: list[EpochRecord]) -> None:
        """When training resumes from a checkpoint, before ``on_train_start``: the epochs already done."""

    def on_train_start(self, config: TrainConfig, start_epoch: int) -> None:
        """Before the first epoch to run; ``start_epoch`` is the number of epochs already done (resume)."""

    def on_epoch_end(self, record: EpochRecord, model: nn.Module) -> None:
        """After each epoch has been validated and checkpointed."""

    def on_train_end(self, result: FitResult) -> None:
        """After training, with the final result (best weights already restored)."""


class MlflowEpochLogger(Callback):
    """Log each epoch's metrics to the active MLflow run at ``step=epoch``, so curves grow live.

    ``samples`` names what a sample is in the throughput metric: with
    ``samples="sentences"`` the loop's ``samples_per_second`` is logged as
    ``sentences_per_second``. ``run_id`` logs to that run instead of the active
    one, through a tracking client for ``tracking_uri``: a worker process
    (``training.parallel``) has no active run of its own. Without a run it logs nothing and warns once.
    """

    def __init__(
        self, prefix: str = "", samples: str = "samples", run_id: str | None = None, tracking_uri: str | None = None
    ) -> None:
        self.prefix = prefix
        self.samples = samples
        self.run_id = run_id
        self.tracking_uri = tracking_uri  # with run_id: where that run lives (None: MLflow's current URI)
        self._warned = False

    def _run_id(self) -> str | None:
        import mlflow

        if self.run_id is not None:
            return self.run_id
        run = mlflow.active_run()
        return None if run is None else run.info.run_id

    def on_resume(self, history: list[EpochRecord]) -> None:
        """Log the checkpointed epochs the run does not have yet.

        A process killed after writing an epoch's checkpoint but before logging
        it would otherwise leave that epoch out of the resumed run's curves.
        """
        import mlflow

        run_id = self._run_id()
        if run_id is None or not history:
            return
        name = f"{self.prefix}train_loss"  # logged every epoch (validation may skip epochs)
        logged = {m.step for m in mlflow.MlflowClient(self.tracking_uri).get_metric_history(run_id, name)}
        for record in history:
            if record.epoch not in logged:
                logger.info("logging epoch %d from the checkpoint: the interrupted run had not logged it", record.epoch)
                self.on_epoch_end(record, None)

    def on_epoch_end(self, record: EpochRecord, model: nn.Module | None) -> None:
        import mlflow

        run_id = self._run_id()
        if run_id is None:
            if not self._warned:
                logger.warning("MlflowEpochLogger: no active MLflow run, epoch metrics are not logged")
                self._warned = True
            return
        metrics = {
            f"{self.prefix}{name.replace('samples_', f'{self.samples}_')}": float(value)
            for name, value in dataclasses.asdict(record).items()
            if name != "epoch" and not math.isnan(value)  # NaN: not validated this epoch
        }
        if self.run_id is None:
            mlflow.log_metrics(metrics, step=record.epoch)
            return
        now = int(time.time() * 1000)
        batch = [mlflow.entities.Metric(key, value, now, record.epoch) for key, value in metrics.items()]
        mlflow.MlflowClient(self.tracking_uri).log_batch(self.run_id, metrics=batch)


class MlflowProgressLogger:
    """``on_progress`` receiver for trainers that report within epochs (Word2Vec).

    Logs ``words_per_second``, ``lr`` and ``loss`` (prefixed) to the active run,
    one step per report, so throughput and the decaying learning rate show live.
    """

    FIELDS = ("words_per_second", "lr", "loss", "progress")

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.step = 0

    def __call__(self, update: dict) -> None:
        import mlflow

        if mlflow.active_run() is None:
            return
        self.step += 1
        mlflow.log_metrics(
            {f"{self.prefix}{name}": float(update[name]) for name in self.FIELDS if name in update},
            step=self.step,
        )
