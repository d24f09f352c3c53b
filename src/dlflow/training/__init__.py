"""The one training loop: device, seeding, epochs, progress, checkpoint/resume, early stopping.

Knows nothing of Kedro; MLflow appears only in ``callbacks.MlflowEpochLogger``.
"""

from dlflow.training.callbacks import Callback, MlflowEpochLogger
from dlflow.training.checkpoint import config_key
from dlflow.training.config import TrainConfig
from dlflow.training.data import TensorDataset
from dlflow.training.history import EpochRecord, FitResult
from dlflow.training.loop import fit, predict
from dlflow.training.runtime import (
    configure_threads,
    rng_state,
    seed_everything,
    select_device,
    set_rng_state,
)

__all__ = [
    "Callback",
    "EpochRecord",
    "FitResult",
    "MlflowEpochLogger",
    "TensorDataset",
    "TrainConfig",
    "config_key",
    "configure_threads",
    "fit",
    "predict",
    "rng_state",
    "seed_everything",
    "select_device",
    "set_rng_state",
]
