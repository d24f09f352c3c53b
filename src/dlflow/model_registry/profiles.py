"""A model's reference profile for monitoring, logged beside it on its training run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlflow.monitoring.profile import ReferenceProfile

PROFILE_ARTIFACT = "monitoring/{family}/reference_profile.npz"


def log_reference_profile(profile: ReferenceProfile, run_id: str, family: str) -> str:
    """Log ``profile`` to the run ``run_id`` as :data:`PROFILE_ARTIFACT`; its ``runs:/`` URI (the version's tag)."""
    from mlflow.tracking import MlflowClient

    artifact = PROFILE_ARTIFACT.format(family=family)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, Path(artifact).name)
        profile.save(path)
        MlflowClient().log_artifact(run_id, str(path), str(Path(artifact).parent))
    return f"runs:/{run_id}/{artifact}"
