"""``tune_<family>``: the family's cached ingestion and preprocessing → trials → study report →
the best trial's model on the test set → the shared evaluation and registration.

``tune_<family>_trials`` is one more worker on the same study: preprocessing, trials and
the report of the study so far, without touching the test set.
"""

from kedro.pipeline import Pipeline, node, pipeline

from dlflow.pipelines import evaluation, ingestion, monitoring, registration, text, word2vec
from dlflow.pipelines.cnn.pipeline import create_training_pipeline as create_cnn_pipeline
from dlflow.pipelines.rnn.pipeline import create_classifier_pipeline as create_rnn_classifier_pipeline
from dlflow.pipelines.wiring import bound

from .nodes import (
    package_tuned_cnn,
    package_tuned_rnn,
    plot_study,
    predict_tuned_cnn,
    predict_tuned_rnn,
    select_best_model,
    summarise_study,
    tune_cnn,
    tune_rnn,
)

PLOTS = ("optimization_history", "parallel_coordinate", "param_importances")


def _preprocessing(family: str) -> Pipeline:
    """The family's own data nodes (cached by the node cache as usual), without its training."""
    if family == "cnn":
        return ingestion.create_pipeline() + create_cnn_pipeline().only_nodes_with_tags("preprocessing")
    classifier = create_rnn_classifier_pipeline().only_nodes(
        "list_text_class_names", "encode_labelled_sentences", "build_embedding_matrix"
    )
    return text.create_pipeline() + word2vec.create_training_pipeline() + classifier


def _trials(family: str, wait: bool) -> Pipeline:
    inputs = {
        "cnn": [
            "cnn_train_split",
            "cnn_val_split",
            "cnn_normalisation",
            "image_class_names",
            "params:cnn",
            "params:image_source",
            "params:tuning",
        ],
        "rnn": ["rnn_encoded_sentences", "rnn_initial_embeddings", "text_class_names", "params:rnn", "params:tuning"],
    }[family] + [f"{family}_checkpoints", "run_context"]
    tune = {"cnn": tune_cnn, "rnn": tune_rnn}[family]
    return pipeline(
        [
            node(bound(tune, wait=wait), inputs, f"{family}_tuning_study", name=f"tune_{family}", tags="tuning"),
            node(
                bound(summarise_study, family=family),
                [f"{family}_tuning_study", "params:tuning"],
                [f"{family}_tuning_trials", f"{family}_tuning_best", f"{family}_tuning_metrics"],
                name=f"summarise_{family}_study",
            ),
            node(
                plot_study,
                f"{family}_tuning_study",
                [f"{family}_tuning_{plot}_plot" for plot in PLOTS],
                name=f"plot_{family}_study",
            ),
        ]
    )


def _best_to_test(family: str) -> Pipeline:
    best = node(
        bound(select_best_model, family=family),
        [f"{family}_tuning_study", f"params:{family}"],
        [f"{family}_tuned_model", f"{family}_tuned_params", f"{family}_tuned_training_history"],
        name=f"select_best_{family}",
    )
    if family == "cnn":
        nodes = [
            node(predict_tuned_cnn, ["cnn_tuned_model", "cnn_test_split", "cnn_normalisation", "cnn_tuned_params", "params:image_source"],
                 "cnn_tuned_test_predictions", name="predict_tuned_cnn"),
            node(package_tuned_cnn, ["cnn_tuned_model", "cnn_normalisation", "image_class_names", "cnn_test_split", "cnn_tuned_params",
                                     "params:image_source", "params:images.resize"],
                 "cnn_tuned_package", name="package_tuned_cnn"),
        ]  # fmt: skip
        class_names = "image_class_names"
    else:
        nodes = [
            node(predict_tuned_rnn, ["rnn_tuned_model", "rnn_encoded_sentences", "rnn_tuned_params"],
                 "rnn_tuned_test_predictions", name="predict_tuned_rnn"),
            node(package_tuned_rnn, ["rnn_tuned_model", "text_vocabulary", "labelled_sentences", "rnn_tuned_test_predictions",
                                     "text_class_names", "rnn_tuned_params"],
                 "rnn_tuned_package", name="package_tuned_rnn"),
        ]  # fmt: skip
        class_names = "text_class_names"
    return (
        pipeline([best, *nodes])
        + evaluation.create_pipeline(family, f"{family}_tuned_test_predictions", class_names, f"{family}_tuned_training_history")
        + monitoring.create_profile_pipeline(family, stage="tuned_")
        + registration.create_pipeline(
            family,
            f"{family}_tuned_package",
            f"{family}.scores",
            predictions=f"{family}_tuned_test_predictions",
            learning_curves=False,
            profile=f"{family}_tuned_reference_profile",
        )
    )


def create_pipeline(family: str, worker_only: bool = False) -> Pipeline:
    """``tune_<family>`` (``worker_only``: ``tune_<family>_trials``, which leaves the test set alone)."""
    if worker_only:
        return _preprocessing(family) + _trials(family, wait=False)
    return _preprocessing(family) + _trials(family, wait=True) + _best_to_test(family)
