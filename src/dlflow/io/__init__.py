"""Custom Kedro datasets for formats kedro-datasets does not cover."""

from dlflow.io.chunked_parquet import ChunkedParquetDataset
from dlflow.io.fetched_file import FetchedFileDataset
from dlflow.io.idx_dataset import IdxDataset
from dlflow.io.image_source import ImageSourceDataset
from dlflow.io.inference_inputs import ImagesFileDataset, SentencesFileDataset
from dlflow.io.parquet_shards import ParquetShardsDataset
from dlflow.io.text_datasets import LabelledTextDataset, PolarityDataset, TextCorpusDataset
from dlflow.io.token_ids import TokenIdsDataset
from dlflow.io.word2vec_format import Word2VecTextDataset

__all__ = [
    "ChunkedParquetDataset",
    "FetchedFileDataset",
    "IdxDataset",
    "ImageSourceDataset",
    "ImagesFileDataset",
    "ParquetShardsDataset",
    "LabelledTextDataset",
    "SentencesFileDataset",
    "PolarityDataset",
    "TextCorpusDataset",
    "TokenIdsDataset",
    "Word2VecTextDataset",
]
