"""The registered word vectors' entry point ("models from code"): MLflow runs this file to load
the model, which then reads the words and vectors from the version's artifacts."""

from mlflow.models import set_model

from dlflow.serving.word_vectors import WordVectorsModel

set_model(WordVectorsModel())
