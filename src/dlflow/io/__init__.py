"""Custom Kedro datasets for formats kedro-datasets does not cover."""

from dlflow.io.fetched_file import FetchedFileDataset
from dlflow.io.idx_dataset import IdxDataset
from dlflow.io.inference_inputs import ImagesFileDataset, SentencesFileDataset
from dlflow.io.text_datasets import PolarityDataset, TextCorpusDataset
from dlflow.io.word2vec_format import Word2VecTextDataset

__all__ = [
    "FetchedFileDataset",
    "IdxDataset",
    "ImagesFileDataset",
    "SentencesFileDataset",
    "PolarityDataset",
    "TextCorpusDataset",
    "Word2VecTextDataset",
]
