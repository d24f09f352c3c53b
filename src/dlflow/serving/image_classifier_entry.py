"""The registered CNN's entry point ("models from code"): MLflow runs this file to load the model,
whose weights and description it then reads from the version's artifacts."""

from mlflow.models import set_model

from dlflow.serving.image_classifier import ImageClassifierModel

set_model(ImageClassifierModel())
