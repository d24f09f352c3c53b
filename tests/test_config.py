"""Parameter validation: the shipped files are valid, bad values name their key."""

from __future__ import annotations

import copy

import pytest
import yaml

from dlflow.config import parse, validate_parameters
from tests.conftest import REPO_ROOT


def shipped_cnn_params(env: str = "base") -> dict:
    text = (REPO_ROOT / "conf" / env / "parameters_cnn.yml").read_text()
    return yaml.safe_load(text)["cnn"]


@pytest.mark.parametrize("env", ["base", "test"])
def test_shipped_parameters_are_valid(env):
    parse("cnn", shipped_cnn_params(env))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("training", "lr"), -0.1, "cnn.training.lr"),
        (("training", "epochs"), 0, "cnn.training.epochs"),
        (("training", "optimizer"), "adagrad-ish", "cnn.training.optimizer"),
        (("data", "validation_fraction"), 1.5, "cnn.data.validation_fraction"),
        (("training", "lr_typo"), 0.1, "cnn.training.lr_typo"),
        (("unknown_block",), {}, "cnn.unknown_block"),
    ],
)
def test_bad_values_and_unknown_keys_name_the_key(path, value, message):
    params = copy.deepcopy(shipped_cnn_params())
    target = params
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        validate_parameters({"cnn": params})


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"conv_filters": 100, "conv_kernel": 4}, "conv_kernel must be odd"),
        ({"conv_filters": 100, "pooling": "last"}, "conv_filters needs pooling: max"),
        ({"conv_filters": -1}, "rnn.model.conv_filters"),
    ],
)
def test_a_convolution_over_the_rnn_states_is_checked_before_any_work(model, message):
    params = yaml.safe_load((REPO_ROOT / "conf" / "base" / "parameters_rnn.yml").read_text())["rnn"]
    params["model"].update(model)
    with pytest.raises(ValueError, match=message) as raised:
        validate_parameters({"rnn": params})
    assert "rnn.model" in str(raised.value)
