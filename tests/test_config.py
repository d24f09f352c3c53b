"""Parameter validation: the shipped files are valid, bad values name their key."""

from __future__ import annotations

import copy
from pathlib import Path

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


def test_one_word2vec_config_checks_the_yaml_and_the_code_alike():
    from dlflow.config import Word2VecTrainingParams
    from dlflow.training.word2vec import Word2VecConfig

    assert Word2VecConfig is Word2VecTrainingParams
    shipped = yaml.safe_load((REPO_ROOT / "conf" / "base" / "parameters_word2vec.yml").read_text())["word2vec"]
    parse("word2vec", shipped)
    assert Word2VecConfig(**shipped["training"]).mode == "skipgram"
    for field, value in [("sample", 1.0), ("batch_words", 0), ("min_alpha", 1.0)]:
        with pytest.raises(ValueError, match=rf"word2vec\.training\.{field}:"):
            parse("word2vec", shipped | {"training": shipped["training"] | {field: value}})
        with pytest.raises(ValueError, match=rf"\n{field}\n"):
            Word2VecConfig(**shipped["training"] | {field: value})
    with pytest.raises(ValueError, match=r"word2vec\.training\.engine: .*CPU only"):
        parse("word2vec", shipped | {"training": shipped["training"] | {"engine": "kernel", "device": "cuda"}})


def test_the_parameters_import_nothing_of_dlflow():
    """``dlflow.config`` is the bottom layer: not even a function or a type-checking block imports the package."""
    import ast

    import dlflow.config

    tree = ast.parse(Path(dlflow.config.__file__).read_text())
    imported = []
    for node in ast.walk(tree):  # every import, in functions and TYPE_CHECKING blocks too
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append("." * node.level + (node.module or ""))
    assert "pydantic" in imported
    assert [name for name in imported if name.split(".")[0] in ("dlflow", "")] == []  # "": a relative import
