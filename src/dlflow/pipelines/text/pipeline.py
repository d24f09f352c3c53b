"""Shared text preprocessing: MR sentences with folds, the Word2Vec corpus and the vocabulary."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import build_text_corpus, build_vocabulary, prepare_polarity


def create_pipeline(**kwargs) -> Pipeline:
    """Each node gets only the parameters it reads, so the node cache reruns exactly what a change affects."""
    return pipeline(
        [
            node(
                prepare_polarity,
                ["mr_polarity_raw", "params:text.folds", "params:text.fold_seed"],
                "mr_sentences",
                name="prepare_polarity",
            ),
            node(
                build_text_corpus,
                [
                    "mr_sentences",
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
