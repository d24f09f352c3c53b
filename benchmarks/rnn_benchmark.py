"""The default ``kedro run --pipeline rnn`` (Word2Vec, 10-fold RNN, Naive Bayes) timed and scored in one invocation.

The pipeline runs once, as a user runs it, in a fresh copy of the project
(``conf/``, ``pyproject.toml``, ``.telemetry``; ``kedro`` finds the installed
``dlflow``) with an empty ``data/`` and its own MLflow store. The script then
reads the run back from MLflow and the project's reports:

- per-fold and mean ± std test accuracy of the RNN and of the bag-of-words
  Naive Bayes baseline, on the same folds;
- the wall time from process start to exit, split (from the run's
  ``timings.json``, ``dlflow.tracking.hooks.TimingHook``) into start-up, text
  preprocessing, Word2Vec, the RNN folds, the baseline, evaluation and
  registration, and the rest;
- the RNN's training throughput (``sentences_per_second``) and Word2Vec's
  (``word2vec_words_per_second``).

Kim (2014)'s numbers on MR are printed beside ours. Extra ``--params`` go to
``kedro run`` as they are, to measure a variant:

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/rnn_benchmark.py [--params rnn.model.cell=gru]

``--emulate-avx2`` runs the pipeline with oneDNN, ATen, MKL and Numba capped at
AVX2 (``harness.AVX2_ENV``): how
a CPU without native bf16 runs it (float32, AVX2 kernels), measured on one
that has it. The CPU model and whether bf16 was native are printed first.

Writes ``benchmarks/results/rnn_benchmark.json`` (``--output`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from harness import AVX2_ENV, REPO, add_emulate_avx2_argument, describe_machine, make_project, print_machine, timed

#: Kim (2014), Table 2, MR column (10-fold cross-validation).
KIM_2014 = {"CNN-rand": 76.1, "CNN-static": 81.0, "CNN-non-static": 81.5, "NBSVM-bi": 79.4, "MNB": 77.9}
PHASES = {
    "text preprocessing": ("prepare_labelled_sentences", "build_text_corpus", "build_vocabulary", "encode_labelled_sentences"),
    "word2vec": ("train_word2vec", "log_word2vec_training", "build_embedding_matrix"),
    "rnn folds": ("cross_validate_rnn",),
    "naive bayes folds": ("cross_validate_naive_bayes",),
    "evaluation + registration": (
        "rnn.evaluate_classifier", "rnn.plot_confusion", "rnn.plot_learning_curves", "package_rnn",
        "rnn.summarise_candidate", "rnn.register_model", "rnn.build_promotion_report",
    ),
}  # fmt: skip


def run_rnn_pipeline(params: str | None, mirror: Path, workdir: Path, extra_env: dict[str, str]) -> dict:
    import mlflow
    from mlflow.tracking import MlflowClient

    tracking_uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    project = make_project(workdir, tracking_uri)
    env = dict(os.environ) | extra_env | {"MLFLOW_TRACKING_URI": tracking_uri, "DLFLOW_DATA_MIRROR": str(mirror)}
    command = ["kedro", "run", "--pipeline", "rnn"] + (["--params", params] if params else [])
    print(f"running {' '.join(command)} ...", flush=True)
    times = timed(command, project, env, workdir / "rnn.log")

    reports = project / "data" / "08_reporting" / "rnn"
    rnn = json.loads((reports / "cross_validation.json").read_text())
    nb = json.loads((reports / "naive_bayes_cross_validation.json").read_text())
    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "attributes.status = 'FINISHED'")
    (run,) = [r for r in runs if "cv_accuracy_mean" in r.data.metrics]
    mlflow.set_tracking_uri(tracking_uri)
    timings = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/timings.json")
    nodes = timings["nodes"]
    known = {n for members in PHASES.values() for n in members}
    split = {"start-up": timings["startup_seconds"]}
    split |= {phase: sum(nodes.get(n, 0.0) for n in members) for phase, members in PHASES.items()}
    split["other (nodes, loading, saving, tracking, exit)"] = times["wall_seconds"] - sum(split.values())
    throughput = [m.value for m in client.get_metric_history(run.info.run_id, "sentences_per_second")]
    return {
        "wall_seconds": times["wall_seconds"],
        "cpu_seconds": times["cpu_seconds"],
        "split_seconds": split,
        "unaccounted_node_seconds": sum(v for n, v in nodes.items() if n not in known),
        "rnn": rnn,
        "naive_bayes": nb,
        "rnn_sentences_per_second": statistics.median(throughput) if throughput else None,
        "word2vec_words_per_second": run.data.metrics.get("word2vec_words_per_second"),
        "params": {k: v for k, v in run.data.params.items() if k.startswith(("rnn.", "text.", "word2vec."))},
    }


def report(result: dict) -> None:
    rnn, nb = result["rnn"], result["naive_bayes"]
    print(f"\n{'fold':>6}{'RNN':>9}{'NB':>9}{'RNN-NB':>9}")
    for fold, accuracy in rnn["fold_accuracy"].items():
        other = nb["fold_accuracy"][fold]
        print(f"{fold:>6}{accuracy:>9.2%}{other:>9.2%}{(accuracy - other) * 100:>+9.2f}")
    gap = (rnn["accuracy_mean"] - nb["accuracy_mean"]) * 100
    print(f"{'mean':>6}{rnn['accuracy_mean']:>9.2%}{nb['accuracy_mean']:>9.2%}{gap:>+9.2f}")
    print(f"{'std':>6}{rnn['accuracy_std']:>9.2%}{nb['accuracy_std']:>9.2%}")
    print("\nKim (2014) on MR: " + ", ".join(f"{name} {value}" for name, value in KIM_2014.items()))
    print(f"\nwall time {result['wall_seconds']:.0f} s ({result['wall_seconds'] / 60:.1f} min):")
    for phase, seconds in result["split_seconds"].items():
        print(f"  {phase:<48}{seconds:>7.1f} s")
    print(f"RNN training {result['rnn_sentences_per_second']:,.0f} sentences/s (median epoch); "
          f"Word2Vec {result['word2vec_words_per_second']:,.0f} words/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=None, help="passed to kedro run --params as it is")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "rnn_benchmark.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and its log")
    add_emulate_avx2_argument(parser)
    args = parser.parse_args()
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
    extra_env = AVX2_ENV if args.emulate_avx2 else {}
    machine = describe_machine(os.environ | extra_env) | {"emulated_avx2": args.emulate_avx2}
    print_machine(machine)
    workdir = Path(tempfile.mkdtemp(prefix="dlflow-rnn-bench-"))
    try:
        result = run_rnn_pipeline(args.params, mirror, workdir, extra_env)
    finally:
        if args.keep:
            print(f"project and log kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": machine, "kim_2014": KIM_2014, **result}, indent=2) + "\n")
    print(f"\nwritten {args.output}")


if __name__ == "__main__":
    main()
