"""``ingestion``: raw images (IDX files or your own folder) → image tables per split + leakage check + data summary."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import find_image_leakage, image_data_metrics, ingest_images, summarise_image_data

TABLES = ["image_train_intermediate", "image_val_intermediate", "image_test_intermediate"]
INDEX = "image_index_intermediate"  # every row's split, label (, path, sha256): the checks read this, not the pixels


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(ingest_images, ["image_raw", "params:images"], [*TABLES, "image_class_names", "image_ingestion_report", INDEX], name="ingest_images"),
            node(find_image_leakage, INDEX, "image_leakage", name="find_image_leakage"),
            node(
                summarise_image_data,
                [INDEX, "image_class_names", "image_ingestion_report", "image_leakage"],
                ["image_data_summary", "image_class_distribution_plot"],
                name="summarise_image_data",
            ),
            node(image_data_metrics, "image_data_summary", "image_data_metrics", name="log_image_data_metrics"),
        ],
        tags="ingestion",  # skipped when unchanged (dlflow.caching.runner); the metrics node, logging to MLflow, always runs
    )  # fmt: skip
