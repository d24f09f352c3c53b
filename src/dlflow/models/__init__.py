"""Model families as plain ``torch.nn`` modules (no Kedro, no MLflow)."""

from dlflow.models.cnn import ARCHITECTURES, ClassicCNN, FastCNN, build_cnn, hflip, random_hflip

__all__ = ["ARCHITECTURES", "ClassicCNN", "FastCNN", "build_cnn", "hflip", "random_hflip"]
