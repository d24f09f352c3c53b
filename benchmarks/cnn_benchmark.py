"""Side-by-side benchmark: a plain PyTorch script vs the dlflow ``cnn`` pipeline, on this machine.

Three variants run one after the other in one invocation, each as its own
process, each timed as a whole (wall clock from process start to exit):

1. ``plain``: ``benchmarks/reference_cnn.py``, the reference recipe (the Keras
   tutorial ``classic`` CNN, Adam 1e-3, batch 64, 5 epochs, no augmentation,
   all 60,000 training images) in self-contained PyTorch, no dlflow import.
2. ``pipeline default``: ``kedro run --pipeline cnn`` with the project's
   default parameters (``conf/base/parameters_cnn.yml``).
3. ``pipeline reference``: the same command with ``--params`` setting the
   reference recipe, so that ``3 / 1 - 1`` is the pipeline's overhead.

Each pipeline variant runs in a fresh temporary copy of the project (``conf/``,
``pyproject.toml``, ``.telemetry`` and an empty ``src/``; ``kedro`` finds the
installed ``dlflow`` package) with its own ``data/`` folder and its own SQLite
MLflow store, so nothing (raw files, parquet, checkpoints) is reused between
variants. Test accuracy comes from ``data/08_reporting/cnn/metrics.json``;
training time from the run's ``epoch_seconds`` metric history (train and
validate each epoch), which splits the overhead into "training loop" and
"everything else" (ingestion, parquet, split, evaluation, plots, MLflow
logging and registration, process start-up).

Wall times are only comparable on a quiet machine (on 2 cores, a second busy
process can make a 2-thread torch run several times slower), so each row also
shows the run's CPU time and the 1-minute load average before and after it.

Note: the pipeline holds out 10 % of the training images for validation
(it trains on 54,000, the plain script on 60,000) and evaluates with the
recipe's test-time augmentation when it is on.

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/cnn_benchmark.py [--only plain,default,reference]

Prints a table and writes ``benchmarks/results/cnn_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "cnn_benchmark.json"

#: The reference recipe expressed as pipeline parameters (``kedro run --params``).
REFERENCE_PARAMS = {
    "cnn.model.architecture": "classic",
    "cnn.training.optimizer": "adam",
    "cnn.training.lr": "0.001",
    "cnn.training.batch_size": "64",
    "cnn.training.epochs": "5",
    "cnn.training.schedule": "constant",
    "cnn.training.weight_decay": "0",
    "cnn.training.label_smoothing": "0",
    "cnn.training.channels_last": "false",
    "cnn.augmentation.horizontal_flip": "false",
    "cnn.augmentation.flip_test_time": "false",
}


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    """Run ``command`` to completion with its output in ``log``.

    Returns its wall time, its CPU time (user + system, the process and its
    children: less sensitive than wall time to other processes on the machine)
    and the 1-minute load average before and after, to judge how quiet the machine was.
    """
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_seconds()
    with log.open("w") as out:
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}); log {log}:\n{tail}")
    return {
        "wall_seconds": seconds,
        "cpu_seconds": _children_cpu_seconds() - cpu_before,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_plain(mirror: Path, workdir: Path) -> dict:
    """The plain script: wall time, and the accuracy and training time it prints as its last line."""
    log = workdir / "plain.log"
    command = [sys.executable, str(REPO / "benchmarks" / "reference_cnn.py")]
    times = timed(command, REPO, {**os.environ, "DLFLOW_DATA_MIRROR": str(mirror)}, log)
    printed = json.loads(log.read_text().strip().splitlines()[-1])
    return {"accuracy": printed["test_accuracy"], **times, "train_seconds": printed["train_seconds"]}


def make_project(root: Path) -> Path:
    """A temporary copy of the project's configuration, with empty data and MLflow folders."""
    project = root / "project"
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    shutil.copy(REPO / ".telemetry", project / ".telemetry")
    (root / "mlruns").mkdir()
    return project


