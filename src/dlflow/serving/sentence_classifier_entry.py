"""The registered RNN's entry point ("models from code"): MLflow runs this file to load the model,
whose weights, vocabulary and description it then reads from the version's artifacts."""

from mlflow.models import set_model

from dlflow.serving.sentence_classifier import SentenceClassifierModel

set_model(SentenceClassifierModel())
