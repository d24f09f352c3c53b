"""Issue 28's start-up numbers: how soon ``kedro run --pipeline inference_cnn`` reaches its first node, and the
50-image batch job end to end beside a plain ``mlflow.pyfunc`` script, one invocation.

In a fresh copy of the project (``harness.make_project``: its own ``data/`` and MLflow store),
``kedro run --pipeline cnn`` trains a small CNN (``--train-params``: 2,000 images, one epoch; accuracy
does not matter here) and registers ``dlflow-cnn-fashion_mnist`` with its ``champion`` alias and reference
profile. The batch is the first 50 Fashion-MNIST test images as a gzipped IDX file.

Start-up: ``kedro run --pipeline inference_cnn --params images_path=<the 50 images>``, once to warm the OS
file cache (its figure is kept as ``first_run``), then ``--repeats`` more in a row. Each run's own
``timings.json`` (``dlflow.tracking.hooks.TimingHook``, the numbers of its ``Time: start-up`` log line)
gives, from the process start (``/proc``): ``startup_seconds``, until the runner reaches the first node
and starts loading its inputs, and ``startup_with_first_inputs_seconds``, until the first node's function
starts, after its inputs (the registered model: MLflow's pyfunc loader, torch) are loaded. Medians.

The batch job: ``--rounds`` alternating rounds of the plain script, then the same ``kedro run``; each the
wall time of the whole process (spawn to exit) and its CPU time; the ratio is the median of the rounds'
ratios (each round side by side), the ratio of the medians beside it. The plain script is written below
(``PLAIN``) and run as a process of its own: it loads the same ``models:/dlflow-cnn-fashion_mnist@champion``
with ``mlflow.pyfunc.load_model``, reads the same IDX file, predicts and writes the answers to parquet.
Each ``kedro run`` is split by its ``timings.json`` into start-up, the first
node's inputs, the nodes, loading and saving, hooks, and the end (closing the MLflow run, exit).

    DLFLOW_DATA_MIRROR=../shared/data flock /tmp/dlflow-bench.lock python benchmarks/startup_benchmark.py

Prints the machine line (CPU model, bf16 native), every run and the medians; writes
``benchmarks/results/startup_benchmark.json`` (``--output``), which docs/performance.md renders.
The machine's load average is printed before and after: other work on the same cores makes every
number larger, the plain script's too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "dlflow-cnn-fashion_mnist"
MODEL_URI = f"models:/{MODEL}@champion"
IMAGES = 50
TARGETS = {"startup_seconds": 2.5, "batch_job_ratio": 1.1}  # issue 28

#: The plain script: what a user writes without dlflow's pipeline. Arguments: model URI, IDX file, output.
PLAIN = """\
import gzip
import sys

import mlflow.pyfunc
import numpy as np

model_uri, images_path, output = sys.argv[1:4]
with gzip.open(images_path, "rb") as file:
    data = file.read()
count, rows, columns = (int.from_bytes(data[offset : offset + 4], "big") for offset in (4, 8, 12))
images = np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, columns)
model = mlflow.pyfunc.load_model(model_uri)
model.predict(images).to_parquet(output)
"""


def register_champion(project: Path, env: dict[str, str], train_params: str, log: Path) -> dict:
    """``kedro run --pipeline cnn --params <train_params>`` unless the copy already holds the champion."""
    from harness import timed

    if has_champion():
        print(f"{MODEL_URI} already registered in {project}: not trained again", flush=True)
        return {"reused": str(project)}
    command = [sys.executable, "-m", "kedro", "run", "--pipeline", "cnn", "--params", train_params]
    print(f"registering a champion: {' '.join(command[1:])} ...", flush=True)
    found = timed(command, project, env, log)
    if not has_champion():
        raise RuntimeError(f"{' '.join(command)} registered no {MODEL_URI} (the promotion gate?); log {log}")
    print(f"  {found['wall_seconds']:.0f} s", flush=True)
    return {"command": " ".join(command[1:]), "wall_seconds": found["wall_seconds"]}


def has_champion() -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return "champion" in MlflowClient().get_registered_model(MODEL).aliases
    except MlflowException:
        return False


def write_images(path: Path, mirror: Path) -> None:
    from dlflow.sources.idx import read_idx, write_idx

    write_idx(read_idx(mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")[:IMAGES], path, gzip=True)


def kedro_run(project: Path, env: dict[str, str], images: Path, log: Path) -> dict:
    """One ``kedro run --pipeline inference_cnn``: wall and CPU time, and its own ``timings.json`` split."""
    from harness import pipeline_end, timed

    command = [sys.executable, "-m", "kedro", "run", "--pipeline", "inference_cnn", "--params", f"images_path={images}"]
    found = timed(command, project, env, log)
    timings = latest_timings()
    end = pipeline_end(timings)
    return {
        "wall_seconds": found["wall_seconds"],
        "cpu_seconds": found["cpu_seconds"],
        "load_before": found["load_before"],
        "startup_seconds": timings["startup_seconds"],
        "startup_with_first_inputs_seconds": timings["startup_with_first_inputs_seconds"],
        "split_seconds": {
            "start-up": timings["startup_seconds"],
            "loading": timings["loading_seconds"],
            **{f"node {name}": seconds for name, seconds in timings["nodes"].items()},
            "saving": timings["saving_seconds"],
            "hooks, tracking": timings["other_seconds"],
            "closing the run, exit": max(0.0, found["ended"] - end),
        },
    }


def latest_timings() -> dict:
    """The newest inference run's ``timings.json``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name("dlflow/inference")
    (run,) = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/timings.json")


