"""``inference_cnn`` / ``inference_rnn``: the registered ``champion`` (or any alias) scores a file.

kedro run --pipeline inference_cnn --params images_path=/data/my-images-idx3-ubyte.gz
kedro run --pipeline inference_rnn --params sentences_path=/data/reviews.txt,inference.rnn.alias=challenger
"""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import check_input, predict_images, predict_sentences


def _inference_pipeline(family: str, predict, predict_name: str) -> Pipeline:
    """Check the input against ``<family>_champion``'s signature (the catalog loads the model), then predict."""
    champion, checked, params = f"{family}_champion", f"{family}_inference_checked_input", f"params:inference.{family}"
    return pipeline(
        [
            node(
                check_input,
                [f"{family}_inference_input", champion, f"{params}.model_name", f"{params}.alias"],
                checked,
                name=f"check_{family}_input",
            ),
            node(
                predict,
                [checked, champion, f"{params}.batch_size"],
                f"{family}_inference_predictions",
                name=predict_name,
            ),
        ]
    )


def create_cnn_pipeline(**kwargs) -> Pipeline:
    """Images (IDX or parquet ``pixels``) → class predictions from the registered CNN."""
    return _inference_pipeline("cnn", predict_images, "predict_images")


def create_rnn_pipeline(**kwargs) -> Pipeline:
    """Sentences (text lines or parquet ``sentence``) → polarity predictions from the registered RNN."""
    return _inference_pipeline("rnn", predict_sentences, "predict_sentences")
