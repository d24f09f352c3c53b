"""Where the RNN's training time went, side by side in one invocation: the embedding, the optimizer, the folds.

On the real MR sentences and the default run's vocabulary (the ``text``
pipeline of a fresh project copy, on the offline mirror), with the default
network, batch size and adversarial training (``conf/base/parameters_rnn.yml``),
random word vectors (speed does not depend on their values):

1. one fold, ``--epochs`` epochs each (median epoch reported), the ways an
   epoch has been trained:

   ``full, foreach Adam``   every row of the embedding in the network and the
                            optimizer, PyTorch's default multi-tensor Adam;
   ``compact, foreach Adam`` only the training folds' rows (``models.rnn.compact_vocabulary``);
   ``compact, fused Adam``   the same with the fused Adam kernel;

   those three in float32, as the releases that introduced them trained; then

   ``compact, fused Adam, bf16`` the network after the embedding under bfloat16
                            autocast where the CPU computes bf16 natively
                            (``rnn.model.bf16: null``, the default now; on a CPU
                            without native bf16 it is the float32 row again).

2. ``dlflow.training.rnn.cross_validate`` (the ``cross_validate_rnn`` node's work) over all 10 folds, ``--fold-epochs`` epochs each: the folds one after
   the other in this process (``rnn.evaluation.workers=1``, every core) against
   one worker process per core (the default), with the two runs' accuracies
   checked equal.

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/rnn_speed_benchmark.py

Prints the CPU model and whether bf16 is native, and writes
``benchmarks/results/rnn_speed_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from harness import REPO, describe_machine, make_project, print_machine


def encoded_mr(mirror: Path, workdir: Path) -> tuple[dict[str, np.ndarray], int]:
    """The default run's encoded MR sentences and the size of its vocabulary, from the project's own nodes."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    tracking_uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    project = make_project(workdir, tracking_uri)
    os.environ |= {"MLFLOW_TRACKING_URI": tracking_uri, "DLFLOW_DATA_MIRROR": str(mirror), "KEDRO_DISABLE_TELEMETRY": "true"}
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        outputs = session.run(pipeline_names=["rnn"], to_nodes=["encode_labelled_sentences"])
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    vocabulary = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/preprocessing/vocabulary.json")
    return outputs["rnn_encoded_sentences"].load(), len(vocabulary["specials"]) + len(vocabulary["words"])


