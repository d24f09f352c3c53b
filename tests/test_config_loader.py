"""``--params`` under ``--env``: a block only conf/base defines is patched, not replaced (dlflow.config_loader)."""

from __future__ import annotations

from pathlib import Path

from dlflow.config_loader import ConfigLoader

PROJECT = Path(__file__).resolve().parents[1]


def _parameters(env: str, runtime_params: dict) -> dict:
    from dlflow.settings import CONFIG_LOADER_ARGS

    loader = ConfigLoader(str(PROJECT / "conf"), env=env, runtime_params=runtime_params, **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def test_a_base_only_block_keeps_its_other_keys():
    params = _parameters("test", {"images": {"image_size": 32}, "cache": {"enabled": False}})
    assert params["images"]["image_size"] == 32
    assert params["images"]["resize"] == "stretch" and params["images"]["on_bad_file"] == "fail"  # the base's, kept
    assert params["cache"] == {"enabled": False, "tags": ["ingestion", "preprocessing", "embeddings"]}


def test_a_block_the_environment_defines_is_still_the_environments_with_the_override():
    base = _parameters("test", {})
    params = _parameters("test", {"cnn": {"training": {"lr": 0.5}}})
    assert params["cnn"]["training"]["lr"] == 0.5
    assert params["cnn"]["training"]["epochs"] == base["cnn"]["training"]["epochs"]  # the test env's, not the base's
    assert params["text"] == base["text"]
