"""Under ``torchrun``, a rank other than 0 writes nothing into the project, yet loads every output as rank 0 does."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

from dlflow.io import ParquetShardsDataset, TokenIdsDataset
from dlflow.io.atomic import ParquetDataset
from dlflow.pipelines.text.nodes import build_text_corpus
from dlflow.sources.sharded_table import ShardedTable
from dlflow.text import TokenIds
from dlflow.tracking.hooks import SecondaryRankOutputsHook


def _pipeline() -> Pipeline:
    return Pipeline([node(lambda: None, inputs=None, outputs=["table", "corpus", "report"], name="produce")])


def _catalog(project: Path) -> DataCatalog:
    return DataCatalog(
        {
            "table": ParquetShardsDataset(filepath=str(project / "table"), lazy=True),
            "corpus": TokenIdsDataset(filepath=str(project / "corpus")),
            "report": ParquetDataset(filepath=str(project / "report.parquet")),
        }
    )


def test_rank_0_keeps_the_project_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    catalog = _catalog(tmp_path)
    before = {name: catalog[name] for name in ("table", "corpus", "report")}
    SecondaryRankOutputsHook().before_pipeline_run(_pipeline(), catalog)
    assert all(catalog[name] is dataset for name, dataset in before.items())


def test_rank_1_loads_what_rank_0_loads_and_writes_nothing_into_the_project(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the rank's own folder goes
    project = tmp_path / "project"
    catalog = _catalog(project)
    SecondaryRankOutputsHook().before_pipeline_run(_pipeline(), catalog)
    assert isinstance(catalog["report"], MemoryDataset)

    catalog.save("table", pd.DataFrame({"label": [1, 2, 3]}))
    assert isinstance(catalog.load("table"), ShardedTable)  # lazy, as on rank 0
    labelled = pd.DataFrame({"sentence": ["a fine film .", "a dull one ."], "label": [1, 0], "fold": [0, 1]})
    stream = build_text_corpus(labelled, None, None, None, None, ["labelled"], {}, None)
    catalog.save("corpus", stream)  # a token stream in, memory-mapped token ids out, as on rank 0
    corpus = catalog.load("corpus")
    assert isinstance(corpus, TokenIds) and corpus.n_tokens == 6
    assert not project.exists()  # both went to a folder of the rank's own
    (private,) = tmp_path.glob("dlflow-rank1-tables-*")
    assert {p.name for p in private.iterdir()} == {"table", "corpus"}