def plain_run(script: Path, workdir: Path, env: dict[str, str], images: Path, log: Path) -> dict:
    from harness import timed

    output = workdir / "plain_predictions.parquet"
    found = timed([sys.executable, str(script), MODEL_URI, str(images), str(output)], workdir, env, log)
    import pyarrow.parquet as pq

    rows = pq.read_metadata(output).num_rows
    if rows != IMAGES:
        raise RuntimeError(f"the plain script wrote {rows} rows, not {IMAGES}")
    return {"wall_seconds": found["wall_seconds"], "cpu_seconds": found["cpu_seconds"], "load_before": found["load_before"]}


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="kedro runs in a row after the first, for the start-up")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds: plain script, kedro run")
    parser.add_argument(
        "--train-params",
        default="cnn.data.max_train_samples=2000,cnn.data.max_test_samples=500,cnn.training.epochs=1,"
        "cnn.training.min_steps=1,cnn.training.progress=false",
        help="--params of the run that registers the champion",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="the project copy (reused when it holds the champion)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "startup_benchmark.json")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    import mlflow
    from harness import describe_machine, print_machine, project_workdir, write_results

    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", HERE.parent.parent / "shared" / "data")).resolve()
    if not (mirror / "fashion-mnist").is_dir():
        parser.error(f"no Fashion-MNIST under {mirror}: set DLFLOW_DATA_MIRROR to the offline mirror")
    machine = describe_machine()
    print_machine(machine)
    load_before = os.getloadavg()[0]
    print(f"load average {load_before:.2f}; {' '.join(sys.argv)}", flush=True)
    workdir, tracking_uri, project = project_workdir(args.workdir, "dlflow-startup-bench-")
    env = dict(os.environ) | {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "DLFLOW_DATA_MIRROR": str(mirror),
        "KEDRO_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # reading each run's timings.json back
    mlflow.set_tracking_uri(tracking_uri)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    registered = register_champion(project, env, args.train_params, logs / "register.log")
    images = workdir / f"images{IMAGES}.idx.gz"
    write_images(images, mirror)
    script = workdir / "plain_pyfunc.py"
    script.write_text(PLAIN)

    started = time.time()
    first = kedro_run(project, env, images, logs / "kedro_first.log")
    print(f"first run: start-up {first['startup_seconds']:.2f} s, wall {first['wall_seconds']:.2f} s", flush=True)
    in_a_row = []
    for repeat in range(args.repeats):
        found = kedro_run(project, env, images, logs / f"kedro_repeat{repeat}.log")
        in_a_row.append(found)
        print(
            f"in a row {repeat + 1}: start-up {found['startup_seconds']:.2f} s "
            f"(+ first node's inputs: {found['startup_with_first_inputs_seconds']:.2f} s), wall {found['wall_seconds']:.2f} s",
            flush=True,
        )
    rounds = []
    for round_ in range(args.rounds):
        plain = plain_run(script, workdir, env, images, logs / f"plain{round_}.log")
        kedro = kedro_run(project, env, images, logs / f"kedro_round{round_}.log")
        rounds.append({"round": round_ + 1, "plain_wall_seconds": plain["wall_seconds"], "kedro_wall_seconds": kedro["wall_seconds"],
                       "plain_cpu_seconds": plain["cpu_seconds"], "kedro_cpu_seconds": kedro["cpu_seconds"],
                       "kedro_startup_seconds": kedro["startup_seconds"], "load_before": plain["load_before"],
                       "split_seconds": kedro["split_seconds"]})  # fmt: skip
        print(
            f"round {round_ + 1}: plain {plain['wall_seconds']:.2f} s, kedro run {kedro['wall_seconds']:.2f} s "
            f"({kedro['wall_seconds'] / plain['wall_seconds']:.2f}x; cpu {plain['cpu_seconds']:.1f} / {kedro['cpu_seconds']:.1f} s)",
            flush=True,
        )
    load_after = os.getloadavg()[0]

    startup = [r["startup_seconds"] for r in in_a_row]
    with_inputs = [r["startup_with_first_inputs_seconds"] for r in in_a_row]
    plain_wall, kedro_wall = (median([r[f"{k}_wall_seconds"] for r in rounds]) for k in ("plain", "kedro"))
    plain_cpu, kedro_cpu = (median([r[f"{k}_cpu_seconds"] for r in rounds]) for k in ("plain", "kedro"))
    ratio = median([r["kedro_wall_seconds"] / r["plain_wall_seconds"] for r in rounds])
    cpu_ratio = median([r["kedro_cpu_seconds"] / r["plain_cpu_seconds"] for r in rounds])
    parts = list(dict.fromkeys(part for r in rounds for part in r["split_seconds"]))
    results = {
        "machine": machine,
        "command": " ".join(sys.argv),
        "load_average": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "model": MODEL_URI,
        "images": IMAGES,
        "targets": TARGETS,
        "startup": {
            "first_run_seconds": first["startup_seconds"],
            "repeats": args.repeats,
            "median_seconds": median(startup),
            "median_with_first_inputs_seconds": median(with_inputs),
            "all_seconds": [round(s, 2) for s in startup],
            "all_with_first_inputs_seconds": [round(s, 2) for s in with_inputs],
            "target_met": median(startup) <= TARGETS["startup_seconds"],
        },
        "batch_job": {
            "rounds": args.rounds,
            "plain_median_wall_seconds": plain_wall,
            "kedro_median_wall_seconds": kedro_wall,
            "ratio": ratio,
            "ratio_of_medians": kedro_wall / plain_wall,
            "plain_median_cpu_seconds": plain_cpu,
            "kedro_median_cpu_seconds": kedro_cpu,
            "cpu_ratio": cpu_ratio,
            "target_met": ratio <= TARGETS["batch_job_ratio"],
        },
        "kedro_run_split_median_seconds": {part: median([r["split_seconds"].get(part, 0.0) for r in rounds]) for part in parts},
        "rounds": [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items() if k != "split_seconds"} for r in rounds],
        "registered": registered,
        "seconds": round(time.time() - started, 1),
    }
    print(
        f"\nstart-up to the first node (median of {args.repeats} in a row): {median(startup):.2f} s "
        f"(target {TARGETS['startup_seconds']} s); with the first node's inputs loaded: {median(with_inputs):.2f} s; "
        f"first run {first['startup_seconds']:.2f} s"
    )
    print(
        f"batch job, {IMAGES} images (medians of {args.rounds} rounds): kedro run {kedro_wall:.2f} s vs plain {plain_wall:.2f} s; "
        f"ratio {ratio:.2f}x (median of the rounds' ratios; of the medians {kedro_wall / plain_wall:.2f}x; target "
        f"{TARGETS['batch_job_ratio']}x); CPU {kedro_cpu:.1f} vs {plain_cpu:.1f} s ({cpu_ratio:.2f}x)"
    )
    print(
        "where a kedro run's time goes (median s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in results["kedro_run_split_median_seconds"].items())
    )
    print(f"load average {load_before:.2f} -> {load_after:.2f}")
    write_results(args.output, results)


if __name__ == "__main__":
    main()
