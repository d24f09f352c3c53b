from .pipeline import create_cnn_pipeline, create_rnn_pipeline

__all__ = ["create_cnn_pipeline", "create_rnn_pipeline"]
