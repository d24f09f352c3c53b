"""Hyperparameter search on a fixed budget: the tuned CNN against the default recipe, and one worker against two.

One invocation, one fresh project (its own ``data/`` and MLflow store; the node cache
lets every run after the first skip ingestion and preprocessing), four timed phases,
each a child process (``kedro run``) or two:

``default``
    ``kedro run --pipeline cnn``: the default recipe, trained, tested, registered.
``tuned``
    ``kedro run --pipeline tune_cnn`` with ``tuning.cnn.timeout_minutes`` = ``--budget-minutes``
    (default 20) and no trial limit, one worker on every core: trials complete / pruned /
    failed, the best validation accuracy, and the best trial's test accuracy (the test set
    touched once), offered to the gate against the default recipe's champion.
``one_worker`` / ``two_workers``
    Throughput on the same search: ``kedro run --pipeline tune_cnn_trials`` with one
    thread (``cnn.training.num_threads=1``) for ``--throughput-minutes`` (default 10), then
    two such workers at once on one new study (SQLite beside the MLflow store); finished
    (complete + pruned) trials per hour of wall time, each phase its own study.

A worker starts no trial after its budget, so a phase overruns it by up to one trial; the
wall times printed are the real ones. ``--env test`` runs the tiny configuration (a check that
the script works: ``--env test --budget-minutes 1 --throughput-minutes 0.5``).

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/tuning_benchmark.py [--budget-minutes 20] [--throughput-minutes 10] [--params ...]

All of it takes about 55 minutes with the defaults: the default recipe (2-5 min), 20 min of tuning plus
the trial running when the budget ends (a full-size trial is up to 4 epochs: 1.5-5 min) and the test,
then 2 x 10 min of throughput, each phase also finishing its last trial.

Prints the CPU model, whether bf16 was native and a table; writes
``benchmarks/results/tuning_benchmark.json`` (``--output`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, describe_machine, make_project, print_machine, timed

EXTRA_PARAMS: dict[str, str] = {}  # --params, for every phase


def kedro(pipeline: str, env_name: str, params: dict[str, str]) -> list[str]:
    command = [sys.executable, "-m", "kedro", "run", "--pipeline", pipeline]
    if env_name:
        command += ["--env", env_name]
    params = EXTRA_PARAMS | params
    return command + (["--params", ",".join(f"{k}={v}" for k, v in params.items())] if params else [])


def parent_run(client, study_name: str):
    """The newest tuning (parent) run of ``study_name``."""
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        f"tags.`optuna.study` = '{study_name}' and tags.`optuna.role` = 'parent'",
        order_by=["attributes.start_time DESC"],
    )
    return runs[0]


def study_counts(storage: str, study_name: str) -> dict[str, int]:
    import optuna

    found: dict[str, int] = {}
    for trial in optuna.load_study(study_name=study_name, storage=storage).trials:
        found[trial.state.name.lower()] = found.get(trial.state.name.lower(), 0) + 1
    return found


def throughput(wall_seconds: float, counts: dict[str, int]) -> float:
    return (counts.get("complete", 0) + counts.get("pruned", 0)) / (wall_seconds / 3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=20.0, help="the tuned phase's time budget")
    parser.add_argument("--throughput-minutes", type=float, default=10.0, help="each throughput phase's budget")
    parser.add_argument("--env", default="", help="Kedro environment (e.g. test: tiny sizes)")
    parser.add_argument(
        "--params", default="", help="more kedro run --params for every phase, e.g. tuning.cnn.pruner.type=hyperband"
    )
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "tuning_benchmark.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and its logs")
    args = parser.parse_args()
    EXTRA_PARAMS.update(item.split("=", 1) for item in args.params.split(",") if item)

    from mlflow.tracking import MlflowClient

    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
    machine = describe_machine()
    print_machine(machine)
    root = Path(tempfile.mkdtemp(prefix="dlflow-tuning-bench-"))
    tracking_uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    storage = f"sqlite:///{root / 'mlruns' / 'optuna.db'}"
    env = os.environ | {"DLFLOW_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": tracking_uri, "KEDRO_DISABLE_TELEMETRY": "true"}
    env.pop("DLFLOW_TUNING_STORAGE", None)
    result: dict = {"machine": machine, "budget_minutes": args.budget_minutes, "throughput_minutes": args.throughput_minutes,
                    "env": args.env or "base", "params": EXTRA_PARAMS}  # fmt: skip
    try:
        project = make_project(root, tracking_uri)
        client = MlflowClient(tracking_uri)
        tag = f"bench{int(time.time())}"

        print("default recipe: kedro run --pipeline cnn ...", flush=True)
        timing = timed(kedro("cnn", args.env, {}), project, env, root / "default.log")
        experiments = [e.experiment_id for e in client.search_experiments()]  # whichever the pipeline logs into
        (default_run,) = client.search_runs(experiments, max_results=1, order_by=["attributes.start_time DESC"])
        result["default"] = {"wall_seconds": timing["wall_seconds"], "test_accuracy": default_run.data.metrics["test_accuracy"]}

        print(f"tuned: kedro run --pipeline tune_cnn, {args.budget_minutes} min ...", flush=True)
        study = f"{tag}-tuned"
        params = {
            "tuning.cnn.study_name": study,
            "tuning.cnn.n_trials": "null",
            "tuning.cnn.timeout_minutes": str(args.budget_minutes),
        }
        timing = timed(kedro("tune_cnn", args.env, params), project, env, root / "tuned.log")
        run = parent_run(client, study)
        best = json.loads(Path(project / "data/08_reporting/cnn/tuning/best_params.json").read_text())
        counts = study_counts(storage, study)
        result["tuned"] = {
            "wall_seconds": timing["wall_seconds"],
            "trials": counts,
            "trials_per_hour": throughput(timing["wall_seconds"], counts),
            "best_val_accuracy": best["best_value"],
            "best_params": best["best_params"],
            "kedro_params": best["kedro_params"],
            "test_accuracy": run.data.metrics["test_accuracy"],
            "gate": json.loads(Path(project / "data/08_reporting/cnn/registration/registration.json").read_text())[
                "gate_decision"
            ],
        }

        one_thread = {"cnn.training.num_threads": "1", "tuning.cnn.n_trials": "null",
                      "tuning.cnn.timeout_minutes": str(args.throughput_minutes), "tuning.cnn.sampler.seed": "null"}  # fmt: skip
        print(f"one worker, one thread: tune_cnn_trials, {args.throughput_minutes} min ...", flush=True)
        study = f"{tag}-one"
        timing = timed(
            kedro("tune_cnn_trials", args.env, one_thread | {"tuning.cnn.study_name": study}), project, env, root / "one.log"
        )
        counts = study_counts(storage, study)
        result["one_worker"] = {
            "wall_seconds": timing["wall_seconds"],
            "trials": counts,
            "trials_per_hour": throughput(timing["wall_seconds"], counts),
        }

        print(f"two workers, one thread each: 2 x tune_cnn_trials on one study, {args.throughput_minutes} min ...", flush=True)
        study = f"{tag}-two"
        command = kedro("tune_cnn_trials", args.env, one_thread | {"tuning.cnn.study_name": study})
        started = time.time()
        logs = [open(root / f"two-{i}.log", "w") for i in range(2)]  # noqa: SIM115 - closed below
        workers = [subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
        codes = [worker.wait() for worker in workers]
        wall = time.time() - started
        for log in logs:
            log.close()
        if any(codes):
            raise RuntimeError(f"a worker failed ({codes}); logs in {root}")
        counts = study_counts(storage, study)
        result["two_workers"] = {"wall_seconds": wall, "trials": counts, "trials_per_hour": throughput(wall, counts)}
    finally:
        if args.keep:
            print(f"project and logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    default, tuned = result["default"], result["tuned"]
    print(f"\n{'':<28}{'test accuracy':>14}{'wall s':>9}{'complete':>10}{'pruned':>8}{'failed':>8}{'trials/h':>10}")
    print(f"{'default recipe':<28}{default['test_accuracy']:>14.2%}{default['wall_seconds']:>9.0f}")
    for name in ("tuned", "one_worker", "two_workers"):
        phase = result[name]
        accuracy = f"{phase['test_accuracy']:.2%}" if "test_accuracy" in phase else ""
        trials = phase["trials"]
        print(f"{name.replace('_', ' '):<28}{accuracy:>14}{phase['wall_seconds']:>9.0f}{trials.get('complete', 0):>10}"
              f"{trials.get('pruned', 0):>8}{trials.get('fail', 0):>8}{phase['trials_per_hour']:>10.1f}")  # fmt: skip
    print(f"\ntuned - default: {(tuned['test_accuracy'] - default['test_accuracy']) * 100:+.2f} points; "
          f"gate: {tuned['gate']}; best: --params \"{tuned['kedro_params']}\"")  # fmt: skip
    print(
        f"two workers / one worker: {result['two_workers']['trials_per_hour'] / max(result['one_worker']['trials_per_hour'], 1e-9):.2f}x trials per hour"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwritten {args.output}")


if __name__ == "__main__":
    main()
