"""The run manifest: everything needed to know how a result was made, and to make it again.

Logged as ``manifest.json`` to every run: the git commit and a patch of the
uncommitted changes, Python and every installed package, torch with CUDA/cuDNN
and the device, seeds and determinism flags, the resolved parameters and the
digest of every input table.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from dlflow.tracking.lineage import git_state

MAX_PATCH_BYTES = 1_000_000


def _git_patch(path: str | Path) -> str:
    try:
        patch = subprocess.run(
            ["git", "diff", "HEAD", "--binary"], cwd=path, capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return patch if len(patch) <= MAX_PATCH_BYTES else patch[:MAX_PATCH_BYTES] + "\n[patch truncated]\n"


def _seeds(params: Any, prefix: str = "") -> dict[str, Any]:
    """Every parameter whose name ends in ``seed``, by dotted path."""
    if not isinstance(params, dict):
        return {}
    found = {}
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found |= _seeds(value, f"{path}.")
        elif str(key).endswith("seed"):
            found[path] = value
    return found


def environment() -> dict[str, Any]:
    """Python, packages, torch, accelerator and determinism flags of this process."""
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": dict(sorted((d.metadata["Name"].lower(), d.version) for d in distributions() if d.metadata["Name"])),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


REPRODUCIBLE_TAG = "dlflow.bit_reproducible"
#: How far a replay's metrics may differ when the run is not bit-reproducible: 2 % of the value
#: (2 points of accuracy), enough for the spread of lock-free Word2Vec (README, "Reproducibility").
REPLAY_TOLERANCE = 0.02


def reproducibility(node_names: set[str], params: dict[str, Any]) -> dict[str, Any]:
    """Whether a rerun of these nodes with these parameters gives bit-identical results, and if not why.

    Training in the shared loop is seeded and deterministic; Word2Vec is so only
    with ``word2vec.training.deterministic: true`` (one thread, about half the speed).
    """
    why_not = []
    training = params.get("word2vec", {}).get("training", {})
    if "train_word2vec" in node_names and not training.get("deterministic", False):
        why_not.append("word2vec vectors: lock-free multi-threaded training (word2vec.training.deterministic=false)")
    return {
        "bit_reproducible": not why_not,
        "why_not": why_not,
        "replay_tolerance": 0.0 if not why_not else REPLAY_TOLERANCE,
    }


def build_manifest(run_params: dict[str, Any], params: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    """The manifest of a finished pipeline run."""
    project = run_params.get("project_path") or "."
    return {
        "format": "dlflow.tracking.manifest/1",
        "pipeline_names": run_params.get("pipeline_names"),
        "env": run_params.get("env"),
        "git": git_state(project) | {"patch": _git_patch(project)},
        "environment": environment(),
        "seeds": _seeds(params),
        "parameters": params,
        "inputs": dict(sorted(inputs.items())),
    }


def environment_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two ``environment()`` records."""
    differences = [
        f"{key}: {recorded.get(key)} → {current.get(key)}"
        for key in sorted((set(recorded) | set(current)) - {"packages"})
        if recorded.get(key) != current.get(key)
    ]
    old, new = recorded.get("packages", {}), current.get("packages", {})
    differences += [
        f"package {name}: {old.get(name, 'absent')} → {new.get(name, 'absent')}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
    return differences
