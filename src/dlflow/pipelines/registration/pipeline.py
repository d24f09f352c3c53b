"""The shared registration pipeline; families reuse it under their namespace."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import register_model


def create_pipeline(namespace: str, package: str, scores: str) -> Pipeline:
    """Register ``package`` (servable model + example + test digest) judged by ``scores``."""
    template = pipeline(
        [node(register_model, ["package", "scores", "params:registration"], "registration", name="register_model")]
    )
    return pipeline(
        template,
        namespace=namespace,
        inputs={"package": package, "scores": scores},
        parameters={"params:registration": f"params:{namespace}.registration"},
    )
