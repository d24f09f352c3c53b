"""Issue 28's serving numbers: ``mlflow models serve`` of a registered CNN champion under bounded loads on
loopback, our configuration beside MLflow's defaults, one invocation.

The model. ``--model-uri`` (with ``--tracking-uri``) of an existing champion, or, by default, a fresh copy
of the project (``harness.make_project``: its own ``data/`` and MLflow store) in which
``kedro run --pipeline cnn --env test`` trains the default network (FastCNN 16-64-128-256, test-time
flip: what ``kedro run`` registers) on 2,000 Fashion-MNIST images for 2 epochs and registers it. What a
request costs depends on the network, not on how long it was trained. ``--workdir`` keeps the copy
(reused: no retraining when it holds the champion).

The servers, each on a free port of 127.0.0.1, ``--env-manager local``:

* ``ours``: ``python -m dlflow.serving.server <uri>`` (``dlflow.serving.server``: one worker per core,
  one compute thread per worker, no access log);
* ``default``: ``mlflow models serve -m <uri> --env-manager local`` (MLflow's defaults: one worker,
  PyTorch's threads, access log);
* ``before`` (``--before REV``): MLflow's defaults with the whole ``dlflow`` package as it was at git
  revision ``REV`` (``git archive``, first on ``PYTHONPATH``): the model code before this work, which the
  issue measured.

``ours`` and ``default`` load today's model code (its warm-up, channels-last weights and records answer).
``--ablation`` adds a second phase: ``ours`` beside itself with one of its choices undone (one worker;
PyTorch's default threads; the access log), on single-image pixel requests from 1 and 8 clients.

Side by side, not one after the other: the servers of a phase run at once (an idle one uses no CPU),
every worker started, and each cell is measured ``--rounds`` times on each of them, the servers' order
rotating from round to round, so that whatever else runs on the machine falls on all of them alike.
Requests/s is the median of the rounds; p50 and p99 are over every round's requests.

The load. A separate process (this file with ``--client``): asyncio on uvloop with aiohttp, ``C``
keep-alive connections, each sending its next request as soon as its last was answered (a closed
loop), for ``--seconds`` after ``--warmup`` seconds not counted (one round). Each request carries the next 1 or 64
real Fashion-MNIST test images (the IDX file of ``$DLFLOW_DATA_MIRROR``) as pre-encoded JSON:
``pixels`` ``{"inputs": <(N, 28, 28) values 0-255>}`` (what the issue sent) or ``png``
``{"inputs": {"image": [<base64 PNG>, ...]}}`` (encoded files, as a camera or a browser sends them).
An answer counts when it is HTTP 200 and holds one record per image; anything else (another status, a
short answer, a connection error, a timeout) is an error. **The client runs on the same two cores as
the server**: its CPU seconds are recorded beside the server's (its whole process group).

First, the server's path without HTTP, in process (``--cost``): the model loaded as the scoring server
loads it, and MLflow's whole handling of a request body (``scoring_server.invocations``: JSON parsing,
``predict``, the answer's JSON) timed in CPU seconds of its one thread, today's model code against
``before``'s, in alternating processes, median of ``--rounds``: what the model's changes save per
request, hardly touched by other work on the machine.

Prints the machine line (CPU model, bf16 native), a table per body form (requests/s, images/s, p50,
p99, errors, server and client CPU milliseconds per request) for each configuration beside the others,
and the issue's targets against ``ours``; writes ``benchmarks/results/serving_benchmark.json``.

    flock /tmp/dlflow-bench.lock python3 benchmarks/serving_benchmark.py [--before 70cad63] [--ablation] [--rounds 3]

On a machine where other work keeps the cores busy, ``--nice -10`` (as root) gives the servers and the
client a larger share of them: the numbers then describe the configurations rather than the
scheduler's division of the cores among all the work; the JSON records the niceness and load averages.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL_NAME = "dlflow-cnn-fashion_mnist-test"  # what `kedro run --pipeline cnn --env test` registers
TEST_IMAGES = Path("fashion-mnist") / "t10k-images-idx3-ubyte.gz"
STARTUP_SECONDS = 300
TARGETS = {  # issue 28, single-image requests, 2 cores shared with the client
    "requests_per_second_8_clients": 400.0,
    "p99_ms_8_clients": 50.0,
    "errors_8_clients": 0,
    "p50_ms_1_client": 5.0,
}


# ------------------------------------------------------------------------------------------- the client


def request_bodies(images, per_request: int, form: str, limit: int) -> list[bytes]:
    """Up to ``limit`` JSON bodies, each the next ``per_request`` images of ``images`` (N, 28, 28) uint8."""
    bodies = []
    for start in range(0, len(images) - per_request + 1, per_request):
        chunk = images[start : start + per_request]
        if form == "pixels":
            payload = {"inputs": chunk.tolist()}
        else:
            payload = {"inputs": {"image": [png_base64(image) for image in chunk]}}
        bodies.append(json.dumps(payload, separators=(",", ":")).encode())
        if len(bodies) == limit:
            break
    return bodies


def png_base64(image) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


async def closed_loop(url: str, bodies: list[bytes], clients: int, per_request: int, warmup: float, seconds: float) -> dict:
    """``clients`` connections sending ``bodies`` in turn; latencies of the requests started in the measured window."""
    import aiohttp

    latencies: list[float] = []
    errors: list[str] = []
    marker = b'"prediction"'
    started = time.perf_counter()
    measure_from, stop = started + warmup, started + warmup + seconds
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    headers = {"Content-Type": "application/json"}

    async def connection(index: int) -> None:
        turn = index
        while (sent := time.perf_counter()) < stop:
            body = bodies[turn % len(bodies)]
            turn += clients
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    payload = await answer.read()
                    problem = None
                    if answer.status != 200:
                        problem = f"HTTP {answer.status}: {payload[:200]!r}"
                    elif payload.count(marker) != per_request:
                        problem = f"{payload.count(marker)} records for {per_request} images"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                problem = f"{type(error).__name__}: {error}"
            if sent >= measure_from:
                if problem is None:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors.append(problem)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(connection(i) for i in range(clients)))
    return {"latencies": latencies, "errors": errors, "window_seconds": seconds}


def client_main(spec_path: Path) -> None:
    """``--client SPEC``: run one cell's load (the spec's JSON) and write its result beside the spec."""
    import numpy as np
    import uvloop

    from dlflow.sources.idx import read_idx

    spec = json.loads(spec_path.read_text())
    cache = spec_path.with_name(f"bodies-{spec['form']}-{spec['per_request']}.json")  # built once, read by every round
    if cache.exists():
        bodies = [body.encode() for body in json.loads(cache.read_text())]
    else:
        images = read_idx(Path(spec["images"]))
        bodies = request_bodies(images, spec["per_request"], spec["form"], limit=max(64, 4000 // spec["per_request"]))
        cache.write_text(json.dumps([body.decode() for body in bodies]))
    cpu_before = _own_cpu_seconds()
    found = uvloop.run(closed_loop(spec["url"], bodies, spec["clients"], spec["per_request"], spec["warmup"], spec["seconds"]))
    result = {
        "latencies_ms": np.round(np.asarray(found["latencies"]) * 1000, 3).tolist(),
        "errors": len(found["errors"]),
        "error_examples": sorted(set(found["errors"]))[:3],
        "body_bytes": int(np.mean([len(b) for b in bodies])),
        "client_cpu_seconds": _own_cpu_seconds() - cpu_before,  # warm-up included
    }
    spec_path.with_suffix(".result.json").write_text(json.dumps(result))


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------ the server's path, in process

#: The request kinds of the in-process measurement: (body form, images per request).
COST_KINDS = [("pixels", 1), ("png", 1), ("pixels", 64), ("png", 64)]


def cost_main(spec_path: Path) -> None:
    """``--cost SPEC``: load the model as the scoring server does and time, in CPU seconds of this one thread,
    MLflow's whole handling of a request body (``scoring_server.invocations``: JSON parsing, ``predict``, the
    answer's JSON) for each of ``COST_KINDS``; write the milliseconds per request beside the spec."""
    import mlflow
    import torch
    from mlflow.pyfunc import scoring_server

    from dlflow.sources.idx import read_idx

    spec = json.loads(spec_path.read_text())
    torch.set_num_threads(1)
    mlflow.set_tracking_uri(spec["tracking_uri"])
    model = mlflow.pyfunc.load_model(spec["model_uri"])
    scoring_server.init(model)  # what the server does before its first request (it marks the serving environment)
    schema = model.metadata.get_input_schema()
    images = read_idx(Path(spec["images"]))
    found = {}
    for form, per_request in COST_KINDS:
        bodies = request_bodies(images, per_request, form, limit=max(4, 64 // per_request))
        calls = max(8, 256 // per_request)
        for body in bodies[:2]:  # warm
            scoring_server.invocations(body, "application/json", model, schema)
        started = time.thread_time()
        for call in range(calls):
            answer = scoring_server.invocations(bodies[call % len(bodies)], "application/json", model, schema)
            if answer.status != 200:
                raise RuntimeError(f"{form} x{per_request}: HTTP {answer.status}: {answer.response[:300]}")
        found[f"{form} x{per_request}"] = 1000 * (time.thread_time() - started) / calls
    spec_path.with_suffix(".result.json").write_text(json.dumps(found))


def model_cost(names: list[str], configs: dict, model_uri: str, tracking_uri: str, images: Path, args, work: Path) -> dict:
    """CPU milliseconds per request of the server's path without HTTP, for each model code in ``names``
    (``ours``: today's; ``before``: the archived package), one thread, in alternating processes; median of
    ``args.rounds``. Thread CPU time: what other work on the machine does to it is small."""
    import statistics

    spec = work / "cost.json"
    spec.write_text(json.dumps({"model_uri": model_uri, "tracking_uri": tracking_uri, "images": str(images)}))
    rounds: dict[str, list[dict]] = {name: [] for name in names}
    for turn in range(args.rounds):
        for name in names if turn % 2 == 0 else names[::-1]:
            env = dict(os.environ) | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} | configs[name]["environment"]
            env = {k: v for k, v in env.items() if k != "UVICORN_ACCESS_LOG"}
            subprocess.run([sys.executable, __file__, "--cost", str(spec)], env=env, check=True, timeout=900,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            rounds[name].append(json.loads(spec.with_suffix(".result.json").read_text()))
    found = {}
    for form, per_request in COST_KINDS:
        kind = f"{form} x{per_request}"
        row = {name: round(statistics.median(r[kind] for r in rounds[name]), 2) for name in names}
        if len(names) == 2:
            row[f"{names[1]} / {names[0]}"] = round(row[names[1]] / row[names[0]], 2)
        found[kind] = row
        print(f"  {kind:10} CPU ms per request, no HTTP: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return found


# ------------------------------------------------------------------------------------------ the servers


#: One choice of ``ours`` undone at a time (``--ablation``), measured beside ``ours`` on ``ABLATION_CELLS``.
ABLATIONS = {
    "ours_1_worker": "ours with one worker",
    "ours_torch_threads": "ours with PyTorch's default threads (a thread per core in every worker)",
    "ours_access_log": "ours with uvicorn's access log",
}
ABLATION_CELLS = [("pixels", 1, 1), ("pixels", 1, 8)]  # (body form, images per request, clients)


def configurations(args, model_uri: str, work: Path) -> dict[str, dict]:
    """Name -> how to start it: ``command``, ``environment`` (added to the benchmark's), ``workers``, ``note``."""
    from dlflow.serving.server import default_workers, serving_command

    def ours(workers: int | None = None, access_log: bool = False, threads: bool = True) -> dict:
        command, env = serving_command(
            model_uri, host="127.0.0.1", port=0, workers=workers, access_log=access_log, environment={}
        )
        if not threads:
            env = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        shown = ", ".join(f"{k}={v}" for k, v in env.items())
        return {"command": command, "environment": env, "workers": workers or default_workers(),
                "note": f"python -m dlflow.serving.server: {shown}, -w {workers or default_workers()}"}  # fmt: skip

    found = {}
    for name in args.configs:
        if name == "ours":
            found[name] = ours()
        else:
            command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                       "-h", "127.0.0.1", "-p", "0"]  # fmt: skip
            found[name] = {"command": command, "environment": {}, "workers": 1, "note": "mlflow models serve, MLflow's defaults"}
            if name == "before":
                source = checkout_package(args.before, work)
                found[name]["environment"] = {"PYTHONPATH": str(source)}
                found[name]["note"] += f"; the dlflow package of git revision {args.before}"
    if args.ablation:
        found["ours"] = found.get("ours") or ours()
        found["ours_1_worker"] = ours(workers=1)
        found["ours_torch_threads"] = ours(threads=False)
        found["ours_access_log"] = ours(access_log=True)
        for name, note in ABLATIONS.items():
            found[name]["note"] = f"{note}: {found[name]['note']}"
    return found


def checkout_package(revision: str, work: Path) -> Path:
    """``src/dlflow`` as it was at ``revision`` (``git archive``: the checkout is not touched), extracted under ``work``."""
    target = work / f"dlflow-{revision}"
    if not (target / "src" / "dlflow").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        from harness import REPO

        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "src/dlflow"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    probe = "import importlib.util; print(importlib.util.find_spec('dlflow').origin)"
    found = subprocess.run([sys.executable, "-c", probe], env=os.environ | {"PYTHONPATH": str(target / "src")},
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    if not Path(found).is_relative_to(target):
        raise RuntimeError(f"PYTHONPATH={target / 'src'} does not shadow the installed dlflow ({found})")
    return target / "src"


def _niced(increment: int):
    """A ``preexec_fn`` that changes the child's niceness by ``increment`` (negative: a larger share of busy cores)."""
    return (lambda: os.nice(increment)) if increment else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(config: dict, env: dict[str, str], log: Path):
    """The server of ``config`` on a free port, up with every worker started; yields (url, process); always stopped."""
    port = free_port()
    at = config["command"].index("-p") + 1
    command = config["command"][:at] + [str(port)] + config["command"][at + 1 :]
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env | config["environment"], stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True, preexec_fn=_niced(config.get("nice", 0)))  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, server, log, config["workers"])
        yield url, server
    finally:
        stop(server)


def wait_until_up(url: str, server: subprocess.Popen, log: Path, workers: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}; log {log}:\n{log.read_text()[-3000:]}")
        started = log.read_text().count("Application startup complete")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as answer:
                if answer.status == 200 and started >= workers:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not start {workers} worker(s) within {STARTUP_SECONDS} s; log {log}")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the CLI, uvicorn and its workers), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if server.poll() is not None:
            break
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            continue
    try:  # workers left behind by a killed supervisor
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def group_cpu_seconds(group: int) -> dict[int, float]:
    """CPU seconds (user + system) of every live process in process group ``group``, by pid."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # fields[0] is the state; pgrp is the 5th field of stat
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


# ---------------------------------------------------------------------------------------------- cells


def run_once(url: str, server: subprocess.Popen, images: Path, cell: tuple[str, int, int], args, work: Path) -> dict:
    """One load (``cell``: body form, images per request, clients) against a running server: the client's
    latencies and errors, and the CPU seconds of the server's processes and of the client in it."""
    form, per_request, clients = cell
    spec = work / f"cell-{form}-{per_request}-{clients}.json"
    spec.write_text(json.dumps({"url": f"{url}/invocations", "images": str(images), "clients": clients, "per_request": per_request,
                                "form": form, "warmup": args.warmup, "seconds": args.seconds}))  # fmt: skip
    before, load = group_cpu_seconds(server.pid), os.getloadavg()[0]
    subprocess.run([sys.executable, __file__, "--client", str(spec)], check=True, timeout=args.warmup + args.seconds + 300,
                   preexec_fn=_niced(args.nice))  # fmt: skip
    after = group_cpu_seconds(server.pid)
    found = json.loads(spec.with_suffix(".result.json").read_text())
    found["server_cpu_seconds"] = sorted((after[p] - before.get(p, 0.0) for p in after), reverse=True)
    found["load_average"] = load
    return found


def summarise(cell: tuple[str, int, int], rounds: list[dict], args) -> dict:
    """The rounds of one cell on one server: median requests/s, pooled latency percentiles, errors, CPU per request."""
    import numpy as np

    form, per_request, clients = cell
    rates = [len(r["latencies_ms"]) / args.seconds for r in rounds]
    latencies = np.concatenate([np.asarray(r["latencies_ms"], dtype=float) for r in rounds])
    answered = sum(len(r["latencies_ms"]) + r["errors"] for r in rounds) or 1
    measured = args.seconds / (args.seconds + args.warmup)  # CPU is counted over warm-up and window alike
    rate = float(np.median(rates))
    return {
        "body": form,
        "images_per_request": per_request,
        "clients": clients,
        "requests_per_second": rate,
        "images_per_second": rate * per_request,
        "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
        "errors": sum(r["errors"] for r in rounds),
        "requests": int(len(latencies)),
        "requests_per_second_rounds": [round(x, 1) for x in rates],
        "server_cpu_ms_per_request": 1000 * measured * sum(sum(r["server_cpu_seconds"]) for r in rounds) / answered,
        "client_cpu_ms_per_request": 1000 * measured * sum(r["client_cpu_seconds"] for r in rounds) / answered,
        "busiest_process_cpu_share": max(r["server_cpu_seconds"][0] for r in rounds) / (args.seconds + args.warmup),
        "load_average": float(np.mean([r["load_average"] for r in rounds])),
        "error_examples": sorted({e for r in rounds for e in r["error_examples"]})[:3],
    }


def measure(phase: str, names: list[str], grid: list[tuple[str, int, int]], configs: dict, env: dict, images: Path, args,
            work: Path) -> list[dict]:  # fmt: skip
    """Every server of ``names`` running at once (idle ones use no CPU); each cell of ``grid`` measured
    ``args.rounds`` times on each server, the servers' order rotating from round to round, so that what
    else runs on the machine falls on all of them alike."""
    from contextlib import ExitStack

    cells = []
    with ExitStack() as stack:
        servers = {}
        for name in names:
            print(f"[{phase}] starting {name}: {configs[name]['note']}", flush=True)
            servers[name] = stack.enter_context(running(configs[name], env, work / f"server-{phase}-{name}.log"))
        for cell in grid:
            rounds: dict[str, list[dict]] = {name: [] for name in names}
            for turn in range(args.rounds):
                for name in names[turn % len(names) :] + names[: turn % len(names)]:
                    url, server = servers[name]
                    rounds[name].append(run_once(url, server, images, cell, args, work))
            for name in names:
                found = {"phase": phase, "configuration": name} | summarise(cell, rounds[name], args)
                cells.append(found)
                print(f"  {cell[0]:6} {cell[1]:2d} image(s) x {cell[2]:2d} clients  {name:20} {found['requests_per_second']:7.1f} req/s "
                      f"{found['requests_per_second_rounds']}, "
                      f"p50 {found['p50_ms'] or float('nan'):6.1f} ms, p99 {found['p99_ms'] or float('nan'):6.1f} ms, "
                      f"{found['errors']} errors, server {found['server_cpu_ms_per_request']:.2f} ms CPU/request "
                      f"(load {found['load_average']:.1f})", flush=True)  # fmt: skip
    return cells


def print_cells(cells: list[dict], names: list[str]) -> None:
    for form in dict.fromkeys(c["body"] for c in cells):
        print(f"\nbody: {form}")
        print(f"{'clients':>7} {'images':>6} | " + " | ".join(f"{name:^62}" for name in names))
        print(
            f"{'':>7} {'':>6} | "
            + " | ".join(
                f"{'req/s':>8} {'img/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'srv cpu':>8} {'cli cpu':>8}"
                for _ in names
            )
        )
        keys = sorted({(c["clients"], c["images_per_request"]) for c in cells if c["body"] == form}, key=lambda k: (k[1], k[0]))
        for clients, per_request in keys:
            row = []
            for name in names:
                cell = next((c for c in cells if c["configuration"] == name and c["body"] == form
                             and c["clients"] == clients and c["images_per_request"] == per_request), None)  # fmt: skip
                row.append(
                    f"{cell['requests_per_second']:8.1f} {cell['images_per_second']:8.0f} {cell['p50_ms'] or float('nan'):8.1f} "
                    f"{cell['p99_ms'] or float('nan'):8.1f} {cell['errors']:6d} {cell['server_cpu_ms_per_request']:8.2f} "
                    f"{cell['client_cpu_ms_per_request']:8.2f}"
                    if cell else f"{'-':^62}"
                )  # fmt: skip
            print(f"{clients:>7} {per_request:>6} | " + " | ".join(row), flush=True)


def side_by_side(cells: list[dict], names: list[str]) -> list[dict]:
    """A row per body form, images per request and clients: each configuration's requests/s, p50, p99 and errors."""
    rows = []
    for key in dict.fromkeys((c["body"], c["images_per_request"], c["clients"]) for c in cells):
        row = {"body": key[0], "images/request": key[1], "clients": key[2]}
        for name in names:
            cell = next(
                (c for c in cells if c["configuration"] == name and (c["body"], c["images_per_request"], c["clients"]) == key),
                None,
            )
            if cell:
                row |= {f"{name} req/s": round(cell["requests_per_second"], 1), f"{name} p50 ms": _round(cell["p50_ms"]),
                        f"{name} p99 ms": _round(cell["p99_ms"]), f"{name} errors": cell["errors"]}  # fmt: skip
        rows.append(row)
    return rows


def ablation_rows(cells: list[dict], names: list[str]) -> list[dict]:
    """A row per configuration (``ours`` and each choice undone): single-image pixel requests from 1 and 8 clients."""
    rows = []
    for name in names:
        row = {"configuration": name}
        for clients in (1, 8):
            cell = next((c for c in cells if c["configuration"] == name and c["body"] == "pixels"
                         and c["images_per_request"] == 1 and c["clients"] == clients), None)  # fmt: skip
            if cell:
                label = "1 client" if clients == 1 else f"{clients} clients"
                row |= {f"{label} req/s": round(cell["requests_per_second"], 1), f"{label} p50 ms": _round(cell["p50_ms"]),
                        f"{label} p99 ms": _round(cell["p99_ms"]), f"{label} errors": cell["errors"]}  # fmt: skip
        rows.append(row)
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def printable(command: list[str]) -> str:
    """``command`` as a user types it: ``mlflow models serve ...``, the port as ``PORT``."""
    shown = ["mlflow", *command[3:]]
    at = shown.index("-p") + 1
    return " ".join(shown[:at] + ["PORT"] + shown[at + 1 :])


def against_targets(cells: list[dict], form: str) -> dict:
    """The issue's numbers against ``ours`` on single-image ``form`` requests: each measured value and whether it is met."""

    def cell(clients: int) -> dict | None:
        return next((c for c in cells if c["configuration"] == "ours" and c["body"] == form
                     and c["images_per_request"] == 1 and c["clients"] == clients), None)  # fmt: skip

    eight, one = cell(8), cell(1)
    found = {}
    if eight:
        found["requests_per_second_8_clients"] = {"target": ">= 400", "measured": eight["requests_per_second"],
                                                  "met": eight["requests_per_second"] >= TARGETS["requests_per_second_8_clients"]}  # fmt: skip
        found["p99_ms_8_clients"] = {
            "target": "<= 50",
            "measured": eight["p99_ms"],
            "met": (eight["p99_ms"] or 1e9) <= TARGETS["p99_ms_8_clients"],
        }
        found["errors_8_clients"] = {"target": "0", "measured": eight["errors"], "met": eight["errors"] == 0}
    if one:
        found["p50_ms_1_client"] = {
            "target": "<= 5",
            "measured": one["p50_ms"],
            "met": (one["p50_ms"] or 1e9) <= TARGETS["p50_ms_1_client"],
        }
    return found


# ----------------------------------------------------------------------------------------- the model


def obtain_champion(args, mirror: Path) -> tuple[str, str, dict]:
    """(model URI, tracking URI, how it was obtained): the given one, or a fresh project copy's ``cnn --env test`` champion."""
    if args.model_uri:
        if not args.tracking_uri:
            raise SystemExit("--model-uri needs --tracking-uri (the store that holds it)")
        return args.model_uri, args.tracking_uri, {"given": args.model_uri}
    from harness import project_workdir

    workdir, tracking_uri, project = project_workdir(args.workdir, "dlflow-serving-bench-")
    model_uri = f"models:/{MODEL_NAME}@champion"
    record = workdir / "cnn.json"  # how the champion was trained, kept beside it
    if has_champion(tracking_uri, MODEL_NAME):
        print(f"{model_uri} already registered in {workdir}: not trained again", flush=True)
        return model_uri, tracking_uri, {"reused": str(workdir)} | (json.loads(record.read_text()) if record.exists() else {})
    command = ["kedro", "run", "--pipeline", "cnn", "--env", "test"]
    env = dict(os.environ) | {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "DLFLOW_DATA_MIRROR": str(mirror),
        "KEDRO_DISABLE_TELEMETRY": "true",
    }
    print(f"{' '.join(command)} in {project} ...", flush=True)
    started = time.perf_counter()
    with (workdir / "cnn.log").open("w") as out:
        completed = subprocess.run(command, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
    if completed.returncode != 0 or not has_champion(tracking_uri, MODEL_NAME):
        raise RuntimeError(
            f"{' '.join(command)} registered no {model_uri} (exit {completed.returncode}); log {workdir / 'cnn.log'}"
        )
    wall = time.perf_counter() - started
    print(f"trained and registered in {wall:.0f} s", flush=True)
    trained = {"trained": " ".join(command), "workdir": str(workdir), "wall_seconds": wall}
    record.write_text(json.dumps(trained))
    return model_uri, tracking_uri, trained


def has_champion(tracking_uri: str, name: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return "champion" in MlflowClient(tracking_uri=tracking_uri).get_registered_model(name).aliases
    except MlflowException:
        return False


def describe_model(model_uri: str, tracking_uri: str) -> dict:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    info = mlflow.models.get_model_info(model_uri)
    about = info.metadata or {}
    return {"uri": model_uri, "summary": about.get("summary"), "flip_test_time": _config(model_uri).get("flip_test_time")}


def _config(model_uri: str) -> dict:
    import mlflow

    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    found = list(folder.rglob("config.json"))
    return json.loads(found[0].read_text()) if found else {}


# ----------------------------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("--client", "--cost"):
        (client_main if sys.argv[1] == "--client" else cost_main)(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-uri", help="serve this model (e.g. models:/dlflow-cnn-fashion_mnist@champion) instead of training one"
    )
    parser.add_argument("--tracking-uri", help="the store that holds --model-uri")
    parser.add_argument("--workdir", type=Path, help="keep the project copy here (reused when it holds the champion)")
    parser.add_argument("--configs", nargs="+", choices=("ours", "default", "before"), default=["ours", "default"])
    parser.add_argument(
        "--before", metavar="REV", help="also measure MLflow's defaults with the dlflow package of this git revision"
    )
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--images", nargs="+", type=int, default=[1, 64], help="images per request")
    parser.add_argument("--bodies", nargs="+", choices=("pixels", "png"), default=["pixels", "png"])
    parser.add_argument(
        "--ablation", action="store_true",
        help="also undo each choice of ours alone (one worker; PyTorch's threads; the access log), single-image pixel requests",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds of each round of a cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each round's measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each cell on each server, interleaved")
    parser.add_argument(
        "--nice", type=int, default=0,
        help="niceness increment of the servers and the load client (e.g. -10 as root, when other work keeps the cores busy: "
        "they then get a larger share of the cores; recorded in the results)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=HERE / "results" / "serving_benchmark.json")
    args = parser.parse_args()
    if args.before and "before" not in args.configs:
        args.configs.append("before")
    if "before" in args.configs and not args.before:
        parser.error("--configs before needs --before REV")

    sys.path.insert(0, str(HERE))
    from harness import describe_machine, print_machine

    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", HERE.parent.parent / "shared" / "data")).resolve()
    images = mirror / TEST_IMAGES
    if not images.is_file():
        parser.error(f"no {images}: set DLFLOW_DATA_MIRROR to the folder that holds {TEST_IMAGES}")
    machine = describe_machine()
    print_machine(machine)
    load_start = os.getloadavg()[0]
    print(f"load average {load_start:.2f}; {' '.join(sys.argv)}", flush=True)
    model_uri, tracking_uri, obtained = obtain_champion(args, mirror)
    model = describe_model(model_uri, tracking_uri) | obtained
    work = Path(tempfile.mkdtemp(prefix="dlflow-serving-cells-"))
    env = dict(os.environ) | {"MLFLOW_TRACKING_URI": tracking_uri, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    configs = configurations(args, model_uri, work)
    for config in configs.values():
        config["nice"] = args.nice
    started = time.time()
    main_names = [name for name in configs if name not in ABLATIONS]
    grid = [(f, n, c) for f in args.bodies for n in args.images for c in args.clients]
    try:
        costed = [name for name in ("ours", "before") if name in configs]
        print(f"\n[cost] the server's path without HTTP, in process, one thread: {', '.join(costed)}", flush=True)
        cost = model_cost(costed, configs, model_uri, tracking_uri, images, args, work)
        cells = measure("main", main_names, grid, configs, env, images, args, work)
        if args.ablation:
            cells += measure("ablation", ["ours", *ABLATIONS], ABLATION_CELLS, configs, env, images, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    main_cells = [c for c in cells if c["phase"] == "main"]
    print_machine(machine)
    print_cells(main_cells, main_names)
    if args.ablation:
        print("\nablation (single-image pixel requests, the four servers measured side by side):")
        for row in ablation_rows([c for c in cells if c["phase"] == "ablation"], ["ours", *ABLATIONS]):
            print("  " + ", ".join(f"{k} {v}" for k, v in row.items()))
    targets = {form: against_targets(main_cells, form) for form in args.bodies}
    for form, found in targets.items():
        for key, value in found.items():
            print(
                f"target {key} ({form}): {value['target']}, measured {value['measured']:.1f}: {'met' if value['met'] else 'MISSED'}"
            )
    results = {
        "machine": machine,
        "model": model,
        "load_client": "a separate process on the same cores: asyncio (uvloop) + aiohttp, one keep-alive connection per client, "
        "closed loop; its CPU per request is in cells.client_cpu_ms_per_request",
        "design": "every server of a phase running at once; each cell measured in rounds, the servers' order rotating "
        "from round to round; requests/s: median of the rounds; p50/p99: over every round's requests",
        "seconds_per_round": args.seconds,
        "warmup_seconds": args.warmup,
        "rounds": args.rounds,
        "niceness_increment": args.nice,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0],
        "wall_seconds": time.time() - started,
        "configurations": {
            name: {"command": printable(c["command"]), "environment": c["environment"], "note": c["note"]}
            for name, c in configs.items()
        },
        "cpu_ms_per_request_without_http": cost,
        "side_by_side": side_by_side(main_cells, main_names),
        **(
            {"ablation": ablation_rows([c for c in cells if c["phase"] == "ablation"], ["ours", *ABLATIONS])}
            if args.ablation
            else {}
        ),
        "targets_single_image": targets,
        "cells": [{k: v for k, v in c.items() if k != "error_examples"} for c in cells],
    }
    examples = {f"{c['configuration']} {c['body']} {c['images_per_request']}x{c['clients']}": c["error_examples"]
                for c in cells if c["error_examples"]}  # fmt: skip
    if examples:
        results["error_examples"] = examples
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
