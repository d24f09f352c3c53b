"""Batch inference beyond memory: peak memory of the whole ``kedro run --pipeline inference_cnn`` at two sizes,
and its images/s beside a plain ``mlflow.pyfunc`` script on the same file.

    DLFLOW_DATA_MIRROR=../shared/data flock /tmp/dlflow-bench.lock \\
        python3 benchmarks/inference_benchmark.py [--sizes 250000 1000000] [--speed-size 100000] [--workdir DIR]

In one invocation, every measurement a process of its own (its peak resident set is ``ru_maxrss`` of that
one child, from ``os.wait4``, so no earlier run's peak leaks in):

* **the champion**: a fresh copy of the project (``harness.make_project``) registers
  ``dlflow-cnn-fashion_mnist@champion`` with a short ``kedro run --pipeline cnn`` (the default FastCNN,
  1 epoch on 18,000 images: accuracy does not matter here, the network's cost does) and its reference
  profile, so the inference runs are monitored as a user's are;
* **the inputs**: the mirror's 10,000 Fashion-MNIST test images repeated, copy ``k`` lightly perturbed
  (seeded noise of -2..+2 grey levels, clipped; copy 0 exact), written as a parquet table (``pixels`` raw
  bytes, ``height``, ``width``: the pipeline's own image-table columns) in row groups of 10,000. Parquet,
  not IDX: a big batch arrives as a table (columnar, compressed, read by row group, extra columns
  such as ids or labels beside the pixels); IDX is one gzip stream of a 1998 format;
* **memory**: ``kedro run --pipeline inference_cnn --params images_path=<file>`` at each of ``--sizes``
  (default 250,000 and 1,000,000 images): peak RSS, wall time, images/s;
* **speed** at ``--speed-size`` (alternating ``--rounds`` rounds): the plain script (``PLAIN`` below:
  ``mlflow.pyfunc.load_model("models:/<name>@champion")``, the same file in chunks of 4,096 rows with
  pyarrow, ``predict`` on the whole chunk, or on 256 images at a time as the pipeline calls it, each
  chunk's answers appended to a parquet file; the faster of the two is the baseline), the pipeline as users run it
  (monitoring on: the model also returns its input signals and features, then the batch is judged), and
  the pipeline with ``monitoring.enabled=false`` (the same work as the plain script). images/s is the
  images over the whole process's wall time (start-up and model loading included, on both sides);
  the scoring loop's own rate is beside it;
* **overlap**: the pipeline's scoring loop (``score_images`` into ``ChunkedParquetDataset``, a process per run)
  with reading and writing on their own threads, as it runs, against the same code with every stage
  in one thread (``READ_AHEAD = 0``, ``ahead=0``), alternating rounds (the median of their ratios), on ``--overlap-size`` images of the parquet
  input and on ``--photos`` JPEG files of 1024x768 (a folder: decoding, not the network, is the work).

Prints the CPU model and whether bf16 was native; writes ``benchmarks/results/inference_benchmark.json``.
The machine is shared: the load average before and after each run is recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from harness import REPO, describe_machine, print_machine, project_workdir, write_results

RESULTS = REPO / "benchmarks" / "results" / "inference_benchmark.json"
MODEL = "dlflow-cnn-fashion_mnist"
TRAIN = "cnn.training.epochs=1,cnn.training.min_steps=1,cnn.data.max_train_samples=20000,cnn.training.progress=false"
CHUNK = 4096  # inference.cnn.chunk_size's default: the plain script reads the same chunks
CALL = 256  # inference.cnn.batch_size's default: images per call of predict in the pipeline
GROUP = 10_000  # rows per row group of the input files
NOISE = 2  # copies 1.. of the test images: each pixel moved by a seeded -NOISE..+NOISE grey levels

PLAIN = """
import json, sys, time
started = time.perf_counter()
import mlflow.pyfunc, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq

