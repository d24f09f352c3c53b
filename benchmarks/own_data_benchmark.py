"""Issue 25's quality numbers on real data that is neither Fashion-MNIST nor MR, side by side, one invocation.

Each default recipe (``conf/base``, no ``--env``) runs through ``kedro run`` in a fresh copy of the
project (``harness.make_project``: its own ``data/`` and MLflow store), on data built by
``benchmarks/own_data.py``:

- ``kedro run --pipeline cnn --params image_source=folder,images_dir=.../adwaita-icons,images.image_size=32``
  (Debian's Adwaita icons, colour, 32x32, 9 categories, split by icon) and the same on
  ``.../digits`` (scikit-learn's 8x8 grey digits, the pipeline's own seeded split). Beside each, a
  multinomial logistic regression (scikit-learn, standardised raw pixels) fitted on the pipeline's own
  training split (``data/05_model_input/cnn/train.parquet``) and scored on its test split
  (``test.parquet``, the rows of ``cnn_test_predictions``): both sides see exactly the same images.
- ``kedro run --pipeline rnn --params text_source=table,labelled_text=.../brown-genres.csv`` (56,038
  Brown sentences, 15 genres) beside the pipeline's own Naive Bayes baseline, scored on the same
  held-out sentences (``rnn_test_predictions`` and ``naive_bayes_test_predictions``, joined on ``row``).

For each pair: both test accuracies and their difference with a paired 95 % confidence interval over
the same test items (normal interval on the per-item correctness difference, as McNemar's test pairs
them; a percentile bootstrap over the items beside it), and whether the model beats its baseline by
more than the interval (the interval's lower end above 0).

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/own_data_benchmark.py [--only cnn-icons cnn-digits rnn]

Prints the machine line (CPU model, bf16 native) and the load average, the wall time of each run;
writes ``benchmarks/results/own_data_benchmark.json`` (``--output`` to change).
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

import numpy as np
import pandas as pd
from harness import REPO, describe_machine, make_project, print_machine, timed

RUNS = ("cnn-digits", "cnn-icons", "rnn")
Z95 = 1.959964


def paired_difference(model_correct: np.ndarray, baseline_correct: np.ndarray, seed: int = 0) -> dict:
    """Accuracy of each side and their difference (points) with paired 95 % intervals over the same items."""
    a, b = model_correct.astype(float), baseline_correct.astype(float)
    diff = a - b
    n = len(diff)
    se = diff.std(ddof=1) / np.sqrt(n)
    rng = np.random.default_rng(seed)
    boot = np.array([diff[rng.integers(0, n, n)].mean() for _ in range(5000)])
    low, high = diff.mean() - Z95 * se, diff.mean() + Z95 * se
    return {
        "test_items": n,
        "model_accuracy": a.mean() * 100,
        "baseline_accuracy": b.mean() * 100,
        "difference_points": diff.mean() * 100,
        "ci95_normal_points": [low * 100, high * 100],
        "ci95_bootstrap_points": [float(np.percentile(boot, 2.5)) * 100, float(np.percentile(boot, 97.5)) * 100],
        "discordant": {"model_only_right": int(((a == 1) & (b == 0)).sum()), "baseline_only_right": int(((a == 0) & (b == 1)).sum())},
        "model_beats_baseline_beyond_ci": bool(low > 0),
    }  # fmt: skip


def _pixels(table: pd.DataFrame) -> np.ndarray:
    return np.stack([np.frombuffer(p, dtype=np.uint8) for p in table["pixels"]]).astype(np.float32)


def logistic_regression(project: Path) -> tuple[np.ndarray, dict]:
    """LR on the CNN's own train split, predicting its test split: the predictions and what it took."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model_input = project / "data" / "05_model_input" / "cnn"
    train, test = pd.read_parquet(model_input / "train.parquet"), pd.read_parquet(model_input / "test.parquet")
    started = time.time()
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))  # lbfgs: multinomial
    lr.fit(_pixels(train), train["label"].to_numpy())
    predicted = lr.predict(_pixels(test))
    info = {
        "model": "StandardScaler + LogisticRegression(lbfgs, multinomial, C=1, max_iter=2000) on raw pixels",
        "train_images": len(train),
        "test_images": len(test),
        "features": int(_pixels(test.head(1)).shape[1]),
        "fit_predict_seconds": time.time() - started,
        "test_labels": test["label"].to_numpy(),
    }
    return predicted, info


def run_kedro(name: str, params: str, pipeline: str, workdir: Path, mirror: Path) -> tuple[Path, dict]:
    tracking_uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    project = make_project(workdir, tracking_uri)
    env = dict(os.environ) | {"MLFLOW_TRACKING_URI": tracking_uri, "DLFLOW_DATA_MIRROR": str(mirror)}
    env |= {"KEDRO_DISABLE_TELEMETRY": "true"}
    command = ["kedro", "run", "--pipeline", pipeline, "--params", params]
    print(f"[{name}] {' '.join(command)} ...", flush=True)
    times = timed(command, project, env, workdir / f"{name}.log")
    print(
        f"[{name}] {times['wall_seconds']:.0f} s wall, load {times['load_before']:.2f} -> {times['load_after']:.2f}", flush=True
    )
    return project, times | {"command": " ".join(command)}


