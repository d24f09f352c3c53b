"""Finding the MLflow runs a test made."""


def pipeline_filter(pipeline: str) -> str:
    """An MLflow search filter for the runs of ``kedro run --pipeline <pipeline>`` (kedro-mlflow's ``pipeline_names`` tag)."""
    return 'tags.pipeline_names = "' + str([pipeline]) + '"'
