"""Finding the MLflow runs a test made."""


def pipeline_filter(pipeline: str) -> str:
    """An MLflow search filter for the runs of ``kedro run --pipeline <pipeline>`` (kedro-mlflow's ``pipeline_names`` tag)."""
    return 'tags.pipeline_names = "' + str([pipeline]) + '"'


def expected_aliases(client, model_name: str) -> dict[str, str]:
    """Where the recorded gate decisions put ``champion`` and ``challenger`` (what the registry must show)."""
    from dlflow.model_registry.promotion import target_aliases
    from dlflow.model_registry.store import PROMOTED, TAG_DECISION, gated_versions

    return target_aliases((v.version, v.tags[TAG_DECISION] == PROMOTED) for v in gated_versions(client, model_name))
