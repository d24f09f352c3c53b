"""Replay a run from its manifest: ``python -m dlflow.tracking.replay RUN_ID [--check-only]``.

Runs the same pipelines in the same Kedro environment with the recorded
parameters (the replay is a new MLflow run, so training checkpoints in a
folder of its own and really trains again), then reports every difference: environment (Python, packages, torch,
device, determinism flags, git commit), input data digests and metrics
(wall-clock timings aside).
Run it from the project root; ``MLFLOW_TRACKING_URI`` selects the store.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from dlflow.tracking.lineage import git_state
from dlflow.tracking.manifest import environment, environment_differences


@dataclass
class ReplayReport:
    original_run_id: str
    replay_run_id: str | None = None
    environment: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    tolerance: float = 0.0  # metrics compared within this fraction of their value (not bit-reproducible runs)

    @property
    def identical(self) -> bool:
        return not (self.environment or self.inputs or self.metrics)

    def lines(self) -> list[str]:
        out = [f"replay of run {self.original_run_id}" + (f" → run {self.replay_run_id}" if self.replay_run_id else "")]
        for title, items in (("environment", self.environment), ("inputs", self.inputs), ("metrics", self.metrics)):
            out.append(f"{title}: " + ("no differences" if not items else f"{len(items)} difference(s)"))
            out += [f"  {item}" for item in items]
        if self.tolerance:
            out.append(f"(metrics compared within ±{self.tolerance:.0%} of their value: the run is not bit-reproducible)")
        return out


def _replay_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """The recorded parameters as runtime parameters of the replay: less ``<family>.training.checkpoint_dir``,
    which runs recorded before the checkpoint folders moved to the catalog carry (the replay is a run of its
    own, so it trains afresh), and less the top-level parameters that were not set (``images_dir: null``):
    given as runtime parameters they would override the catalog's own defaults with nothing."""
    params = {name: value for name, value in copy.deepcopy(params).items() if value is not None}
    for block in params.values():
        training = block.get("training") if isinstance(block, dict) else None
        if isinstance(training, dict):
            training.pop("checkpoint_dir", None)
    return params


TIMINGS = ("seconds", "per_second")  # wall-clock measurements differ from run to run by nature


def _compare(kind: str, old: dict[str, Any], new: dict[str, Any], tolerance: float = 0.0) -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        if any(marker in key for marker in TIMINGS):
            continue
        a, b = old.get(key), new.get(key)
        same = a == b or (isinstance(a, float) and isinstance(b, float) and abs(a - b) <= tolerance * max(1.0, abs(a)))
        if not same:
            changed.append(f"{kind} {key}: {a} → {b}")
    return changed


def replay(run_id: str, project_path: Path, *, check_only: bool = False) -> ReplayReport:
    from dlflow.tracking.store import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    manifest = mlflow.artifacts.load_dict(f"runs:/{run_id}/manifest.json")
    report = ReplayReport(run_id, environment=environment_differences(manifest["environment"], environment()))
    recorded_git, current_git = manifest["git"], git_state(project_path)
    if recorded_git.get("git_commit") != current_git.get("git_commit"):
        report.environment.append(f"git commit: {recorded_git.get('git_commit')} → {current_git.get('git_commit')}")
    if check_only:
        return report

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    params = _replay_parameters(manifest["parameters"])
    with KedroSession.create(project_path=project_path, env=manifest["env"], runtime_params=params) as session:
        session.run(pipeline_names=manifest["pipeline_names"])
    replayed = mlflow.last_active_run()
    report.replay_run_id = replayed.info.run_id
    client.set_tag(replayed.info.run_id, "dlflow.replay_of", run_id)
    new_manifest = mlflow.artifacts.load_dict(f"runs:/{replayed.info.run_id}/manifest.json")
    report.inputs = _compare("input", manifest["inputs"], new_manifest["inputs"])
    original = client.get_run(run_id).data.metrics
    tolerance = manifest.get("reproducibility", {}).get("replay_tolerance", 0.0)
    report.tolerance = tolerance
    report.metrics = _compare("metric", original, client.get_run(replayed.info.run_id).data.metrics, tolerance)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id")
    parser.add_argument("--check-only", action="store_true", help="compare the environment only; run nothing")
    parser.add_argument("--project-path", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    report = replay(args.run_id, args.project_path.resolve(), check_only=args.check_only)
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
