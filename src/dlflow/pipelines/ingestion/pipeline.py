"""``ingestion``: raw images (IDX files or your own folder) → image tables per split + leakage check + data summary."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import find_image_leakage, image_data_metrics, ingest_images, summarise_image_data

TABLES = ["image_train_intermediate", "image_val_intermediate", "image_test_intermediate"]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(ingest_images, ["image_raw", "params:images"], [*TABLES, "image_class_names", "image_ingestion_report"], name="ingest_images"),
            node(find_image_leakage, TABLES, "image_leakage", name="find_image_leakage"),
            node(
                summarise_image_data,
                [*TABLES, "image_class_names", "image_ingestion_report", "image_leakage"],
                ["image_data_summary", "image_class_distribution_plot"],
                name="summarise_image_data",
            ),
            node(image_data_metrics, "image_data_summary", "image_data_metrics", name="log_image_data_metrics"),
        ],
        tags="ingestion",  # skipped when unchanged (dlflow.caching.runner); the metrics node, logging to MLflow, always runs
    )  # fmt: skip
