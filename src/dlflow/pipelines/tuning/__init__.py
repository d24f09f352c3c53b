"""``tune_cnn`` / ``tune_rnn``: hyperparameter search over the family's training, the best model to the gate."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
