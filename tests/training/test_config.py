"""The recipe: ``TrainConfig`` is the typed ``TrainingParams``, one place for fields, defaults and checks."""

from __future__ import annotations

import pytest

from dlflow.config import CnnParams, RnnParams, TrainingParams, parse
from dlflow.training import TrainConfig

VALID = dict(epochs=1, batch_size=8, lr=1e-3)


def test_train_config_is_the_typed_parameters():
    assert TrainConfig is TrainingParams
    assert CnnParams.model_fields["training"].annotation is TrainConfig
    assert RnnParams.model_fields["training"].annotation is TrainConfig


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("eval_batch_size", 0),
        ("optimizer", "rmsprop"),
        ("lr", 0.0),
        ("weight_decay", -1.0),
        ("momentum", 1.0),
        ("schedule", "linear"),
        ("label_smoothing", 1.0),
        ("max_grad_norm", -1.0),
        ("early_stopping_patience", 0),
        ("validate_every", 0),
        ("device", "tpu"),
        ("processes", 0),
        ("num_threads", 0),
        ("bucket_by_feature", -1),
        ("lr_typo", 0.1),
    ],
)
def test_a_bad_value_fails_at_once_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"(?m)^{field}\n"):
        TrainConfig(**VALID | {field: value})


def test_the_recipe_states_epochs_batch_size_and_lr():
    with pytest.raises(ValueError, match=r"(?s)epochs\n  Field required.*lr\n  Field required"):
        TrainConfig(batch_size=8)


def test_processes_may_not_exceed_the_batch_size():
    with pytest.raises(ValueError, match=r"processes \(4\) must not exceed batch_size \(2\)"):
        TrainConfig(**VALID | dict(batch_size=2, processes=4))
    with pytest.raises(ValueError, match=r"rnn\.training: .*processes \(4\) must not exceed batch_size \(2\)"):
        parse("rnn", {"training": VALID | dict(batch_size=2, processes=4), "registration": {"model_name": "m"}})


def test_one_set_of_defaults():
    config = TrainConfig(**VALID)
    assert (config.optimizer, config.schedule, config.device, config.processes, config.eval_batch_size) == (
        "adamw", "constant", "auto", 1, 1024,
    )  # fmt: skip
    with pytest.raises(ValueError, match="frozen"):
        config.lr = 1.0  # type: ignore[misc]
