"""Serving a registered model over HTTP: MLflow's own scoring server, configured to hold under load on CPUs.

``python -m dlflow.serving.server models:/dlflow-cnn-fashion_mnist@champion -p 5001`` runs::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 UVICORN_ACCESS_LOG=false \\
    mlflow models serve -m models:/dlflow-cnn-fashion_mnist@champion --env-manager local \\
        -h 127.0.0.1 -p 5001 -w <cores>

and nothing else: the server, its request parsing, input checks (HTTP 400) and answers stay
MLflow's (``mlflow.pyfunc.scoring_server``: uvicorn, FastAPI, ``predict`` in a thread of the
event loop's pool). What the configuration changes, and why (measured in
``benchmarks/serving_benchmark.py``; docs/inference.md):

* **One worker process per core** (``-w``, default: the cores this process may run on). A
  worker spends most of a small request in Python (JSON parsing, MLflow's input handling,
  the answer's JSON) under its interpreter lock, so one worker keeps about one core busy; MLflow's
  default is a single worker.
* **One compute thread per worker** (``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``, read by
  PyTorch when it starts). By default every worker starts a thread per core for each forward
  pass: with several workers (and the client) on the same cores they preempt one another, and a
  batch of one image gains nothing from splitting.
* **No access log** (``UVICORN_ACCESS_LOG=false``: uvicorn's own option, which MLflow's command
  line leaves at its default): a formatted line on stderr per request costs the worker time on
  every request; ``--access-log`` keeps it.

The model does the rest ahead of time (``ImageClassifierModel.load_context``: weights in
channels-last format, one warm-up forward pass) and answers MLflow's scoring server with the
records it would have made of a table (``ImageClassifierModel.predict``). The command runs with
the environment it was started in (``MLFLOW_TRACKING_URI`` names the registry), plus the three
variables above; a variable already set in that environment is kept.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping, Sequence

#: What the configuration adds to the server's environment (a value already set there wins).
SERVING_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",  # PyTorch's intra-op threads (read when torch starts): one per worker
    "MKL_NUM_THREADS": "1",  # MKL's, for the linear layers' matrix products
    "UVICORN_ACCESS_LOG": "false",  # uvicorn's --no-access-log, through its UVICORN_ environment prefix
}


def default_workers() -> int:
    """One worker per core this process may run on (its CPU affinity), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def serving_command(
    model_uri: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int | None = None,
    access_log: bool = False,
    environment: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow models serve`` command line for ``model_uri`` and the environment to run it in.

    ``workers``: uvicorn worker processes (None: ``default_workers()``); ``access_log``: keep uvicorn's
    line per request; ``environment``: the base environment (None: this process's), to which
    ``SERVING_ENVIRONMENT`` is added where it does not already set a variable.
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    command = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
        "-h", host, "-p", str(port), "-w", str(workers),
    ]  # fmt: skip
    added = {k: v for k, v in SERVING_ENVIRONMENT.items() if access_log is False or k != "UVICORN_ACCESS_LOG"}
    base = dict(os.environ if environment is None else environment)
    return command, {**added, **base}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dlflow.serving.server MODEL_URI [-h HOST] [-p PORT] [-w WORKERS] [--access-log] [--print]``."""
    parser = argparse.ArgumentParser(
        prog="python -m dlflow.serving.server",
        description="Serve a registered model with `mlflow models serve`, one worker per core and one compute "
        "thread per worker (dlflow.serving.server).",
        add_help=False,
    )
    parser.add_argument("model_uri", help="e.g. models:/dlflow-cnn-fashion_mnist@champion (MLFLOW_TRACKING_URI names the store)")
    parser.add_argument("-h", "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument(
        "-w", "--workers", type=int, default=None, help=f"worker processes (default: one per core, here {default_workers()})"
    )
    parser.add_argument("--access-log", action="store_true", help="keep uvicorn's line per request")
    parser.add_argument("--print", action="store_true", help="print the command and its added environment, do not run it")
    parser.add_argument("--help", action="help", help="show this message and exit")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    command, environment = serving_command(
        args.model_uri, host=args.host, port=args.port, workers=args.workers, access_log=args.access_log
    )
    added = " ".join(f"{k}={environment[k]}" for k in SERVING_ENVIRONMENT if k in environment)
    print(f"{added} {shlex.join(['mlflow', *command[3:]])}", file=sys.stderr, flush=True)
    if args.print:
        return
    os.execve(command[0], command, environment)


if __name__ == "__main__":
    main()