uri, source, output, chunk, call = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
model = mlflow.pyfunc.load_model(uri)
loop, writer, images = time.perf_counter(), None, 0
for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk, columns=["pixels"]):
    pixels = np.frombuffer(b"".join(batch.column(0).to_pylist()), np.uint8).reshape(-1, 28, 28)
    answers = pd.concat([model.predict(pixels[i : i + call]) for i in range(0, len(pixels), call)], ignore_index=True)
    table = pa.Table.from_pandas(answers, preserve_index=False)
    writer = writer or pq.ParquetWriter(output, table.schema)
    writer.write_table(table)
    images += len(table)
writer.close()
print("PLAIN", json.dumps({"images": images, "loop_seconds": time.perf_counter() - loop}))
"""

OVERLAP = """
import json, sys, time
import yaml
from dlflow.io import ChunkedParquetDataset, ImagesFileDataset
from dlflow.model_registry.champion import RegisteredModelDataset
from dlflow.pipelines.inference import nodes

output, project, source, chunk_size, variant = sys.argv[1:]
monitoring = yaml.safe_load(open(project + "/conf/base/parameters_monitoring.yml"))["monitoring"]
champion = RegisteredModelDataset(family="cnn", model_name="%s").load()
params = {"model_name": "%s", "alias": "champion", "chunk_size": int(chunk_size), "batch_size": %d}
nodes.READ_AHEAD = 1 if variant == "overlapped" else 0
chunks, observations = nodes.score_images(ImagesFileDataset(filepath=source).load(), champion, params, monitoring)
started, cpu = time.perf_counter(), time.process_time()
ChunkedParquetDataset(filepath=output, ahead=1 if variant == "overlapped" else 0).save(chunks)
seconds = time.perf_counter() - started
print("OVERLAP", json.dumps({"images": observations.records, "seconds": round(seconds, 2),
      "images_per_second": round(observations.records / seconds, 1), "cpu_per_wall": round((time.process_time() - cpu) / seconds, 2)}))