def time_epochs(encoded: dict, vocab_size: int, rnn: dict, *, compact: bool, fused: bool, bf16: bool | None, epochs: int) -> dict:
    """Train fold 0's network ``epochs`` epochs with the pipeline's recipe; the median epoch's time."""
    import dlflow.training.loop as loop
    from dlflow.models.rnn import SentenceRNN, compact_vocabulary
    from dlflow.training import TensorDataset, TrainConfig, fit
    from dlflow.training.adversarial import EmbeddingAdversarialLoss

    def sentences(rows: np.ndarray) -> TensorDataset:
        features = (lookup[torch.from_numpy(encoded["ids"][rows])], torch.from_numpy(encoded["lengths"][rows]))
        return TensorDataset(features, torch.from_numpy(encoded["labels"][rows]))

    train_rows = np.flatnonzero(encoded["folds"] != 0)
    ids = torch.from_numpy(encoded["ids"][train_rows])
    rows, lookup = compact_vocabulary(ids, vocab_size) if compact else (torch.arange(vocab_size), torch.arange(vocab_size))
    vectors = torch.randn(len(rows), 100, generator=torch.Generator().manual_seed(0))
    model = SentenceRNN(len(rows), 100, num_classes=2, pretrained=vectors, **rnn["model"] | {"bf16": bf16})
    settings = rnn["training"] | {"epochs": epochs, "checkpoint_dir": None, "progress": False, "early_stopping_patience": None}
    original = loop.make_optimizer
    if not fused:  # the previous release's optimizer: PyTorch's default (multi-tensor) Adam
        loop.make_optimizer = lambda net, config: torch.optim.Adam(
            net.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
    try:
        result = fit(model, sentences(train_rows), sentences(np.flatnonzero(encoded["folds"] == 0)), TrainConfig(**settings),
                     training_loss=EmbeddingAdversarialLoss(rnn["adversarial"]["epsilon"]))  # fmt: skip
    finally:
        loop.make_optimizer = original
    seconds = statistics.median(r.epoch_seconds for r in result.history)
    return {
        "rows": len(rows),
        "epoch_seconds": seconds,
        "sentences_per_second": statistics.median(r.samples_per_second for r in result.history),
    }


def time_folds(encoded: dict, vocab_size: int, rnn: dict, workers: int | None, epochs: int) -> dict:
    """All 10 folds, ``epochs`` epochs each, through ``dlflow.training.rnn.cross_validate`` (what the
    ``cross_validate_rnn`` node runs)."""
    from dlflow.config import RnnRecipe
    from dlflow.training import TrainConfig
    from dlflow.training.rnn import cross_validate

    recipe = RnnRecipe.model_validate(
        {name: rnn[name] for name in ("model", "adversarial") if name in rnn}
        | {
            "evaluation": rnn["evaluation"] | {"workers": workers},
            "training": rnn["training"] | {"epochs": epochs, "progress": False},
        }
    )
    embeddings = torch.randn(vocab_size, 100, generator=torch.Generator().manual_seed(0)).numpy()
    folds = sorted(set(encoded["folds"].tolist()))
    started = time.perf_counter()
    outcomes = cross_validate(encoded, embeddings, recipe, folds, TrainConfig(**recipe.training.model_dump()), 2, None, None)
    return {"wall_seconds": time.perf_counter() - started, "fold_accuracy": {str(o.fold): o.accuracy for o in outcomes}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per variant in part 1 (median reported)")
    parser.add_argument("--fold-epochs", type=int, default=2, help="epochs per fold in part 2")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "rnn_speed_benchmark.json")
    args = parser.parse_args()
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
    machine = describe_machine()
    print_machine(machine)
    rnn = yaml.safe_load((REPO / "conf" / "base" / "parameters_rnn.yml").read_text())["rnn"]
    workdir = Path(tempfile.mkdtemp(prefix="dlflow-rnn-speed-"))
    try:
        encoded, vocab_size = encoded_mr(mirror, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(encoded['ids']):,} MR sentences, a vocabulary of {vocab_size:,} words", flush=True)

    epochs = {}
    for name, compact, fused, bf16 in [
        ("full, foreach Adam", False, False, False),
        ("compact, foreach Adam", True, False, False),
        ("compact, fused Adam", True, True, False),
        ("compact, fused Adam, bf16", True, True, None),
    ]:
        epochs[name] = time_epochs(encoded, vocab_size, rnn, compact=compact, fused=fused, bf16=bf16, epochs=args.epochs)
        print(f"  {name:<28}{epochs[name]['rows']:>7,} rows {epochs[name]['epoch_seconds']:>7.2f} s/epoch "
              f"{epochs[name]['sentences_per_second']:>7,.0f} sentences/s", flush=True)  # fmt: skip
    base = epochs["full, foreach Adam"]["epoch_seconds"]
    for name, result in epochs.items():
        result["speed_up"] = base / result["epoch_seconds"]

    folds = {"one process (workers=1)": time_folds(encoded, vocab_size, rnn, 1, args.fold_epochs)}
    print(
        f"  10 folds, {args.fold_epochs} epochs, one process: {folds['one process (workers=1)']['wall_seconds']:.1f} s",
        flush=True,
    )
    folds["a worker per core (default)"] = time_folds(encoded, vocab_size, rnn, None, args.fold_epochs)
    print(
        f"  10 folds, {args.fold_epochs} epochs, a worker per core: {folds['a worker per core (default)']['wall_seconds']:.1f} s",
        flush=True,
    )
    same = folds["one process (workers=1)"]["fold_accuracy"] == folds["a worker per core (default)"]["fold_accuracy"]
    fold_speed_up = folds["one process (workers=1)"]["wall_seconds"] / folds["a worker per core (default)"]["wall_seconds"]

    print(f"\n{'one fold, an epoch':<28}{'rows':>8}{'s/epoch':>10}{'sent/s':>9}{'speed-up':>10}")
    for name, result in epochs.items():
        print(
            f"{name:<28}{result['rows']:>8,}{result['epoch_seconds']:>10.2f}{result['sentences_per_second']:>9,.0f}{result['speed_up']:>9.2f}x"
        )
    print(f"\n10 folds x {args.fold_epochs} epochs: one process {folds['one process (workers=1)']['wall_seconds']:.1f} s, "
          f"a worker per core {folds['a worker per core (default)']['wall_seconds']:.1f} s: {fold_speed_up:.2f}x; "
          f"same accuracies: {same}")  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": machine,
        "fold_epochs": args.fold_epochs,
        "epochs": epochs,
        "folds": folds,
        "fold_speed_up": fold_speed_up,
        "same_accuracies": same,
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {args.output}")


if __name__ == "__main__":
    main()