def run_pipeline(name: str, params: dict[str, str], mirror: Path, workdir: Path) -> dict:
    """``kedro run --pipeline cnn [--params ...]`` in a fresh project copy; accuracy and times."""
    from mlflow.tracking import MlflowClient

    root = workdir / name
    project = make_project(root)
    tracking_uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "DLFLOW_DATA_MIRROR": str(mirror)}
    command = ["kedro", "run", "--pipeline", "cnn"]
    if params:
        command += ["--params", ",".join(f"{key}={value}" for key, value in params.items())]
    times = timed(command, project, env, workdir / f"{name}.log")

    metrics = json.loads((project / "data" / "08_reporting" / "cnn" / "metrics.json").read_text())
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("dlflow")
    (run,) = client.search_runs([experiment.experiment_id])
    epochs = client.get_metric_history(run.info.run_id, "epoch_seconds")
    return {
        "accuracy": metrics["accuracy"],
        **times,
        "train_seconds": sum(m.value for m in epochs),
        "epochs": len(epochs),
    }


def report(results: dict[str, dict]) -> dict:
    """Print the table and the ratios; return the derived numbers."""
    print(f"\n{'variant':<12}{'test acc':>10}{'wall s':>9}{'train s':>9}{'other s':>9}{'cpu s':>9}{'load':>11}")
    for name, r in results.items():
        other = r["wall_seconds"] - r["train_seconds"]
        load = f"{r['load_before']:.1f}-{r['load_after']:.1f}"
        print(f"{name:<12}{r['accuracy']:>10.2%}{r['wall_seconds']:>9.1f}{r['train_seconds']:>9.1f}"
              f"{other:>9.1f}{r['cpu_seconds']:>9.1f}{load:>11}")  # fmt: skip
    print("(train s: the plain script's training loop; the pipeline's epoch_seconds, i.e. training and validation)")
    derived: dict[str, float] = {}
    plain, default, reference = (results.get(k) for k in ("plain", "default", "reference"))
    if plain and default:
        derived["default_vs_plain_wall_ratio"] = default["wall_seconds"] / plain["wall_seconds"]
        derived["default_minus_plain_accuracy"] = default["accuracy"] - plain["accuracy"]
        derived["default_vs_plain_cpu_ratio"] = default["cpu_seconds"] / plain["cpu_seconds"]
        print(f"\ndefault vs plain: {derived['default_vs_plain_wall_ratio']:.2f}x the wall time "
              f"({derived['default_vs_plain_cpu_ratio']:.2f}x the CPU time), "
              f"{derived['default_minus_plain_accuracy'] * 100:+.2f} points of test accuracy")  # fmt: skip
    if plain and reference:
        overhead = reference["wall_seconds"] - plain["wall_seconds"]
        loop = reference["train_seconds"] - plain["train_seconds"]
        derived["pipeline_overhead"] = reference["wall_seconds"] / plain["wall_seconds"] - 1
        derived["overhead_training_loop_seconds"] = loop
        derived["overhead_everything_else_seconds"] = overhead - loop
        print(f"pipeline overhead (reference recipe): {derived['pipeline_overhead']:+.1%} "
              f"= {overhead:+.1f} s: training loop {loop:+.1f} s (54k images + validation vs 60k), "
              f"everything else {overhead - loop:+.1f} s")  # fmt: skip
    return derived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="plain,default,reference", help="comma-separated variants to run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects and logs")
    args = parser.parse_args()
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
    variants = args.only.split(",")

    workdir = Path(tempfile.mkdtemp(prefix="dlflow-bench-"))
    results: dict[str, dict] = {}
    try:
        for name in variants:
            print(f"running {name} ...", flush=True)
            if name == "plain":
                results[name] = run_plain(mirror, workdir)
            elif name in ("default", "reference"):
                params = REFERENCE_PARAMS if name == "reference" else {}
                results[name] = run_pipeline(name, params, mirror, workdir)
            else:
                raise SystemExit(f"unknown variant {name!r}; choose from plain, default, reference")
            print(f"  {name}: {json.dumps(results[name])}", flush=True)
    finally:
        if args.keep:
            print(f"logs and projects kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    derived = report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
                "results": results,
                "derived": derived,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
