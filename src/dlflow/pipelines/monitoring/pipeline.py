"""Monitoring's nodes, wired into the family pipelines (the profile) and the batch-inference pipelines (the judgement)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import judge_batch, keep_feedback, profile_images, profile_sentences


def create_profile_pipeline(family: str, stage: str = "") -> Pipeline:
    """``<family>_<stage>reference_profile``: made from the servable ``<family>_<stage>package`` and held-out test
    records (``<family>_<stage>test_predictions``), before registration; ``stage``: ``""`` or ``"tuned_"``."""
    package, predictions, output = (
        f"{family}_{stage}package",
        f"{family}_{stage}test_predictions",
        f"{family}_{stage}reference_profile",
    )
    if family == "cnn":
        inputs = [package, "cnn_test_split", predictions, "image_class_names", "params:monitoring"]
        return pipeline([node(profile_images, inputs, output, name=f"profile_{stage}cnn", tags="monitoring")])
    if family == "rnn":
        inputs = [
            package, "labelled_sentences", predictions, "text_class_names", "params:rnn.evaluation.test_fold", "params:monitoring"
        ]  # fmt: skip
        return pipeline([node(profile_sentences, inputs, output, name=f"profile_{stage}rnn", tags="monitoring")])
    raise ValueError(f"no reference profile for family {family!r}")


def create_judge_pipeline(family: str) -> Pipeline:
    """What ``<family>_batch_observations`` (filled while the predictions were written) says against the profile."""
    return pipeline(
        [
            node(
                judge_batch,
                [f"{family}_batch_observations", f"{family}_champion", "params:monitoring"],
                [f"{family}_drift_metrics", f"{family}_drift_checks", f"{family}_drift_report", f"{family}_monitoring_step", f"{family}_drift_alert"],
                name=f"judge_{family}_batch",
                tags="monitoring",
            ),
            node(
                keep_feedback,
                [f"{family}_inference_input", f"{family}_batch_observations"],
                f"{family}_feedback",
                name=f"keep_{family}_feedback",
                tags="monitoring",
            ),
        ]
    )  # fmt: skip
