"""``cnn``: ingestion → preprocessing → training → evaluation → registration for the image CNN."""

from kedro.pipeline import Pipeline, node, pipeline

from dlflow.pipelines import evaluation, ingestion, monitoring, registration

from .nodes import (
    add_feedback_images,
    compute_normalisation,
    package_cnn,
    plot_cnn_mistakes,
    predict_cnn,
    select_test_images,
    split_train_validation,
    train_cnn,
)


def create_training_pipeline() -> Pipeline:
    """Preprocessing, training and prediction on the test images.

    Each node gets only the parameter blocks it reads, so the node cache
    reruns exactly the nodes a parameter change affects.
    """
    return pipeline(
        [
            node(split_train_validation, ["image_train_intermediate", "image_val_intermediate", "params:cnn.data"], ["cnn_train_split", "cnn_val_split"], name="split_train_validation", tags="preprocessing"),
            node(select_test_images, ["image_test_intermediate", "params:cnn.data"], "cnn_test_split", name="select_test_images", tags="preprocessing"),
            node(compute_normalisation, "cnn_train_split", "cnn_normalisation", name="compute_normalisation", tags="preprocessing"),
            node(
                add_feedback_images,
                ["cnn_train_split", "cnn_feedback", "image_class_names", "params:cnn.feedback"],
                ["cnn_training_images", "cnn_feedback_metrics"],
                name="add_feedback_images",
                tags="training",
            ),
            node(
                train_cnn,
                [
                    "cnn_training_images", "cnn_val_split", "cnn_normalisation", "image_class_names",
                    "params:cnn.model", "params:cnn.training", "params:cnn.augmentation", "params:image_source",
                    "params:cnn.streaming", "cnn_checkpoints", "run_context",
                ],
                ["cnn_model", "cnn_training_history"],
                name="train_cnn",
                tags="training",  # add `training` to cache.tags to skip it when unchanged
            ),
            node(
                predict_cnn,
                ["cnn_model", "cnn_test_split", "cnn_normalisation", "params:cnn.training", "params:cnn.augmentation", "params:image_source"],
                "cnn_test_predictions",
                name="predict_cnn",
            ),
            node(
                plot_cnn_mistakes,
                ["cnn_test_split", "cnn_test_predictions", "image_class_names", "params:cnn.misclassified_examples"],
                "cnn_misclassified_plot",
                name="plot_cnn_mistakes",
            ),
            node(
                package_cnn,
                [
                    "cnn_model", "cnn_normalisation", "image_class_names", "cnn_test_split",
                    "params:cnn.model", "params:cnn.augmentation", "params:image_source", "params:images.resize",
                ],
                "cnn_package",
                name="package_cnn",
            ),
        ]
    )  # fmt: skip


def create_pipeline(**kwargs) -> Pipeline:
    return (
        ingestion.create_pipeline()
        + create_training_pipeline()
        + evaluation.create_pipeline("cnn", "cnn_test_predictions", "image_class_names", "cnn_training_history")
        + monitoring.create_profile_pipeline("cnn")
        + registration.create_pipeline(
            "cnn", "cnn_package", "cnn.scores", predictions="cnn_test_predictions", profile="cnn_reference_profile"
        )
    )
