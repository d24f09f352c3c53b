"""The shared registration pipeline; families reuse it under their namespace.

``summarise_candidate`` → ``<family>.candidate`` → ``register_model`` (the MLflow
registry) → ``<family>.registration`` + ``<family>.comparison`` →
``build_promotion_report`` → ``<family>.promotion_report``.
"""

from kedro.pipeline import Pipeline, node, pipeline

from dlflow.pipelines.wiring import bound

from .nodes import build_promotion_report, register_model, summarise_candidate


def create_pipeline(
    namespace: str,
    package: str,
    scores: str,
    metrics: str | None = None,
    predictions: str | None = None,
    learning_curves: bool = True,
    profile: str | None = None,
) -> Pipeline:
    """Register ``package`` (servable model + example + test digest) judged by ``scores``.

    ``metrics`` is the family's full evaluation report (default ``<namespace>.metrics``),
    ``predictions`` the test predictions behind its confusion matrix (classifiers only).
    ``learning_curves``: whether the run's ``train_loss``/``val_loss``/... histories are
    this family's (False for Word2Vec, which in the ``nlp`` run shares its run with the RNN).
    ``profile``: the reference profile registered with the model for monitoring (classifiers).
    The promotion rules are the shared ``params:promotion``, resolved for ``namespace``.
    """
    summary_inputs = {"package": "package", "scores": "scores", "evaluation": "metrics", "promotion": "params:promotion"}
    if predictions is not None:
        summary_inputs["predictions"] = "predictions"
    template = pipeline(
        [
            node(bound(summarise_candidate, family=namespace), summary_inputs, "candidate", name="summarise_candidate"),
            node(
                bound(register_model, family=namespace, learning_curves=learning_curves),
                ["package", "candidate", "params:registration", *(["profile"] if profile is not None else [])],
                ["registration", "comparison"],
                name="register_model",
            ),
            node(
                build_promotion_report,
                ["candidate", "registration", "comparison"],
                "promotion_report",
                name="build_promotion_report",
            ),
        ]
    )
    return pipeline(
        template,
        namespace=namespace,
        inputs={"package": package, "scores": scores, "metrics": metrics or f"{namespace}.metrics"}
        | ({"predictions": predictions} if predictions is not None else {})
        | ({"profile": profile} if profile is not None else {}),
        parameters={"params:registration": f"params:{namespace}.registration", "params:promotion": "params:promotion"},
    )
