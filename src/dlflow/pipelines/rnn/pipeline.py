"""``rnn``: labelled sentences (MR or your table) → Word2Vec-initialised LSTM/GRU, cross-validated beside a
Naive Bayes baseline, evaluated per class and registered under the data set's name."""

from kedro.pipeline import Pipeline, node, pipeline

from dlflow.pipelines import evaluation, monitoring, registration, text, word2vec

from .nodes import (
    add_feedback_sentences,
    build_embedding_matrix,
    cross_validate_naive_bayes,
    cross_validate_rnn,
    encode_labelled_sentences,
    list_text_class_names,
    package_rnn,
)


def create_classifier_pipeline() -> Pipeline:
    """The RNN and baseline nodes alone; they need ``word2vec_vectors`` and the text tables."""
    return pipeline(
        [
            node(list_text_class_names, "labelled_sentences", "text_class_names", name="list_text_class_names"),
            node(
                encode_labelled_sentences,
                ["labelled_sentences", "text_vocabulary", "params:rnn.max_length"],
                "rnn_encoded_sentences",
                name="encode_labelled_sentences",
            ),
            node(
                add_feedback_sentences,
                [
                    "rnn_encoded_sentences",
                    "rnn_feedback",
                    "text_class_names",
                    "text_vocabulary",
                    "params:rnn.max_length",
                    "params:inference.rnn.text_column",
                    "params:rnn.feedback",
                ],
                ["rnn_training_sentences", "rnn_feedback_metrics"],
                name="add_feedback_sentences",
                tags="training",
            ),
            node(
                build_embedding_matrix,
                ["word2vec_vectors", "text_vocabulary", "params:rnn.training.seed"],
                "rnn_initial_embeddings",
                name="build_embedding_matrix",
            ),
            node(
                cross_validate_rnn,
                [
                    "rnn_training_sentences",
                    "rnn_initial_embeddings",
                    "text_class_names",
                    "params:rnn.model",
                    "params:rnn.adversarial",
                    "params:rnn.evaluation",
                    "params:rnn.training",
                    "rnn_checkpoints",
                    "run_context",
                ],  # fmt: skip
                ["rnn_model", "rnn_training_history", "rnn_test_predictions", "rnn_cv_metrics", "rnn_cv_report"],
                name="cross_validate_rnn",
            ),
            node(
                cross_validate_naive_bayes,
                ["labelled_sentences", "text_class_names", "params:rnn.baseline", "params:rnn.evaluation"],
                ["naive_bayes_cv_metrics", "naive_bayes_cv_report", "naive_bayes_test_predictions"],
                name="cross_validate_naive_bayes",
            ),
            node(
                package_rnn,
                [
                    "rnn_model",
                    "text_vocabulary",
                    "labelled_sentences",
                    "rnn_test_predictions",
                    "text_class_names",
                    "params:rnn.max_length",
                ],
                "rnn_package",
                name="package_rnn",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """The whole chain: text preprocessing, Word2Vec training, then the classifier.

    ``kedro run --pipeline rnn`` therefore always trains the vectors it starts
    from; ``--pipeline nlp`` additionally evaluates and registers those vectors.
    """
    return (
        text.create_pipeline()
        + word2vec.create_training_pipeline()
        + create_classifier_pipeline()
        + evaluation.create_pipeline("rnn", "rnn_test_predictions", "text_class_names", "rnn_training_history")
        + monitoring.create_profile_pipeline("rnn")
        + registration.create_pipeline(
            "rnn", "rnn_package", "rnn.scores", predictions="rnn_test_predictions", profile="rnn_reference_profile"
        )
    )