""" % (MODEL, MODEL, CALL)


def measured(command: list[str], cwd: Path, env: dict[str, str], log: Path, ok: tuple[int, ...] = (0,)) -> dict:
    """``command`` run to its end with its output in ``log``: wall and CPU seconds, and its own peak RSS
    (``ru_maxrss`` of this child alone, from ``os.wait4``); the load average before and after."""
    load_before = os.getloadavg()[0]
    with log.open("w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in ok:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}); log {log}:\n{tail}")
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit_code": child.returncode,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def has_champion() -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return "champion" in MlflowClient().get_registered_model(MODEL).aliases
    except MlflowException:
        return False


def champion(project: Path, env: dict[str, str], workdir: Path) -> dict:
    """``MODEL@champion`` in the copy: trained and registered by a short ``kedro run --pipeline cnn``, or reused."""
    record = workdir / "cnn.json"
    if has_champion():
        print(f"{MODEL}@champion already registered in {workdir}: not trained again", flush=True)
        return json.loads(record.read_text()) if record.exists() else {"reused": str(workdir)}
    command = ["kedro", "run", "--pipeline", "cnn", "--params", TRAIN]
    print(" ".join(command), "...", flush=True)
    found = {"command": " ".join(command)} | measured(command, project, env, workdir / "cnn.log")
    if not has_champion():
        raise RuntimeError(f"{' '.join(command)} registered no {MODEL}@champion; log {workdir / 'cnn.log'}")
    record.write_text(json.dumps(found))
    print(f"  registered in {found['wall_seconds']:.0f} s", flush=True)
    return found


def write_images(path: Path, count: int, mirror: Path) -> Path:
    """``count`` images: the mirror's test images, repeated; copy ``k`` > 0 perturbed by seeded noise."""
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dlflow.sources.idx import read_idx

    test = read_idx(mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    flat = test.reshape(len(test), -1).astype(np.int16)
    schema = pa.schema([("pixels", pa.binary()), ("height", pa.uint16()), ("width", pa.uint16())])
    partial = path.with_name(f".{path.name}.partial")
    with pq.ParquetWriter(partial, schema) as writer:
        for start in range(0, count, GROUP):
            copy, first = divmod(start, len(test))
            rows = flat[first : first + min(GROUP, count - start)]
            if copy:
                noise = np.random.default_rng(copy).integers(-NOISE, NOISE + 1, rows.shape, dtype=np.int16)
                rows = rows + noise
            rows = np.clip(rows, 0, 255).astype(np.uint8)
            height = pa.array(np.full(len(rows), test.shape[1], np.uint16))
            width = pa.array(np.full(len(rows), test.shape[2], np.uint16))
            pixels = pa.array([row.tobytes() for row in rows], pa.binary())
            writer.write_table(pa.table([pixels, height, width], schema=schema))
    partial.rename(path)
    return path


def scored(log: Path) -> dict:
    """The run's own account of its scoring loop: ``Scored N images of <file> in S s (R/s)``."""
    lines = [line for line in log.read_text().splitlines() if "Scored " in line and " in " in line and "dlflow.pipelines" in line]
    if not lines:
        return {}
    text = lines[-1].split("Scored ", 1)[1]
    images = int(text.split(" ", 1)[0].replace(",", ""))
    seconds = float(text.rsplit(" in ", 1)[1].split(" s", 1)[0])
    return {"images": images, "loop_seconds": seconds}


def pipeline(project: Path, env: dict[str, str], source: Path, log: Path, monitoring: bool = True) -> dict:
    extra = "" if monitoring else ",monitoring.enabled=false"
    command = ["kedro", "run", "--pipeline", "inference_cnn", "--params", f"images_path={source}{extra}"]
    found = {"command": " ".join(command)} | measured(command, project, env, log, ok=(0, 3))  # 3: drift alert
    return found | scored(log)


def plain(project: Path, env: dict[str, str], source: Path, workdir: Path, log: Path, call: int) -> dict:
    """The plain script on ``source``: chunks of ``CHUNK`` rows, ``predict`` on ``call`` images at a time."""
    script = workdir / "plain.py"
    script.write_text(textwrap.dedent(PLAIN))
    output = workdir / "plain_predictions.parquet"
    command = [sys.executable, str(script), f"models:/{MODEL}@champion", str(source), str(output), str(CHUNK), str(call)]
    found = {"command": " ".join(command[1:])} | measured(command, project, env, log)
    line = next(line for line in log.read_text().splitlines() if line.startswith("PLAIN "))
    return found | json.loads(line[len("PLAIN ") :])


def with_rates(found: dict, images: int) -> dict:
    found = found | {"images": images, "images_per_second": round(images / found["wall_seconds"], 1)}
    if "loop_seconds" in found:
        found["loop_images_per_second"] = round(images / found["loop_seconds"], 1)
    return found


def speed(project: Path, env: dict[str, str], source: Path, images: int, rounds: int, workdir: Path) -> list[dict]:
    """Alternating rounds of the plain script, the pipeline, and the pipeline without monitoring."""
    variants = {
        "plain script, predict per chunk": lambda log: plain(project, env, source, workdir, log, CHUNK),
        f"plain script, predict per {CALL}": lambda log: plain(project, env, source, workdir, log, CALL),
        "kedro run (monitored)": lambda log: pipeline(project, env, source, log),
        "kedro run, monitoring off": lambda log: pipeline(project, env, source, log, monitoring=False),
    }
    found = []
    for round_ in range(rounds):
        order = list(variants) if round_ % 2 == 0 else list(variants)[::-1]
        for name in order:
            log = workdir / f"speed_{round_ + 1}_{len(found)}.log"
            result = {"variant": name, "round": round_ + 1} | with_rates(variants[name](log), images)
            found.append(result)
            print(f"  {name:>31} round {result['round']}: {result['images_per_second']:7.1f} images/s "
                  f"(loop {result.get('loop_images_per_second', float('nan')):7.1f}), peak {result['peak_rss_mb']:6.0f} MB, "
                  f"load {result['load_before']:.1f}", flush=True)  # fmt: skip
    return found


def overlap(project: Path, env: dict[str, str], inputs: dict[str, tuple[Path, int]], rounds: int, workdir: Path) -> list[dict]:
    """The scoring loop with and without its threads, alternating, each run a process of its own (its peak RSS
    is that variant's); ``inputs``: name -> (file or folder, chunk size)."""
    script = workdir / "overlap.py"
    script.write_text(textwrap.dedent(OVERLAP))
    found = []
    for name, (source, chunk) in inputs.items():
        for round_ in range(rounds):
            for variant in ("overlapped", "sequential") if round_ % 2 == 0 else ("sequential", "overlapped"):
                log = workdir / f"overlap_{name}_{variant}_{round_ + 1}.log"
                command = [
                    sys.executable,
                    str(script),
                    str(workdir / "overlap.parquet"),
                    str(project),
                    str(source),
                    str(chunk),
                    variant,
                ]
                process = measured(command, project, env, log)
                line = next(line for line in log.read_text().splitlines() if line.startswith("OVERLAP "))
                result = {"input": name, "variant": variant, "round": round_ + 1} | json.loads(line[len("OVERLAP ") :])
                result |= {key: process[key] for key in ("peak_rss_mb", "load_before")}
                found.append(result)
                print(f"  {name:>8} {variant:>10} round {round_ + 1}: {result['images_per_second']:7.1f} images/s "
                      f"(CPU/wall {result['cpu_per_wall']}), peak {result['peak_rss_mb']:5.0f} MB, load {result['load_before']:.1f}", flush=True)  # fmt: skip
    return found


def write_photos(folder: Path, count: int, mirror: Path) -> Path:
    """``count`` JPEG photos of 1024x768 (the mirror's test images enlarged, with seeded noise): a folder of files
    whose decoding (once when read and checked, once by the model) costs more than the network."""
    if folder.exists():
        return folder
    import numpy as np
    from PIL import Image

    from dlflow.sources.idx import read_idx

    test = read_idx(mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    rng = np.random.default_rng(0)
    partial = folder.with_name(f".{folder.name}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        large = np.asarray(Image.fromarray(test[index % len(test)]).resize((1024, 768), Image.BICUBIC), np.int16)
        noisy = np.clip(large + rng.integers(-6, 7, large.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).convert("RGB").save(partial / f"{index:06d}.jpg", quality=90)
    partial.rename(folder)
    return folder


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[250_000, 1_000_000], help="the two sizes of the memory runs")
    parser.add_argument("--speed-size", type=int, default=100_000, help="images of the speed comparison (0: none)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the speed comparison")
    parser.add_argument("--overlap-size", type=int, default=20_000, help="images of the overlap comparison (0: none)")
    parser.add_argument("--photos", type=int, default=300, help="JPEG photos of the overlap comparison (0: none)")
    parser.add_argument("--overlap-rounds", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the project copy and inputs here (reused)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    import mlflow

    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
    machine = describe_machine()
    print_machine(machine)
    print(f"load average {os.getloadavg()[0]:.2f}; {' '.join(sys.argv)}", flush=True)
    workdir, tracking_uri, project = project_workdir(args.workdir, "dlflow-inference-bench-")
    env = dict(os.environ) | {"MLFLOW_TRACKING_URI": tracking_uri, "DLFLOW_DATA_MIRROR": str(mirror),
                              "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}  # fmt: skip
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    started = time.time()
    results = {"machine": machine, "command": " ".join(sys.argv), "champion": champion(project, env, workdir)}
    sizes = sorted(
        {*args.sizes, *([args.speed_size] if args.speed_size else []), *([args.overlap_size] if args.overlap_size else [])}
    )
    inputs = {size: write_images(workdir / f"images_{size}.parquet", size, mirror) for size in sizes}
    results["input"] = {
        "format": "parquet: pixels (784 raw bytes), height, width; row groups of 10,000",
        "images": f"the mirror's 10,000 Fashion-MNIST test images repeated; copy k > 0 with seeded noise of -{NOISE}..+{NOISE} grey levels",
        "chunk_size": CHUNK,
        "file_mb": {str(size): round(path.stat().st_size / 2**20, 1) for size, path in inputs.items()},
    }

    summary = {}
    if args.overlap_size:
        print(f"overlap: the scoring loop, its threads or one thread: {args.overlap_size:,} images (parquet), "
              f"{args.photos:,} photos (JPEG files)", flush=True)  # fmt: skip
        overlap_inputs = {"parquet": (inputs[args.overlap_size], CHUNK)}
        if args.photos:
            overlap_inputs["photos"] = (write_photos(workdir / f"photos_{args.photos}", args.photos, mirror), 64)
        results["overlap"] = overlap(project, env, overlap_inputs, args.overlap_rounds, workdir)
        for name in overlap_inputs:
            runs = {variant: [r for r in results["overlap"] if (r["input"], r["variant"]) == (name, variant)]
                    for variant in ("overlapped", "sequential")}  # fmt: skip
            ratios = [a["images_per_second"] / b["images_per_second"] for a, b in zip(runs["overlapped"], runs["sequential"])]
            summary[f"overlapped_vs_sequential_{name}"] = round(median(ratios), 3)  # the median of the rounds' ratios
            summary[f"overlapped_vs_sequential_{name}_rounds"] = [round(ratio, 3) for ratio in ratios]
            peaks = {variant: median([r["peak_rss_mb"] for r in found]) for variant, found in runs.items()}
            summary[f"overlapped_vs_sequential_{name}_peak_mb"] = [peaks["overlapped"], peaks["sequential"]]

    print(f"memory: kedro run --pipeline inference_cnn at {args.sizes[0]:,} and {args.sizes[1]:,} images", flush=True)
    results["memory"] = []
    for size in args.sizes:
        found = with_rates(pipeline(project, env, inputs[size], workdir / f"memory_{size}.log"), size)
        results["memory"].append(found)
        print(f"  {size:>9,} images: peak {found['peak_rss_mb']:6.0f} MB, {found['wall_seconds']:.0f} s, "
              f"{found['images_per_second']:.1f} images/s, load {found['load_before']:.1f}", flush=True)  # fmt: skip
    small, large = results["memory"]
    summary["peak_ratio"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)

    if args.speed_size:
        print(f"speed: {args.speed_size:,} images, {args.rounds} alternating rounds", flush=True)
        results["speed"] = speed(project, env, inputs[args.speed_size], args.speed_size, args.rounds, workdir)
        names = list(dict.fromkeys(r["variant"] for r in results["speed"]))
        rate = {name: median([r["images_per_second"] for r in results["speed"] if r["variant"] == name]) for name in names}
        loop = {name: median([r["loop_images_per_second"] for r in results["speed"] if r["variant"] == name]) for name in names}
        best = max((name for name in names if name.startswith("plain")), key=rate.get)  # the stronger baseline
        summary |= {
            "plain_baseline": best,
            "pipeline_vs_plain": round(rate["kedro run (monitored)"] / rate[best], 3),
            "pipeline_unmonitored_vs_plain": round(rate["kedro run, monitoring off"] / rate[best], 3),
            "pipeline_loop_vs_plain_loop": round(loop["kedro run (monitored)"] / loop[best], 3),
            "pipeline_unmonitored_loop_vs_plain_loop": round(loop["kedro run, monitoring off"] / loop[best], 3),
            "plain_per_chunk_vs_plain_per_call": round(
                rate["plain script, predict per chunk"] / rate[f"plain script, predict per {CALL}"], 3
            ),
        }

    results["summary"] = summary
    results["targets"] = {
        "peak(1M) <= 1.2 x peak(250k)": {"value": summary["peak_ratio"], "met": summary["peak_ratio"] <= 1.2},
    }
    if "pipeline_vs_plain" in summary:
        results["targets"]["pipeline images/s >= 0.9 x the faster plain script"] = {
            "value": summary["pipeline_vs_plain"],
            "met": summary["pipeline_vs_plain"] >= 0.9,
        }
    results["wall_seconds"] = round(time.time() - started)
    print("summary:", json.dumps(summary, indent=2))
    for name, target in results["targets"].items():
        print(f"{'met   ' if target['met'] else 'MISSED'} {name}: {target['value']}")
    write_results(args.output, results)


if __name__ == "__main__":
    main()
