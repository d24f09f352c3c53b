"""The search space, its validation against the family's parameters, and the pruning callback (no Kedro)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import optuna
import pytest
import yaml

from dlflow.config import TuningParams, validate_parameters
from dlflow.training.history import EpochRecord, FitResult
from dlflow.tuning.checks import validate_search_spaces
from dlflow.tuning.space import kedro_params, overlay, suggest
from dlflow.tuning.storage import redacted, storage_url
from dlflow.tuning.study import PruningCallback, trial_value
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def params() -> dict:
    """The base parameters of cnn, rnn and tuning, as Kedro would resolve them (interpolations filled in)."""
    found = {}
    for name in ("cnn", "rnn", "tuning"):
        text = (REPO_ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text()
        found |= yaml.safe_load(text.replace("${runtime_params:image_source,${globals:image_source}}", "fashion_mnist"))
    return found


def _with_space(params: dict, family: str, space: dict) -> dict:
    changed = copy.deepcopy(params)
    changed["tuning"][family]["space"] = space
    return changed


def test_the_shipped_search_spaces_are_valid(params: dict) -> None:
    validate_parameters(params)
    validate_search_spaces(params)
    tuning = TuningParams.model_validate(params["tuning"])
    assert "training.lr" in tuning.cnn.space and "model.options.dropout" in tuning.cnn.space  # nested → dotted
    assert tuning.cnn.sampler.type == "tpe" and tuning.cnn.sampler.seed == 42


@pytest.mark.parametrize(
    ("family", "space", "message"),
    [
        ("cnn", {"training.learning_rate": {"type": "float", "low": 0.1, "high": 1}}, r"tuning\.cnn\.space\.training\.learning_rate: unknown parameter cnn\.training\.learning_rate"),
        ("cnn", {"training": {"lr": {"type": "float", "low": -1, "high": 1}}}, r"tuning\.cnn\.space\.training\.lr: -1\.0 is refused .*cnn\.training\.lr: Input should be greater than 0"),
        ("cnn", {"training.optimizer": {"type": "categorical", "choices": ["adam", "lbfgs"]}}, r"tuning\.cnn\.space\.training\.optimizer: 'lbfgs' is refused"),
        ("cnn", {"data.split_seed": {"type": "int", "low": 1, "high": 3}}, r"tuning\.cnn\.space\.data\.split_seed: cnn\.data is not tunable"),
        ("cnn", {"model.options.width": {"type": "int", "low": 1, "high": 3}}, r"unknown parameter cnn\.model\.options\.width"),
        ("rnn", {"model.dropout": {"type": "float", "low": 0.2, "high": 1.0}}, r"tuning\.rnn\.space\.model\.dropout: 1\.0 is refused .*rnn\.model\.dropout"),
        ("rnn", {"training.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, r"tuning\.rnn\.space\.training\.lr.*log scale needs low > 0"),
        ("rnn", {"model.hidden_size": {"type": "int", "low": 10, "high": 20, "choices": [1]}}, r"tuning\.rnn\.space\.model\.hidden_size.*no choices"),
    ],
)  # fmt: skip
def test_a_bad_space_is_refused_naming_the_key(params: dict, family: str, space: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_search_spaces(_with_space(params, family, space))


def test_a_study_needs_a_budget_and_a_direction_that_fits_its_metric(params: dict) -> None:
    changed = copy.deepcopy(params)
    changed["tuning"]["cnn"] |= {"n_trials": None, "timeout_minutes": None}
    with pytest.raises(ValueError, match="needs a budget"):
        validate_parameters(changed)
    changed["tuning"]["cnn"] |= {"n_trials": 3, "metric": "val_loss", "direction": "maximize"}
    with pytest.raises(ValueError, match="val_loss is to minimize"):
        validate_parameters(changed)


def test_trial_values_are_laid_over_a_copy_and_reproduced_by_a_params_string() -> None:
    base = {"training": {"lr": 0.1, "epochs": 2}, "model": {"options": {}}}
    merged = overlay(base, {"training.lr": 0.003, "model.options.dropout": 0.25})
    assert merged == {"training": {"lr": 0.003, "epochs": 2}, "model": {"options": {"dropout": 0.25}}}
    assert base["training"]["lr"] == 0.1 and base["model"]["options"] == {}
    values = {"training.lr": 0.003, "model.cell": "gru", "augmentation.horizontal_flip": False, "training.batch_size": 128}
    assert kedro_params("cnn", values) == (
        "cnn.augmentation.horizontal_flip=false,cnn.model.cell=gru,cnn.training.batch_size=128,cnn.training.lr=0.003"
    )


def test_suggest_draws_each_kind_within_its_range() -> None:
    tuning = TuningParams.model_validate(
        {
            "cnn": {
                "study_name": "s",
                "n_trials": 1,
                "space": {
                    "training": {
                        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                        "batch_size": {"type": "categorical", "choices": [64, 128]},
                        "epochs": {"type": "int", "low": 2, "high": 6, "step": 2},
                    }
                },
            }
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = suggest(trial, tuning.cnn.space)
        assert 1e-4 <= values["training.lr"] <= 1e-2 and values["training.batch_size"] in (64, 128)
        assert values["training.epochs"] in (2, 4, 6)
        study.tell(trial, 0.0)
    assert isinstance(study.trials[0].distributions["training.lr"], optuna.distributions.FloatDistribution)
    assert study.trials[0].distributions["training.lr"].log


def _record(epoch: int, val_accuracy: float, val_loss: float = 1.0) -> EpochRecord:
    return EpochRecord(epoch, 1.0, 0.5, val_loss, val_accuracy, 0.01, 1.0, 100.0)


def test_the_pruning_callback_reports_validated_epochs_and_stops_a_losing_trial() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    good = study.ask()
    callback = PruningCallback(good, "val_accuracy")
    for epoch in (1, 2):
        callback.on_epoch_end(_record(epoch, 0.8), None)
    study.tell(good, 0.8)
    bad = study.ask()
    callback = PruningCallback(bad, "val_accuracy")
    callback.on_epoch_end(_record(1, math.nan), None)  # not validated: not reported, not judged
    with pytest.raises(optuna.TrialPruned, match="val_accuracy 0.1000 at epoch 2"):
        callback.on_epoch_end(_record(2, 0.1), None)
    assert study._storage.get_trial(bad._trial_id).intermediate_values == {2: 0.1}


def test_the_trial_value_is_that_of_the_weights_fit_returned() -> None:
    history = [_record(1, 0.5, 0.9), _record(2, math.nan, math.nan), _record(3, 0.7, 0.8)]
    assert trial_value(FitResult(None, history, 3, False, 0, 1.0), "val_accuracy", False) == 0.7  # the last validated
    early = [_record(1, 0.6, 0.5), _record(2, 0.55, 0.7)]
    assert trial_value(FitResult(None, early, 1, True, 0, 1.0), "val_loss", True) == 0.5  # early stopping restored epoch 1
    assert trial_value(FitResult(None, early, 1, False, 0, 1.0), "val_accuracy", True) == 0.6  # restored though not stopped
    assert trial_value(FitResult(None, early, 1, False, 0, 1.0), "val_accuracy", False) == 0.55


def test_the_study_lives_beside_the_mlflow_store_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    tuning = TuningParams()
    monkeypatch.delenv("DLFLOW_TUNING_STORAGE", raising=False)
    assert storage_url(tuning, "sqlite:////srv/mlruns/mlflow.db", Path("/p")) == "sqlite:////srv/mlruns/optuna.db"
    assert storage_url(tuning, "http://mlflow:5000", Path("/p")) == "sqlite:////p/mlruns/optuna.db"
    monkeypatch.setenv("DLFLOW_TUNING_STORAGE", "postgresql://u:secret@db:5432/optuna")
    assert storage_url(tuning, "sqlite:////srv/mlruns/mlflow.db", Path("/p")) == "postgresql://u:secret@db:5432/optuna"
    assert storage_url(TuningParams(storage="sqlite:////x.db"), "http://m", Path("/p")) == "sqlite:////x.db"
    assert redacted("postgresql://u:secret@db:5432/optuna") == "postgresql://u:***@db:5432/optuna"


@pytest.fixture
def mlflow_store(tmp_path: Path):
    """An SQLite MLflow store in ``tmp_path`` for this test; the earlier tracking URI afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield
    mlflow.set_tracking_uri(previous)


