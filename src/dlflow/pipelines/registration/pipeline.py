"""The shared registration pipeline; families reuse it under their namespace."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import register_model


def create_pipeline(namespace: str, package: str, metrics: str) -> Pipeline:
    """Register ``package`` (servable model + example + test digest) judged by ``metrics``."""
    template = pipeline(
        [node(register_model, ["package", "metrics", "params:registration"], "registration", name="register_model")]
    )
    return pipeline(
        template,
        namespace=namespace,
        inputs={"package": package, "metrics": metrics},
        parameters={"params:registration": f"params:{namespace}.registration"},
    )
