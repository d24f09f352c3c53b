"""The pipelines a user can run: ``kedro run --pipeline <name>``."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from dlflow.pipelines import cnn, ingestion


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = {
        "ingestion": ingestion.create_pipeline(),
        "cnn": cnn.create_pipeline(),
    }
    pipelines["__default__"] = pipelines["cnn"]
    return pipelines
