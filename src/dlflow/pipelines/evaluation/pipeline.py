"""The shared evaluation pipeline; families reuse it under their namespace (``cnn.metrics``, ...)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import evaluate_classifier, plot_confusion, plot_history


def create_pipeline(namespace: str, predictions: str, class_names: str, training_history: str) -> Pipeline:
    """Evaluation of one family's test predictions, with its datasets prefixed by ``namespace``."""
    template = pipeline(
        [
            node(
                evaluate_classifier,
                ["predictions", "class_names"],
                ["metrics", "test_metrics", "scores"],
                name="evaluate_classifier",
            ),
            node(plot_confusion, ["predictions", "class_names"], "confusion_matrix_plot", name="plot_confusion"),
            node(plot_history, "training_history", "learning_curves_plot", name="plot_learning_curves"),
        ]
    )
    return pipeline(
        template,
        namespace=namespace,
        inputs={"predictions": predictions, "class_names": class_names, "training_history": training_history},
    )
