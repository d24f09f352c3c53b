from .pipeline import create_pipeline, create_training_pipeline

__all__ = ["create_pipeline", "create_training_pipeline"]