def test_a_failing_trial_is_failed_in_its_child_run_and_three_in_a_row_stop_the_worker(mlflow_store) -> None:
    import mlflow

    from dlflow.tuning.study import Objective, run_worker

    study_params = TuningParams.model_validate(
        {"cnn": {"study_name": "failing", "n_trials": 10, "space": {"training.lr": {"type": "float", "low": 0.1, "high": 1}}}}
    ).cnn

    def train(params, callbacks, checkpoint_dir):
        raise FloatingPointError(f"loss is NaN at lr {params['training']['lr']:.2f}")

    study = optuna.create_study(direction="maximize")
    with mlflow.start_run() as parent:
        with pytest.raises(RuntimeError, match=r"3 trials in a row failed on this worker; the last with: FloatingPointError"):
            run_worker(study, Objective(study_params, {"training": {"lr": 0.5}}, train), n_trials=10, timeout_seconds=None)
        assert mlflow.active_run().info.run_id == parent.info.run_id  # the parent is active again
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list")
    assert sorted(r.data.tags["optuna.state"] for r in children) == ["FAIL"] * 3
    assert {r.info.status for r in children} == {"FAILED"}


def test_samplers_and_pruners_are_built_from_their_yaml() -> None:
    from dlflow.config import PrunerParams, SamplerParams
    from dlflow.tuning.storage import make_pruner, make_sampler

    assert isinstance(make_sampler(SamplerParams()), optuna.samplers.TPESampler)
    assert isinstance(make_sampler(SamplerParams(type="random", seed=None)), optuna.samplers.RandomSampler)
    assert isinstance(make_pruner(PrunerParams()), optuna.pruners.MedianPruner)
    assert isinstance(
        make_pruner(PrunerParams(type="hyperband", min_resource=1, reduction_factor=2)), optuna.pruners.HyperbandPruner
    )
    assert isinstance(make_pruner(PrunerParams(type="none")), optuna.pruners.NopPruner)
    draws = [optuna.create_study(sampler=make_sampler(SamplerParams(seed=7))).ask().suggest_float("x", 0, 1) for _ in range(2)]
    assert draws[0] == draws[1]  # seeded: the same first trial every time


