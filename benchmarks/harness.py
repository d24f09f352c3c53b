"""What the benchmarks share: the machine's description, timed child processes, fresh project copies.

Imported by the scripts beside it (``python benchmarks/<name>.py`` puts this
folder on ``sys.path``).
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


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


#: Caps oneDNN, ATen, MKL (the float32 matrix products of linear layers) and Numba (Word2Vec's kernel,
#: compiled for a Haswell) at AVX2: how a CPU without native bf16 (float32 only) runs, on one that has it.
AVX2_ENV = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "+avx2,+fma",  # without it Numba adds the host's features (AVX-512) to the name
}


def add_emulate_avx2_argument(parser: argparse.ArgumentParser) -> None:
    """``--emulate-avx2``: run with ``AVX2_ENV`` (a float32-only CPU emulated on a bf16-capable one)."""
    parser.add_argument(
        "--emulate-avx2",
        action="store_true",
        help="emulate an AVX2-only CPU: " + " ".join(f"{k}={v}" for k, v in AVX2_ENV.items()),
    )


def bf16_native(env: dict[str, str]) -> bool:
    """What ``dlflow.models.precision.native_bf16`` says in a process with ``env`` (the variants' environment)."""
    probe = "from dlflow.models.precision import native_bf16; print(native_bf16('cpu'))"
    answer = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return answer.stdout.strip() == "True"


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    """Run ``command`` to completion with its output in ``log``: wall and CPU seconds, load average."""
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_seconds()
    with log.open("w") as out:
        started = time.time()
        completed = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        ended = time.time()
    if completed.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}); log {log}:\n{tail}")
    return {
        "wall_seconds": ended - started,
        "cpu_seconds": _children_cpu_seconds() - cpu_before,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "ended": ended,
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_project(root: Path, tracking_uri: str) -> Path:
    """A fresh copy of the project's configuration with an empty data folder and a created MLflow store."""
    project = root / "project"
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    shutil.copy(REPO / ".telemetry", project / ".telemetry")
    (root / "mlruns").mkdir()
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).search_experiments()  # creates the store's tables
    return project


def project_workdir(workdir: Path | None, prefix: str) -> tuple[Path, str, Path]:
    """``(workdir, tracking URI, project)``: ``workdir`` (a new temporary folder when None) holding a fresh
    project copy and its SQLite MLflow store, made on first use and reused by a later run given the same folder."""
    workdir = (workdir or Path(tempfile.mkdtemp(prefix=prefix))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    project = workdir / "project"
    if not project.exists():
        make_project(workdir, tracking_uri)
    return workdir, tracking_uri, project


def pipeline_end(timings: dict) -> float:
    """The wall-clock time a ``kedro run``'s pipeline ended, from its ``timings.json`` (``TimingHook``)."""
    return (
        timings["process_started"]
        + timings["startup_seconds"]
        + timings["pipeline_seconds"]
        - timings["before_first_node_seconds"]
    )


def write_results(path: Path, results: dict) -> None:
    """``results`` as indented JSON at ``path`` (its folder made), and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written: {path}", flush=True)


def median_run(found: list[dict]) -> dict:
    """The run with the median wall time, with every run's wall time beside it."""
    ordered = sorted(found, key=lambda r: r["wall_seconds"])
    return ordered[(len(ordered) - 1) // 2] | {"wall_seconds_all": [round(r["wall_seconds"], 1) for r in found]}


def describe_machine(env: dict[str, str] | None = None) -> dict:
    """CPU model, cores, whether bf16 is native (for ``env``), platform and Python; printed by every benchmark."""
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "bf16_native": bf16_native(dict(os.environ) if env is None else env),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def print_machine(machine: dict) -> None:
    capped = " ".join(f"{name}={value}" for name, value in AVX2_ENV.items())
    emulated = f"; emulating an AVX2-only CPU ({capped})" if machine.get("emulated_avx2") else ""
    print(f"CPU: {machine['cpu']} ({machine['cpus']} cores); bf16 native: {machine['bf16_native']}{emulated}", flush=True)
