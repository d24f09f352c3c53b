"""Skipping unchanged nodes: what reruns after a parameter, input or code change, and what does not."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node
from kedro_datasets.json import JSONDataset

from dlflow.caching.fingerprints import code_digest
from dlflow.caching.runner import REUSED_TAG, SkipUnchangedRunner
from dlflow.io.folder import FolderDataset
from tests.conftest import run_pipeline

PROBE = "dlflow._runner_probe"
HELPER = "dlflow._runner_probe_helper"


def _write_module(folder: Path, name: str, source: str):
    """Write ``dlflow.<name>`` into ``folder`` (on the package path) and (re)import it."""
    (folder / f"{name.rsplit('.', 1)[1]}.py").write_text(textwrap.dedent(source))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


@pytest.fixture
def probe_modules(tmp_path, monkeypatch):
    """Two throw-away project modules: ``scale`` (a node) uses ``factor`` from the helper."""
    import dlflow

    monkeypatch.setattr(dlflow, "__path__", [*dlflow.__path__, str(tmp_path)])
    _write_module(tmp_path, HELPER, "def factor():\n    return 2\n")
    probe = _write_module(
        tmp_path, PROBE,
        """
        from dlflow._runner_probe_helper import factor

        def scale(values, params):
            return [v * factor() + params["offset"] for v in values]

        def total(values):
            return {"total": sum(values)}
        """,
    )  # fmt: skip
    yield tmp_path, probe
    for name in (PROBE, HELPER):
        sys.modules.pop(name, None)


def _pipeline(probe) -> Pipeline:
    return Pipeline(
        [
            node(probe.scale, ["raw", "params:step"], "scaled", name="scale", tags="preprocessing"),
            node(probe.total, "scaled", "summary", name="total", tags="preprocessing"),
        ]
    )


def _catalog(folder: Path, offset: int = 0, cache: dict | None = None) -> DataCatalog:
    catalog = DataCatalog({name: JSONDataset(filepath=str(folder / f"{name}.json")) for name in ("raw", "scaled", "summary")})
    catalog["params:step"] = {"offset": offset}
    catalog["params:cache"] = cache or {}
    catalog["node_cache"] = FolderDataset(str(folder / "cache"))  # the records' folder, as conf/base/catalog.yml names it
    return catalog


def _ran(caplog) -> list[str]:
    """Node names that ran in the last run, from Kedro's log."""
    ran = [
        r.getMessage().removeprefix("Running node: ").split(":")[0]
        for r in caplog.records
        if r.getMessage().startswith("Running node: ")
    ]
    caplog.clear()
    return ran


