"""Shared text preprocessing: the labelled sentences with folds, the Word2Vec corpus and the vocabulary."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import build_text_corpus, build_vocabulary, prepare_labelled_sentences


def create_pipeline(**kwargs) -> Pipeline:
    """Each node gets only the parameters it reads, so the node cache reruns exactly what a change affects.

    ``labelled_text_raw`` is MR or the user's table (``text_source``): one schema, so nothing
    downstream knows which."""
    return pipeline(
        [
            node(
                prepare_labelled_sentences,
                ["labelled_text_raw", "params:text.folds", "params:text.fold_seed"],
                "labelled_sentences",
                name="prepare_labelled_sentences",
            ),
            node(
                build_text_corpus,
                [
                    "labelled_sentences",
                    "subjectivity_corpus_raw",
                    "movie_reviews_corpus_raw",
                    "brown_corpus_raw",
                    "user_corpus_raw",
                    "params:text.corpora",
                    "params:text.corpus_repeats",
                    "params:text.max_corpus_sentences",
                ],
                "text_corpus",
                name="build_text_corpus",
            ),
            node(build_vocabulary, ["text_corpus", "params:text.vocabulary"], "text_vocabulary", name="build_vocabulary"),
        ],
        tags="preprocessing",  # skipped when unchanged (dlflow.caching.runner)
    )
