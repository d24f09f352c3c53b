"""``inference_cnn`` / ``inference_rnn``: the registered ``champion`` (or any alias) scores a file or a folder.

kedro run --pipeline inference_cnn --params images_path=/data/my-images-idx3-ubyte.gz
kedro run --pipeline inference_cnn --params images_path=/data/new-photos          # a folder of images
kedro run --pipeline inference_rnn --params sentences_path=/data/tickets.csv,inference.rnn.text_column=body

One node per family: it reads the input in chunks, checks, scores and writes
each (``nodes.py`` says where the per-chunk steps are).
"""

from kedro.pipeline import Pipeline, node, pipeline

from dlflow.pipelines import monitoring

from .nodes import score_images, score_sentences


def _inference_pipeline(family: str, score) -> Pipeline:
    """``<family>_inference_input`` scored by ``<family>_champion`` (the catalog loads both) into the predictions,
    and what monitoring observed meanwhile judged against the champion's reference profile."""
    return pipeline(
        [
            node(
                score,
                [f"{family}_inference_input", f"{family}_champion", f"params:inference.{family}", "params:monitoring"],
                [f"{family}_inference_predictions", f"{family}_batch_observations"],
                name=score.__name__,
            )
        ]
    ) + monitoring.create_judge_pipeline(family)


def create_cnn_pipeline(**kwargs) -> Pipeline:
    """Images (an IDX file, a parquet ``pixels`` table or a folder of image files) → the registered CNN's classes."""
    return _inference_pipeline("cnn", score_images)


def create_rnn_pipeline(**kwargs) -> Pipeline:
    """Sentences (text lines, or a CSV/TSV/JSON Lines/parquet table) → the registered RNN's classes."""
    return _inference_pipeline("rnn", score_sentences)
