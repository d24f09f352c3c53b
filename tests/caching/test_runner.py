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
from kedro_mlflow.io.artifacts import MlflowArtifactDataset

from dlflow.caching.fingerprints import code_digest
from dlflow.caching.runner import SkipUnchangedRunner
from dlflow.io.folder import FolderDataset
from dlflow.tracking import reuse
from dlflow.tracking.context import RUN_CONTEXT, RunContext, RunContextDataset
from dlflow.tracking.reuse import REUSED_TAG
from tests.conftest import new_mlflow_store, run_pipeline

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


def _logging_catalog(folder: Path, run_id: str) -> DataCatalog:
    """``_catalog``, its outputs logged as artifacts (``scaled`` under ``probe/``, ``summary`` at the root)
    as conf/base/catalog.yml logs them, and the run's ``run_context``."""
    catalog = _catalog(folder)
    for name, artifact_path in (("scaled", "probe"), ("summary", None)):
        dataset = {"type": "json.JSONDataset", "filepath": str(folder / f"{name}.json")}
        catalog[name] = MlflowArtifactDataset(dataset=dataset, artifact_path=artifact_path)
    catalog[RUN_CONTEXT] = RunContextDataset(RunContext(run_id, mlflow.get_tracking_uri(), folder))
    return catalog


def test_a_run_that_reuses_nodes_holds_their_artifacts_or_links_them(
    probe_modules, data, tmp_path, monkeypatch, empty_mlflow_store
):
    """Skipped nodes' artifacts are copied into the new run (a link in its description when over the size
    limit), and its description names the nodes and the run that produced them."""
    _, probe = probe_modules
    mlflow.set_tracking_uri(new_mlflow_store(empty_mlflow_store, tmp_path / "mlflow.db", tmp_path / "mlruns" / "0"))
    experiment_id = mlflow.create_experiment("probe", artifact_location=str(tmp_path / "artifacts"))
    client = mlflow.MlflowClient()

    def run(description: str) -> str:
        with mlflow.start_run(experiment_id=experiment_id, description=description) as active:
            SkipUnchangedRunner().run(_pipeline(probe), _logging_catalog(data, active.info.run_id))
        return active.info.run_id

    def artifacts(run_id: str, folder: str = "") -> dict[str, int]:
        return {info.path: info.file_size for info in client.list_artifacts(run_id, folder) if not info.is_dir}

    (data / "raw.json").write_text("[1, 2, 3, 4, 5]")  # scaled.json, a longer list, is larger than summary.json
    first = run("The first run.")
    logged = artifacts(first) | artifacts(first, "probe")
    assert set(logged) == {"summary.json", "probe/scaled.json"}

    second = run("The second run.")
    assert artifacts(second) | artifacts(second, "probe") == logged  # copied
    for path in logged:
        assert (
            Path(client.download_artifacts(second, path, str(tmp_path / "second"))).read_bytes()
            == (data / Path(path).name).read_bytes()
        )
    tags = client.get_run(second).data.tags
    assert {key: value for key, value in tags.items() if key.startswith(REUSED_TAG)} == {
        REUSED_TAG + "scale": first,
        REUSED_TAG + "total": first,
    }
    page = f"#/experiments/{experiment_id}/runs/{first}"
    assert tags["mlflow.note.content"].startswith("The second run.\n\n**Reused**")
    assert (
        f"- `scale`, `total` from run [{client.get_run(first).info.run_name}]({page}) (`{first}`)" in tags["mlflow.note.content"]
    )

    assert logged["summary.json"] < logged["probe/scaled.json"]
    monkeypatch.setattr(reuse, "COPY_LIMIT_BYTES", logged["summary.json"])  # the smaller file is copied, the other linked
    third = run("The third run.")
    assert set(artifacts(third) | artifacts(third, "probe")) == {"summary.json"}
    description = client.get_run(third).data.tags["mlflow.note.content"]
    assert f"[probe/scaled.json]({page}/artifacts/probe/scaled.json)" in description
    assert "summary.json" not in description


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
    a new vocabulary threshold reruns the vocabulary and the vectors, not the folds or the corpus.
    A ``word2vec`` run after the first ``rnn`` run, same settings, reuses all of them too, and is complete
    on its own (one test, to pay for the first run once)."""
    text_nodes = ["preprocessing", "embeddings"]  # the rnn pipeline's text preprocessing and Word2Vec
    run_pipeline("rnn", tags=text_nodes)
    run_pipeline("word2vec", tags=text_nodes)
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
    (word2vec,) = client.search_runs([client.get_experiment_by_name("dlflow/word2vec").experiment_id])
    _assert_complete_on_its_own(word2vec, first, reused(new_recipe), kedro_project)


def _assert_complete_on_its_own(run, source, nodes: set[str], folder: Path) -> None:
    """``run`` reused ``nodes`` from ``source`` and still shows their outputs: tagged with their source,
    the artifacts they logged copied byte for byte, a description naming them and linking ``source``."""
    assert {key.removeprefix(REUSED_TAG): value for key, value in run.data.tags.items() if key.startswith(REUSED_TAG)} == {
        node: source.info.run_id for node in nodes
    }

    def files(run) -> dict[str, bytes]:
        root = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(folder / run.info.run_id)))
        return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}

    produced, reused = files(source), files(run)
    logged_by_the_nodes = {"word2vec/vectors.txt", "word2vec/training.json", "preprocessing/vocabulary.json"}
    assert logged_by_the_nodes <= set(produced)
    assert {path: reused.get(path) for path in logged_by_the_nodes} == {path: produced[path] for path in logged_by_the_nodes}

    description = run.data.tags["mlflow.note.content"]
    assert description.startswith("Word2Vec")  # the run's own description first, then what it reused
    assert f"(#/experiments/{source.info.experiment_id}/runs/{source.info.run_id})" in description
    assert all(f"`{node}`" in description for node in nodes)
