"""Custom Kedro datasets for formats kedro-datasets does not cover."""

from dlflow.io.idx_dataset import IdxDataset

__all__ = ["IdxDataset"]