@pytest.fixture
def data(tmp_path, caplog):
    """The data folder of a first run: ``raw.json`` holds [1, 2, 3]; INFO logs are captured."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "raw.json").write_text("[1, 2, 3]")
    caplog.set_level("INFO")
    return folder


def test_only_what_changed_reruns(probe_modules, data, caplog):
    folder, probe = probe_modules
    runner = SkipUnchangedRunner()

    runner.run(_pipeline(probe), _catalog(data))
    assert _ran(caplog) == ["scale", "total"]
    assert json.loads((data / "summary.json").read_text()) == {"total": 12}

    runner.run(_pipeline(probe), _catalog(data))  # nothing changed
    assert _ran(caplog) == []

    runner.run(_pipeline(probe), _catalog(data, offset=1))  # a parameter
    assert _ran(caplog) == ["scale", "total"]
    assert json.loads((data / "summary.json").read_text()) == {"total": 15}

    (data / "raw.json").write_text("[1, 2, 4]")  # an input
    runner.run(_pipeline(probe), _catalog(data, offset=1))
    assert _ran(caplog) == ["scale", "total"]

    probe = _write_module(folder, PROBE, (folder / "_runner_probe.py").read_text().replace("sum(values)", "max(values)"))
    runner.run(_pipeline(probe), _catalog(data, offset=1))  # the node's code: only `total` reruns
    assert _ran(caplog) == ["total"]
    assert json.loads((data / "summary.json").read_text()) == {"total": 9}

    _write_module(folder, HELPER, "def factor():\n    return 3\n")  # a project module the node uses
    probe = _write_module(folder, PROBE, (folder / "_runner_probe.py").read_text())
    runner.run(_pipeline(probe), _catalog(data, offset=1))
    assert _ran(caplog) == ["scale", "total"]
    assert json.loads((data / "summary.json").read_text()) == {"total": 13}


def test_a_missing_or_edited_output_is_rebuilt_and_the_cache_can_be_switched_off(probe_modules, data, caplog):
    _, probe = probe_modules
    runner = SkipUnchangedRunner()
    runner.run(_pipeline(probe), _catalog(data))
    _ran(caplog)

    (data / "summary.json").unlink()
    runner.run(_pipeline(probe), _catalog(data))
    assert _ran(caplog) == ["total"]

    (data / "scaled.json").write_text("[0]")  # edited by hand: not what the record vouches for
    runner.run(_pipeline(probe), _catalog(data))
    assert _ran(caplog) == ["scale", "total"]  # decided before the run: what follows a rerun node reruns
    assert json.loads((data / "scaled.json").read_text()) == [2, 4, 6]

    runner.run(_pipeline(probe), _catalog(data, cache={"enabled": False}))
    assert _ran(caplog) == ["scale", "total"]
    runner.run(_pipeline(probe), _catalog(data, cache={"tags": ["training"]}))  # these nodes are not cacheable then
    assert _ran(caplog) == ["scale", "total"]


def test_code_digest_follows_the_project_modules_a_node_uses(probe_modules):
    folder, probe = probe_modules
    before = code_digest(probe.scale)
    assert code_digest(probe.scale) == before
    _write_module(folder, HELPER, "def factor():\n    return 2  # same result, other code\n")
    probe = _write_module(folder, PROBE, (folder / "_runner_probe.py").read_text())
    assert code_digest(probe.scale) != before


@pytest.mark.e2e
def test_a_second_cnn_run_reuses_ingestion_and_preprocessing_and_says_so_in_mlflow(kedro_project):
    run_pipeline("cnn", tags=["ingestion", "preprocessing"])
    run_pipeline("cnn", tags=["ingestion", "preprocessing"])
    client = mlflow.MlflowClient()
    first, second = sorted(
        client.search_runs([client.get_experiment_by_name("dlflow/cnn").experiment_id]), key=lambda r: r.info.start_time
    )
    reused = {key.removeprefix(REUSED_TAG): value for key, value in second.data.tags.items() if key.startswith(REUSED_TAG)}
    assert set(reused) == {
        "ingest_images", "find_image_leakage", "summarise_image_data",
        "split_train_validation", "select_test_images", "compute_normalisation",
    }  # fmt: skip
    assert set(reused.values()) == {first.info.run_id}
    assert not any(key.startswith(REUSED_TAG) for key in first.data.tags)


@pytest.mark.e2e
def test_nodes_rerun_only_for_the_parameters_they_read(kedro_project):
    """Each CNN node reads only its own parameter block: a learning rate leaves the data nodes alone,
    a new split seed reruns the split and what depends on it, not ingestion."""
    data_nodes = ["ingestion", "preprocessing"]
    run_pipeline("cnn", tags=data_nodes)
    run_pipeline("cnn", tags=data_nodes, **{"cnn.training.lr": 0.01})
    run_pipeline("cnn", tags=data_nodes, **{"cnn.data.split_seed": 7})
    client = mlflow.MlflowClient()
    first, new_lr, new_seed = sorted(
        client.search_runs([client.get_experiment_by_name("dlflow/cnn").experiment_id]), key=lambda r: r.info.start_time
    )

    def reused(run) -> set[str]:
        return {key.removeprefix(REUSED_TAG) for key in run.data.tags if key.startswith(REUSED_TAG)}

    ingestion = {"ingest_images", "find_image_leakage", "summarise_image_data"}  # log_image_data_metrics logs: never skipped
    preprocessing = {"split_train_validation", "select_test_images", "compute_normalisation"}
    assert reused(new_lr) == ingestion | preprocessing
    assert reused(new_seed) == ingestion  # the split, the test selection (both read cnn.data) and the statistics rerun


@pytest.mark.e2e
def test_an_rnn_training_parameter_reuses_the_text_preprocessing_and_the_vectors(kedro_project):
    """The text and Word2Vec nodes read only their own parameters: a new RNN recipe reuses all of them;
    a new vocabulary threshold reruns the vocabulary and the vectors, not the folds or the corpus."""
    text_nodes = ["preprocessing", "embeddings"]  # the rnn pipeline's text preprocessing and Word2Vec
    run_pipeline("rnn", tags=text_nodes)
    run_pipeline("rnn", tags=text_nodes, **{"rnn.training.lr": 0.01, "rnn.model.hidden_size": 16})
    run_pipeline("rnn", tags=text_nodes, **{"text.vocabulary.min_count": 4})
    client = mlflow.MlflowClient()
    first, new_recipe, new_vocabulary = sorted(
        client.search_runs([client.get_experiment_by_name("dlflow/rnn").experiment_id]), key=lambda r: r.info.start_time
    )

    def reused(run) -> set[str]:
        return {key.removeprefix(REUSED_TAG) for key in run.data.tags if key.startswith(REUSED_TAG)}

    assert reused(first) == set()
    assert reused(new_recipe) == {"prepare_labelled_sentences", "build_text_corpus", "build_vocabulary", "train_word2vec"}
    assert reused(new_vocabulary) == {"prepare_labelled_sentences", "build_text_corpus"}
