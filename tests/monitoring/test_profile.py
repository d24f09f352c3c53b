"""The reference profile: stored and read back whole, made from a stratified part of the held-out records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlflow.monitoring.observations import Observations
from dlflow.monitoring.profile import ReferenceProfile, expected_calibration_error, held_out_quality, profile_rows


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=40)
    observed = Observations(("length", "oov_rate"), rng.random((40, 2)), probabilities, rng.random((40, 5)).astype(np.float32))
    quality = held_out_quality(rng.integers(0, 3, 40), probabilities, ["a", "b", "c"])
    return ReferenceProfile(
        "rnn", ["a", "b", "c"], observed, rng.integers(0, 3, 40), np.arange(0, 80, 2), quality, {"test_fold": 0}
    )


def test_a_profile_reads_back_as_it_was_saved(tmp_path: Path) -> None:
    profile = _profile()
    profile.save(tmp_path / "profile.npz")
    back = ReferenceProfile.load(tmp_path / "profile.npz")
    assert (back.family, back.class_names, back.test, back.about) == (
        profile.family,
        profile.class_names,
        profile.test,
        profile.about,
    )
    assert back.observations.input_names == profile.observations.input_names
    for name in ("inputs", "probabilities", "features"):
        np.testing.assert_array_equal(getattr(back.observations, name), getattr(profile.observations, name))
    np.testing.assert_array_equal(back.rows, profile.rows)
    (tmp_path / "other.npz").write_bytes(b"not a profile")
    with pytest.raises(ValueError, match="other.npz is not a dlflow reference profile"):
        ReferenceProfile.load(tmp_path / "other.npz")


def test_profile_rows_are_a_stratified_sorted_part() -> None:
    labels = np.repeat([0, 1, 2, 3], [400, 300, 200, 100])
    rows = profile_rows(labels, 500, seed=3)
    assert len(rows) == 500 and len(set(rows.tolist())) == 500 and (np.diff(rows) > 0).all()
    assert np.bincount(labels[rows]).tolist() == [200, 150, 100, 50]
    assert profile_rows(labels[:30], 500, seed=3).tolist() == list(range(30))
    assert profile_rows(labels, 500, seed=3).tolist() == rows.tolist()


def test_calibration_error_is_zero_when_confidence_matches_accuracy_and_large_when_not() -> None:
    probabilities = np.tile([0.75, 0.25], (8, 1))
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 1])  # 75 % right at 75 % confidence
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.0)
    assert expected_calibration_error(np.ones(8, int), probabilities) == pytest.approx(0.75)
