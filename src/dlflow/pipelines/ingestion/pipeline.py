"""``ingestion``: raw IDX files → validated parquet tables + data summary."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import build_test_table, build_train_table, list_class_names, summarise_image_data


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                build_train_table,
                ["image_train_images_raw", "image_train_labels_raw", "params:image_source"],
                "image_train_intermediate",
                name="validate_train_images",
            ),
            node(
                build_test_table,
                ["image_test_images_raw", "image_test_labels_raw", "params:image_source"],
                "image_test_intermediate",
                name="validate_test_images",
            ),
            node(list_class_names, "params:image_source", "image_class_names", name="list_class_names"),
            node(
                summarise_image_data,
                ["image_train_intermediate", "image_test_intermediate", "image_class_names"],
                ["image_data_summary", "image_class_distribution_plot"],
                name="summarise_image_data",
            ),
        ],
        tags="ingestion",  # skipped when unchanged (dlflow.caching.runner)
    )