def cnn_pair(name: str, images_dir: Path, extra: str, workdir: Path, mirror: Path) -> dict:
    params = f"image_source=folder,images_dir={images_dir}" + (f",{extra}" if extra else "")
    project, times = run_kedro(name, params, "cnn", workdir, mirror)
    cnn = pd.read_parquet(project / "data" / "07_model_output" / "cnn" / "test_predictions.parquet")
    lr_predicted, lr = logistic_regression(project)
    labels = lr.pop("test_labels")
    if len(cnn) != len(labels) or not np.array_equal(cnn["label"].to_numpy(), labels):
        raise RuntimeError(f"[{name}] the CNN's predictions are not the rows of its test split")
    report = json.loads(next((project / "data" / "08_reporting").glob("*/ingestion_report.json")).read_text())
    return {
        "kedro": times,
        "ingestion_report": {k: v for k, v in report.items() if not isinstance(v, list | dict) or k in ("image_size", "classes")},
        "baseline": lr,
        "comparison": paired_difference(cnn["prediction"].to_numpy() == labels, lr_predicted == labels),
    }


def rnn_pair(csv: Path, workdir: Path, mirror: Path, extra: str) -> dict:
    params = f"text_source=table,labelled_text={csv}" + (f",{extra}" if extra else "")
    project, times = run_kedro("rnn", params, "rnn", workdir, mirror)
    output = project / "data" / "07_model_output" / "rnn"
    rnn = pd.read_parquet(output / "out_of_fold_predictions.parquet")
    nb = pd.read_parquet(output / "naive_bayes_out_of_fold_predictions.parquet")
    both = rnn.merge(nb, on="row", suffixes=("_rnn", "_nb"))
    if len(both) != len(rnn) or len(both) != len(nb) or not (both["label_rnn"] == both["label_nb"]).all():
        raise RuntimeError("the RNN's and Naive Bayes's held-out rows differ")
    cv = json.loads((project / "data" / "08_reporting" / "rnn" / "cross_validation.json").read_text())
    return {
        "kedro": times,
        "evaluation": {k: v for k, v in cv.items() if k not in ("fold_accuracy",)} | {"folds_scored": sorted(rnn["fold"].unique().tolist())},
        "baseline": json.loads((project / "data" / "08_reporting" / "rnn" / "naive_bayes_cross_validation.json").read_text())["model"],
        "comparison": paired_difference(
            (both["prediction_rnn"] == both["label_rnn"]).to_numpy(), (both["prediction_nb"] == both["label_nb"]).to_numpy()
        ),
    }  # fmt: skip


def show(name: str, result: dict) -> None:
    c = result["comparison"]
    low, high = c["ci95_normal_points"]
    blow, bhigh = c["ci95_bootstrap_points"]
    baseline = "NB" if name == "rnn" else "LR"
    model = "RNN" if name == "rnn" else "CNN"
    print(
        f"{name:<11} n={c['test_items']:>6}  {model} {c['model_accuracy']:6.2f} %  {baseline} {c['baseline_accuracy']:6.2f} %  "
        f"diff {c['difference_points']:+6.2f} pts  95% CI [{low:+.2f}, {high:+.2f}] (bootstrap [{blow:+.2f}, {bhigh:+.2f}])  "
        f"beats beyond CI: {'yes' if c['model_beats_baseline_beyond_ci'] else 'NO'}  kedro run {result['kedro']['wall_seconds']:.0f} s"
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--data", type=Path, default=None, help="data already built by own_data.py (else built anew)")
    parser.add_argument("--image-size", default="32", help="images.image_size of the Adwaita run (32: colour 32x32)")
    parser.add_argument("--cnn-params", default="", help="extra --params for both CNN runs (a variant; printed)")
    parser.add_argument("--rnn-params", default="", help="extra --params for the RNN run (a last resort; printed)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "own_data_benchmark.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects and their logs")
    args = parser.parse_args()
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
    machine = describe_machine()
    print_machine(machine)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="dlflow-own-data-bench-"))
    data = args.data
    if data is None:
        data = workdir / "data"
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "own_data.py"), str(data)], check=True)
    results: dict[str, dict] = {}
    started = time.time()
    try:
        for name in args.only:
            (workdir / name).mkdir()
            if name == "cnn-icons":
                extra = ",".join(filter(None, [f"images.image_size={args.image_size}", args.cnn_params]))
                results[name] = cnn_pair(name, data / "adwaita-icons", extra, workdir / name, mirror)
            elif name == "cnn-digits":
                results[name] = cnn_pair(name, data / "digits", args.cnn_params, workdir / name, mirror)
            else:
                results[name] = rnn_pair(data / "brown-genres.csv", workdir / name, mirror, args.rnn_params)
            show(name, results[name])
    finally:
        if args.keep:
            print(f"projects and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nload average at end: {os.getloadavg()}; total {time.time() - started:.0f} s")
    for name, result in results.items():
        show(name, result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    notes = {
        "cnn_extra_params": args.cnn_params or None,
        "rnn_extra_params": args.rnn_params or None,
        "load_average_end": os.getloadavg(),
    }
    args.output.write_text(json.dumps({"machine": machine, "notes": notes, **results}, indent=2, default=str) + "\n")
    print(f"\nwritten {args.output}")


if __name__ == "__main__":
    main()
