"""Checkpoint files: atomic writes, safe loading, and the run key's data fingerprint."""

import os

import pytest
import torch

from dlflow.training.checkpoint import load_checkpoint, save_checkpoint, tensor_fingerprint


def test_save_is_atomic_and_loads_with_weights_only(tmp_path):
    path = tmp_path / "run" / "last.pt"
    save_checkpoint({"epoch": 1, "weights": torch.ones(3), "history": [{"loss": 0.5}]}, path)
    save_checkpoint({"epoch": 2, "weights": torch.zeros(3), "history": []}, path)
    assert os.listdir(path.parent) == ["last.pt"]
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 2 and torch.equal(loaded["weights"], torch.zeros(3))


def test_a_failed_write_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)
    with pytest.raises(Exception):
        save_checkpoint({"epoch": 2, "unpicklable": lambda: None}, path)
    assert os.listdir(tmp_path) == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_missing_checkpoint_is_none(tmp_path):
    assert load_checkpoint(tmp_path / "last.pt") is None


def test_fingerprint_sees_shape_dtype_and_values():
    x = torch.arange(100_000, dtype=torch.float32)
    assert tensor_fingerprint(x) == tensor_fingerprint(x.clone())
    changed = x.clone()
    changed[0] = -1
    assert tensor_fingerprint(changed) != tensor_fingerprint(x)
    assert tensor_fingerprint(x.view(1000, 100)) != tensor_fingerprint(x)
    assert tensor_fingerprint(x.double()) != tensor_fingerprint(x)
