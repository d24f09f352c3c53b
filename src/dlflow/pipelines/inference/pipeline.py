"""``inference_cnn`` / ``inference_rnn``: the registered ``champion`` (or any alias) scores a file.

kedro run --pipeline inference_cnn --params images_path=/data/my-images-idx3-ubyte.gz
kedro run --pipeline inference_rnn --params sentences_path=/data/reviews.txt,inference.rnn.alias=challenger
"""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import check_input, load_cnn_model, load_rnn_model, predict_images, predict_sentences


def _inference_pipeline(family: str, load_model, predict, predict_name: str) -> Pipeline:
    """Load ``models:/<name>@<alias>``, check the input against its signature, then predict."""
    model, info = f"{family}_inference_model", f"{family}_inference_model_info"
    return pipeline(
        [
            node(load_model, f"params:inference.{family}", [model, info], name=f"load_{family}_model"),
            node(
                check_input,
                [f"{family}_inference_input", model, info],
                f"{family}_inference_checked_input",
                name=f"check_{family}_input",
            ),
            node(
                predict,
                [model, f"{family}_inference_checked_input", info, f"params:inference.{family}"],
                f"{family}_inference_predictions",
                name=predict_name,
            ),
        ]
    )


def create_cnn_pipeline(**kwargs) -> Pipeline:
    """Images (IDX or parquet ``pixels``) → class predictions from the registered CNN."""
    return _inference_pipeline("cnn", load_cnn_model, predict_images, "predict_images")


def create_rnn_pipeline(**kwargs) -> Pipeline:
    """Sentences (text lines or parquet ``sentence``) → polarity predictions from the registered RNN."""
    return _inference_pipeline("rnn", load_rnn_model, predict_sentences, "predict_sentences")
