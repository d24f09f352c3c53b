"""``word2vec``: text preprocessing → Word2Vec training → intrinsic evaluation → registration."""

from kedro.pipeline import Pipeline, node, pipeline

from dlflow.pipelines import registration, text

from .nodes import (
    describe_word_vectors,
    evaluate_word_vectors,
    package_word_vectors,
    train_word_vectors,
    word2vec_training_metrics,
)

BENCHMARKS = ["word_analogies_raw", "wordsim353_raw", "simlex999_raw"]


def create_training_pipeline() -> Pipeline:
    """Vocabulary and corpus in, vectors out; then the training report's numbers as metrics.

    ``train_word2vec`` writes only files, so the node cache (tag ``embeddings``)
    skips it when nothing it reads changed: a resumed run reuses the vectors.
    """
    return pipeline(
        [
            node(
                train_word_vectors,
                ["text_corpus", "text_vocabulary", "params:word2vec.training"],
                ["word2vec_vectors", "word2vec_training_report"],
                name="train_word2vec",
                tags="embeddings",
            ),
            node(
                word2vec_training_metrics, "word2vec_training_report", "word2vec_training_metrics", name="log_word2vec_training"
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    evaluate = pipeline(
        [
            node(
                evaluate_word_vectors,
                ["word2vec_vectors", *BENCHMARKS, "params:word2vec.analogy_restrict_vocab"],
                ["metrics", "test_metrics", "scores"],
                name="evaluate_word_vectors",
            )
        ],
        namespace="word2vec",  # word2vec.metrics, ... like the classifiers' shared evaluation
        inputs={"word2vec_vectors", *BENCHMARKS},
        parameters={"params:word2vec.analogy_restrict_vocab"},
    )
    describe = pipeline(
        [
            node(
                describe_word_vectors,
                ["word2vec_vectors", "params:word2vec.probes", "params:word2vec.map_words"],
                ["word2vec_neighbours", "word2vec_map_plot"],
                name="describe_word_vectors",
            ),
            node(package_word_vectors, ["word2vec_vectors", *BENCHMARKS], "word2vec_package", name="package_word_vectors"),
        ]
    )
    return (
        text.create_pipeline()
        + create_training_pipeline()
        + evaluate
        + describe
        + registration.create_pipeline("word2vec", "word2vec_package", "word2vec.scores", learning_curves=False)
    )
