"""``inference_cnn`` / ``inference_rnn``: the registered ``champion`` (or any alias) scores a file.

    kedro run --pipeline inference_cnn --params images_path=/data/my-images-idx3-ubyte.gz
    kedro run --pipeline inference_rnn --params sentences_path=/data/reviews.txt,inference.rnn.alias=challenger
"""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import check_input, load_cnn_model, load_rnn_model, predict_images, predict_sentences


def _load_and_check(family: str, load_model) -> list:
    """Load ``models:/<name>@<alias>`` and check the input against its signature."""
    return [
        node(
            load_model,
            f"params:inference.{family}",
            [f"{family}_inference_model", f"{family}_inference_model_info"],
            name=f"load_{family}_model",
        ),
        node(
            check_input,
            [f"{family}_inference_input", f"{family}_inference_model", f"{family}_inference_model_info"],
            f"{family}_inference_checked_input",
            name=f"check_{family}_input",
        ),
    ]


def create_cnn_pipeline(**kwargs) -> Pipeline:
    """Images (IDX or parquet ``pixels``) → class predictions from the registered CNN."""
    return pipeline(
        _load_and_check("cnn", load_cnn_model)
        + [
            node(
                predict_images,
                ["cnn_inference_model", "cnn_inference_checked_input", "cnn_inference_model_info", "params:inference.cnn"],
                "cnn_inference_predictions",
                name="predict_images",
            )
        ]
    )


def create_rnn_pipeline(**kwargs) -> Pipeline:
    """Sentences (text lines or parquet ``sentence``) → polarity predictions from the registered RNN."""
    return pipeline(
        _load_and_check("rnn", load_rnn_model)
        + [
            node(
                predict_sentences,
                ["rnn_inference_model", "rnn_inference_checked_input", "rnn_inference_model_info",
                 "params:inference.rnn"],
                "rnn_inference_predictions",
                name="predict_sentences",
            )
        ]
    )
