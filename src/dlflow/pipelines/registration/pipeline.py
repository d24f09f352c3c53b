"""The shared registration pipeline; families reuse it under their namespace."""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import register_model


def create_pipeline(
    namespace: str,
    package: str,
    scores: str,
    metrics: str | None = None,
    predictions: str | None = None,
    learning_curves: bool = True,
) -> Pipeline:
    """Register ``package`` (servable model + example + test digest) judged by ``scores``.

    ``metrics`` is the family's full evaluation report (default ``<namespace>.metrics``),
    ``predictions`` the test predictions behind its confusion matrix (classifiers only).
    ``learning_curves``: whether the run's ``train_loss``/``val_loss``/... histories are
    this family's (False for Word2Vec, which in the ``nlp`` run shares its run with the RNN).
    The promotion rules are the shared ``params:promotion``, resolved for ``namespace``.
    """
    inputs = {
        "package": "package",
        "scores": "scores",
        "evaluation": "metrics",
        "params": "params:registration",
        "promotion": "params:promotion",
    }
    if predictions is not None:
        inputs["predictions"] = "predictions"
    register = update_wrapper(partial(register_model, family=namespace, learning_curves=learning_curves), register_model)
    template = pipeline([node(register, inputs, "registration", name="register_model")])
    return pipeline(
        template,
        namespace=namespace,
        inputs={"package": package, "scores": scores, "metrics": metrics or f"{namespace}.metrics"}
        | ({"predictions": predictions} if predictions is not None else {}),
        parameters={"params:registration": f"params:{namespace}.registration", "params:promotion": "params:promotion"},
    )