def test_the_first_trial_repeats_the_configured_recipe_where_the_space_has_it(params: dict) -> None:
    from dlflow.tuning.space import configured_values
    from dlflow.tuning.study import enqueue_configured_values

    space = TuningParams.model_validate(params["tuning"]).rnn.space
    rnn = params["rnn"] | {"model": params["rnn"]["model"] | {"cell": "rnn"}}  # not a choice: sampled
    assert configured_values(space, rnn) == {
        "training.lr": 0.001,
        "model.hidden_size": 72,
        "model.dropout": 0.5,
        "model.conv_filters": 100,
        "adversarial.epsilon": 1.0,
    }
    off_grid = rnn | {"model": rnn["model"] | {"hidden_size": 121}}  # between the steps of 8
    assert "model.hidden_size" not in configured_values(space, off_grid)
    study = optuna.create_study(direction="maximize")
    enqueue_configured_values(study, space, rnn)
    trial = study.ask()
    assert suggest(trial, space) | {"model.cell": None} == {
        "training.lr": 0.001,
        "model.hidden_size": 72,
        "model.dropout": 0.5,
        "model.conv_filters": 100,
        "adversarial.epsilon": 1.0,
        "model.cell": None,
    }


def test_a_study_without_a_complete_trial_yet_still_gets_its_report() -> None:
    from dlflow.tuning.report import best_summary, study_metrics, study_plots, trials_table

    study = optuna.create_study(study_name="early", direction="maximize")
    study.ask()  # another worker's trial, still running
    summary = best_summary(study, "cnn", "val_accuracy")
    assert summary["best_trial"] is None and summary["trials"] == {"running": 1}
    assert study_metrics(summary) == {"tuning_trials_complete": 0.0, "tuning_trials_pruned": 0.0, "tuning_trials_fail": 0.0}
    assert trials_table(study)["state"].tolist() == ["RUNNING"]
    assert set(study_plots(study)) == {"optimization_history", "parallel_coordinate", "param_importances"}
