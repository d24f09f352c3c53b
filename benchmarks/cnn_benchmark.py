"""Side-by-side benchmark: a plain PyTorch script vs ``kedro run --pipeline cnn``, on this machine.

The variants run one after the other in one invocation, each as its own
process, each timed from process start to exit:

``plain``
    ``benchmarks/reference_cnn.py``: the reference recipe (the Keras tutorial
    ``classic`` CNN, Adam 1e-3, batch 64, 5 epochs, no augmentation, all
    60,000 training images) in self-contained PyTorch, no dlflow import.
``default``
    ``kedro run --pipeline cnn`` with the project's defaults; bfloat16 where
    the CPU computes it natively, float32 elsewhere.
``default_fp32``
    The same with ``--params cnn.model.options.bf16=false``: the float32 path
    on any machine (on a CPU without native bf16 it is the same as ``default``).
``reference``
    The same command with ``--params`` setting the reference recipe, on
    59,940 training images (``validation_fraction=0.001``; the plain script
    has 60,000): ``reference / plain - 1`` is the pipeline's overhead.

Each pipeline variant runs in a fresh copy of the project (``conf/``,
``pyproject.toml``, ``.telemetry``, an empty ``src/``; ``kedro`` finds the
installed ``dlflow``) with its own empty ``data/``, so ingestion runs every
time, and its own MLflow store, created before the clock starts (a user's
store exists after their first run; creating one costs about 1.5 s).

``--emulate-avx2`` runs every variant with oneDNN, ATen, MKL and Numba capped at
AVX2 (``harness.AVX2_ENV``): how a float32-only
CPU (no AVX512-BF16/AMX) runs, measured on a bf16-capable one.

The breakdown of each pipeline run comes from its ``timings.json``
(``dlflow.tracking.hooks.TimingHook``): start-up (process start to the first node),
ingestion and preprocessing nodes, training, evaluation (prediction, metrics,
plots), registration, loading and saving data sets, the rest between nodes
(hooks, tracking, node cache), and what follows the pipeline (closing the run, exit).

Wall times on these shared 2-core machines vary by 10-20 % from one process to
the next; ``--repeat 3`` runs every variant three times, round robin, and
reports the median run of each.

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/cnn_benchmark.py [--repeat 3] [--only plain,default] [--emulate-avx2]

Prints the CPU model, whether bf16 was native, a table, the ratios and the
breakdown; writes ``benchmarks/results/cnn_benchmark[_avx2].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from harness import (
    AVX2_ENV,
    REPO,
    add_emulate_avx2_argument,
    describe_machine,
    make_project,
    median_run,
    pipeline_end,
    print_machine,
    timed,
)

RESULTS = REPO / "benchmarks" / "results"

#: The reference recipe expressed as pipeline parameters (``kedro run --params``).
REFERENCE_PARAMS = {
    "cnn.model.architecture": "classic",
    "cnn.data.validation_fraction": "0.001",
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
VARIANTS = {
    "default": {},
    "default_fp32": {"cnn.model.options.bf16": "false"},
    "reference": REFERENCE_PARAMS,
}
#: Nodes by phase, for the breakdown.
PHASES = {
    "ingestion + preprocessing": (
        "ingest_images",
        "find_image_leakage",
        "summarise_image_data",
        "log_image_data_metrics",
        "split_train_validation",
        "select_test_images",
        "compute_normalisation",
    ),
    "training": ("train_cnn",),
    "evaluation": (
        "predict_cnn",
        "cnn.evaluate_classifier",
        "cnn.plot_confusion",
        "cnn.plot_learning_curves",
        "plot_cnn_mistakes",
    ),
    "registration": ("package_cnn", "cnn.summarise_candidate", "cnn.register_model", "cnn.build_promotion_report"),
}


def run_plain(mirror: Path, workdir: Path, env: dict[str, str]) -> dict:
    """The plain script: wall time, and the accuracy and training time it prints as its last line."""
    log = workdir / "plain.log"
    command = [sys.executable, str(REPO / "benchmarks" / "reference_cnn.py")]
    times = timed(command, REPO, env | {"DLFLOW_DATA_MIRROR": str(mirror)}, log)
    printed = json.loads(log.read_text().strip().splitlines()[-1])
    times.pop("ended")
    return {"accuracy": printed["test_accuracy"], **times, "train_seconds": printed["train_seconds"]}


def run_pipeline(name: str, params: dict[str, str], mirror: Path, workdir: Path, env: dict[str, str]) -> dict:
    """``kedro run --pipeline cnn [--params ...]`` in a fresh project copy: accuracy, times and breakdown."""
    import mlflow
    from mlflow.tracking import MlflowClient

    root = workdir / name
    tracking_uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    project = make_project(root, tracking_uri)
    env = env | {"MLFLOW_TRACKING_URI": tracking_uri, "DLFLOW_DATA_MIRROR": str(mirror)}
    command = ["kedro", "run", "--pipeline", "cnn"]
    if params:
        command += ["--params", ",".join(f"{key}={value}" for key, value in params.items())]
    times = timed(command, project, env, workdir / f"{name}.log")

    metrics = json.loads((project / "data" / "08_reporting" / "cnn" / "metrics.json").read_text())
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    timings = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/timings.json")
    epochs = client.get_metric_history(run.info.run_id, "epoch_seconds")
    return {
        "accuracy": metrics["accuracy"],
        **{k: v for k, v in times.items() if k != "ended"},
        "train_seconds": sum(m.value for m in epochs),
        "epochs": len(epochs),
        "breakdown": breakdown(timings, times),
    }


def breakdown(timings: dict, times: dict) -> dict[str, float]:
    """Seconds by phase, from the run's ``timings.json`` and the process's wall clock."""
    nodes = timings["nodes"]
    phases = {name: sum(nodes.get(n, 0.0) for n in members) for name, members in PHASES.items()}
    known = {n for members in PHASES.values() for n in members}
    end = pipeline_end(timings)
    return {
        "start-up": timings["startup_seconds"],
        **phases,
        "other nodes": sum(v for n, v in nodes.items() if n not in known),
        "loading data sets": timings["loading_seconds"],
        "saving data sets": timings["saving_seconds"],
        "hooks, tracking, cache": timings["other_seconds"],
        "closing the run, exit": max(0.0, times["ended"] - end),
    }


def report(results: dict[str, dict]) -> dict:
    """Print the table, the ratios and the breakdowns; return the derived numbers."""
    print(f"\n{'variant':<14}{'test acc':>10}{'wall s':>9}{'train s':>9}{'other s':>9}{'cpu s':>9}{'load':>11}  all runs' wall s")
    for name, r in results.items():
        load = f"{r['load_before']:.1f}-{r['load_after']:.1f}"
        print(f"{name:<14}{r['accuracy']:>10.2%}{r['wall_seconds']:>9.1f}{r['train_seconds']:>9.1f}"
              f"{r['wall_seconds'] - r['train_seconds']:>9.1f}{r['cpu_seconds']:>9.1f}{load:>11}  {r['wall_seconds_all']}")  # fmt: skip
    print("(train s: the plain script's training loop; the pipeline's epoch_seconds, training and validation)")
    derived: dict[str, float] = {}
    plain = results.get("plain")
    for name in ("default", "default_fp32"):
        if plain and name in results:
            r = results[name]
            derived[f"{name}_vs_plain_wall_ratio"] = r["wall_seconds"] / plain["wall_seconds"]
            derived[f"{name}_minus_plain_accuracy"] = r["accuracy"] - plain["accuracy"]
            print(f"\n{name} vs plain: {derived[f'{name}_vs_plain_wall_ratio']:.2f}x the wall time, "
                  f"{r['accuracy']:.2%} test accuracy ({derived[f'{name}_minus_plain_accuracy'] * 100:+.2f} points)")  # fmt: skip
    if plain and "reference" in results:
        reference = results["reference"]
        derived["pipeline_overhead_ratio"] = reference["wall_seconds"] / plain["wall_seconds"]
        print(f"pipeline overhead (the reference recipe, pipeline vs plain script): "
              f"{derived['pipeline_overhead_ratio']:.2f}x ({reference['wall_seconds'] - plain['wall_seconds']:+.1f} s)")  # fmt: skip
    for name, r in results.items():
        if "breakdown" in r:
            parts = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in r["breakdown"].items())
            print(f"\nwhere the time of {name} went (s): {parts}")
    return derived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="plain,default,default_fp32,reference", help="comma-separated variants to run")
    add_emulate_avx2_argument(parser)
    parser.add_argument(
        "--repeat", type=int, default=1, help="run every variant this many times, interleaved; report the median run"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects and logs")
    args = parser.parse_args()
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
    env = os.environ | (AVX2_ENV if args.emulate_avx2 else {})
    machine = describe_machine(env) | {"emulated_avx2": args.emulate_avx2}
    print_machine(machine)

    names = args.only.split(",")
    unknown = [name for name in names if name != "plain" and name not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from plain, {', '.join(VARIANTS)}")
    workdir = Path(tempfile.mkdtemp(prefix="dlflow-bench-"))
    runs: dict[str, list[dict]] = {name: [] for name in names}
    try:
        for repeat in range(args.repeat):  # round robin: a slow spell of the machine hits every variant
            for name in names:
                print(f"running {name} ({repeat + 1}/{args.repeat}) ...", flush=True)
                where = workdir / f"{name}-{repeat}"
                where.mkdir()
                if name == "plain":
                    result = run_plain(mirror, where, env)
                else:
                    result = run_pipeline(name, VARIANTS[name], mirror, where, env)
                runs[name].append(result)
                print(f"  {name}: {result['accuracy']:.2%} in {result['wall_seconds']:.1f} s", flush=True)
    finally:
        if args.keep:
            print(f"logs and projects kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    results = {name: median_run(found) for name, found in runs.items()}
    derived = report(results)
    path = RESULTS / ("cnn_benchmark_avx2.json" if args.emulate_avx2 else "cnn_benchmark.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"machine": machine, "repeats": args.repeat, "results": results, "runs": runs, "derived": derived}, indent=2)
        + "\n"
    )
    print(f"\nwritten {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
