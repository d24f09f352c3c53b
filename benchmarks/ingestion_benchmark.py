"""Issue 25's ingestion speed: dlflow's ingestion of a folder of small PNG/JPEG files against a plain script.

The folder (built once, from real images, no noise): Fashion-MNIST's 10,000 test images (IDX, from
``$DLFLOW_DATA_MIRROR``) written as grey PNG and again as JPEG (quality 90) into their 10 class folders,
Debian's Adwaita icons (colour PNG with transparency, 16 to 96 px) in their category folders, and
scikit-learn's 8x8 digits as PNG: about 26,500 files. A second folder holds every fifth file of it
(about 5,300) for the memory's growth.

Both sides do the same work on every file: read its bytes, sha256 them, decode with Pillow, convert to
RGB, stretch to 32x32 (bilinear), and gather the pixels into one table written as parquet.

(a) dlflow: ``kedro run --pipeline ingestion --params image_source=folder,images_dir=DIR,images.image_size=32,
    images.channels=3,cache.enabled=false`` in a fresh project copy (``harness.make_project``), as a user
    runs it: process start to exit, including Kedro's start-up, the leakage check and the data summary; the
    ``ingest_images`` node's own time (the run's ``timings.json``) beside it.
(c) library: the call that the ``ingest_images`` node makes, in a process of its own (``python
    ingestion_benchmark.py --library DIR OUT``): ``dlflow.io.ImageSourceDataset(source="folder", ...)``
    loaded, ``read(**images)`` with the same ``images`` parameters (``dlflow.config.parse``), the three
    tables written to parquet: what the node does without Kedro's start-up, the leakage check, the
    summary and MLflow.
(b) plain: this file run as ``python ingestion_benchmark.py --plain DIR OUT``: ``os.scandir`` the class
    folders, ``multiprocessing.Pool`` (one process per core, ``imap`` in chunks) over the files, Pillow
    decode -> numpy -> one pyarrow table -> parquet.

The three alternate (``--rounds`` each, median reported) so that load hits both alike. Each run's peak
memory: the largest single process (``/usr/bin/time -v``, maximum resident set size) and the sum over the
process tree (``/proc`` sampled every 0.1 s; shared pages of forked workers count once per process).

    DLFLOW_DATA_MIRROR=../shared/data python benchmarks/ingestion_benchmark.py [--rounds 3]

``--memory`` runs issue 27's comparison instead (``memory``): peak RSS of the whole ``kedro run --pipeline
ingestion`` process on 25,000 and 100,000 PNG files of Fashion-MNIST (repeated past its 70,000 images, one
pixel changed per repeat), target peak(4x) <= 1.2 x peak(1x), and the rerun after one file changed; it is
added to the results file under ``memory``.

Writes ``benchmarks/results/ingestion_benchmark.json`` (``--output`` to change).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
SIZE = 32


# ---------------------------------------------------------------- the plain script (b)
def _plain_one(path: str) -> tuple[str, bytes]:
    from PIL import Image

    with open(path, "rb") as stream:
        data = stream.read()
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return hashlib.sha256(data).hexdigest(), np.asarray(image, dtype=np.uint8).tobytes()


def plain(folder: Path, out: Path) -> None:
    """``multiprocessing.Pool`` over the files: Pillow decode -> numpy -> one pyarrow table -> parquet."""
    import multiprocessing

    import pyarrow as pa
    import pyarrow.parquet as pq

    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        for entry in sorted(os.scandir(folder / name), key=lambda e: e.name):
            paths.append(entry.path)
            labels.append(label)
    with multiprocessing.Pool(os.cpu_count()) as pool:
        decoded = pool.map(_plain_one, paths, chunksize=256)
    table = pa.table(
        {
            "label": pa.array(labels, pa.uint16()),
            "pixels": pa.array([pixels for _, pixels in decoded], pa.binary()),
            "height": pa.array([SIZE] * len(paths), pa.uint16()),
            "width": pa.array([SIZE] * len(paths), pa.uint16()),
            "channels": pa.array([3] * len(paths), pa.uint8()),
            "path": pa.array([os.path.relpath(p, folder) for p in paths]),
            "sha256": pa.array([digest for digest, _ in decoded]),
        }
    )
    pq.write_table(table, out)
    print(f"{len(paths)} images -> {out}")


def library(folder: Path, out: Path) -> None:
    """What the ``ingest_images`` node does (``image_raw.read(**images)``), its tables written to parquet."""
    from dlflow.config import parse
    from dlflow.io import ImageSourceDataset

    defaults = {"image_size": SIZE, "channels": 3, "resize": "stretch", "test_fraction": 0.2, "split_seed": 42}
    options = parse("images", defaults | {"on_bad_file": "fail", "workers": None})
    from dlflow.io import ParquetShardsDataset

    out.mkdir()
    reader = ImageSourceDataset(source="folder", images_dir=str(folder), decoded_dir=str(out / "decoded"), dataset_name="bench")
    data = reader.load().read(**options.model_dump())
    for split in ("train", "val", "test"):  # the tables stream, a decoded shard at a time
        ParquetShardsDataset(filepath=str(out / split)).save(getattr(data, split))
    print(f"{sum(len(getattr(data, s)) for s in ('train', 'val', 'test'))} images -> {out}")


# ---------------------------------------------------------------- the folder
def _idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def build_folder(root: Path, mirror: Path) -> tuple[Path, Path]:
    """The big folder (about 26,500 files) and its every-fifth-file subset; both of real images."""
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import own_data

    big = root / "images-big"
    fashion = mirror / "fashion-mnist"
    images = _idx(next(fashion.glob("t10k-images*")))
    labels = _idx(next(fashion.glob("t10k-labels*")))
    for name in FASHION_CLASSES:
        (big / name).mkdir(parents=True)
    for index, (pixels, label) in enumerate(zip(images, labels)):
        image = Image.fromarray(pixels, mode="L")
        image.save(big / FASHION_CLASSES[label] / f"{index:05d}.png")
        image.save(big / FASHION_CLASSES[label] / f"{index:05d}.jpg", quality=90)
    own = root / "own"
    icons, digits = own_data.adwaita_icons(own), own_data.digits(own)
    for split in ("train", "test"):
        for category in (icons / split).iterdir():
            (big / f"icon-{category.name}").mkdir(exist_ok=True)
            for path in category.iterdir():
                path.rename(big / f"icon-{category.name}" / f"{split}-{path.name}")
    for digit in digits.iterdir():
        digit.rename(big / f"digit-{digit.name}")
    shutil.rmtree(own)
    small = root / "images-small"
    for folder in sorted(big.iterdir()):
        (small / folder.name).mkdir(parents=True)
        for path in sorted(folder.iterdir())[::5]:
            os.link(path, small / folder.name / path.name)
    return big, small


def count_files(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*/*"))


# ---------------------------------------------------------------- measuring
def _tree_rss_bytes(root_pid: int) -> int:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stream:
                    parents[int(entry)] = int(stream.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as stream:
                total += int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict:
    """Wall time, peak RSS of the largest process (``/usr/bin/time -v``) and of the sampled process tree."""
    peak = [0]
    load = os.getloadavg()[0]
    with log.open("w") as out:
        started = time.time()
        process = subprocess.Popen(["/usr/bin/time", "-v", *command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _tree_rss_bytes(process.pid))
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        wall = time.time() - started
        done.set()
        sampler.join()
    text = log.read_text()
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({code}); log {log}:\n{text[-3000:]}")
    max_rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {
        "wall_seconds": wall,
        "max_process_rss_mb": max_rss_kb / 1024,
        "tree_rss_peak_mb": peak[0] / 2**20,
        "load_before": load,
    }


def dlflow_run(folder: Path, root: Path, mirror: Path, tag: str) -> dict:
    from harness import make_project

    work = Path(tempfile.mkdtemp(prefix=f"dlflow-{tag}-", dir=root))
    tracking_uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
    project = make_project(work, tracking_uri)
    env = dict(os.environ) | {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "DLFLOW_DATA_MIRROR": str(mirror),
        "KEDRO_DISABLE_TELEMETRY": "true",
    }
    params = f"image_source=folder,images_dir={folder},images.image_size={SIZE},images.channels=3,cache.enabled=false"
    command = ["kedro", "run", "--pipeline", "ingestion", "--params", params]
    result = measure(command, project, env, work / "kedro.log") | {"command": " ".join(command)}
    timings = _timings(tracking_uri)
    result["ingest_images_node_seconds"] = timings.get("nodes", {}).get("ingest_images")
    result["timings"] = timings
    shutil.rmtree(work, ignore_errors=True)
    return result


def _timings(tracking_uri: str) -> dict:
    """The run's ``timings.json`` (``dlflow.tracking.hooks.TimingHook``): start-up and seconds per node."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    mlflow.set_tracking_uri(tracking_uri)
    for run in runs:
        try:
            return mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/timings.json")
        except Exception:  # noqa: BLE001 - a run without the artifact
            continue
    return {}


def script_run(mode: str, folder: Path, root: Path, tag: str) -> dict:
    """This file run as ``--plain`` or ``--library`` on ``folder``, its output removed afterwards."""
    out = root / f"{tag}.parquet"
    command = [sys.executable, str(Path(__file__).resolve()), f"--{mode}", str(folder), str(out)]
    result = measure(command, root, dict(os.environ), root / f"{tag}.log") | {"command": " ".join(command)}
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    return result


# ---------------------------------------------------------------- memory: 25,000 vs 100,000 files (issue 27)
MEMORY_FILES = (25_000, 100_000)


def build_fashion_folder(root: Path, mirror: Path, files: int, reuse: Path | None = None) -> Path:
    """``files`` PNG files of Fashion-MNIST's 70,000 images (train then test, IDX from the mirror) in their 10 class
    folders; past 70,000 the images repeat (``<n>-r<k>.png``), each repeat made distinct by one pixel (its
    index in the pixel's value) so that the split sees no duplicates. The smaller folder is the first files: the
    files of ``reuse`` (such a folder, built before) are hard-linked instead of written again."""
    from PIL import Image

    folder = root / f"fashion-{files}"
    if folder.is_dir() and count_files(folder) == files:
        return folder
    fashion = mirror / "fashion-mnist"
    images = np.concatenate([_idx(next(fashion.glob("train-images*"))), _idx(next(fashion.glob("t10k-images*")))])
    labels = np.concatenate([_idx(next(fashion.glob("train-labels*"))), _idx(next(fashion.glob("t10k-labels*")))])
    for name in FASHION_CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for n in range(files):
        k, i = divmod(n, len(images))
        pixels = images[i].copy()
        if k:
            pixels[0, 0] = (int(pixels[0, 0]) + k) % 256
        relative = Path(FASHION_CLASSES[labels[i]]) / (f"{i:05d}-r{k}.png" if k else f"{i:05d}.png")
        if (folder / relative).exists():
            continue
        if reuse is not None and (reuse / relative).exists():
            os.link(reuse / relative, folder / relative)
        else:
            Image.fromarray(pixels, mode="L").save(folder / relative)
    return folder


def cnn_command(folder: Path) -> list[str]:
    """``kedro run --pipeline cnn`` on ``folder``: one epoch, trained from the shards whatever their size."""
    params = f"image_source=folder,images_dir={folder},cnn.training.epochs=1,cnn.streaming.mode=shards"
    return ["kedro", "run", "--pipeline", "cnn", "--params", params]


def memory(root: Path, mirror: Path) -> dict:
    """Peak RSS of ``kedro run --pipeline ingestion`` (the whole process, ``/usr/bin/time -v``) on 25,000 and
    100,000 files in one project each, then the rerun after one file changed (node cache off: the decoded
    shards alone decide what is decoded again), then ``kedro run --pipeline cnn`` on the same folder
    (``cnn_command``: the whole pipeline, training streamed from shards)."""
    from harness import make_project

    results, folder = {}, None
    for files in MEMORY_FILES:
        started = time.time()
        folder = build_fashion_folder(root, mirror, files, reuse=folder)
        print(f"folder of {files} files ready in {time.time() - started:.0f} s", flush=True)
        work = Path(tempfile.mkdtemp(prefix=f"dlflow-memory-{files}-", dir=root))
        tracking_uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
        project = make_project(work, tracking_uri)
        env = dict(os.environ) | {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "DLFLOW_DATA_MIRROR": str(mirror),
            "KEDRO_DISABLE_TELEMETRY": "true",
        }
        command = [
            "kedro",
            "run",
            "--pipeline",
            "ingestion",
            "--params",
            f"image_source=folder,images_dir={folder},cache.enabled=false",
        ]
        first = measure(command, project, env, work / "first.log")
        changed = folder / FASHION_CLASSES[0] / sorted(os.listdir(folder / FASHION_CLASSES[0]))[0]
        original = changed.read_bytes()
        from PIL import Image

        Image.fromarray(np.full((28, 28), 7, np.uint8), mode="L").save(changed)  # one file changed
        try:
            rerun = measure(command, project, env, work / "rerun.log")
        finally:
            changed.write_bytes(original)
        report = json.loads(next(project.glob("data/08_reporting/*/ingestion_report.json")).read_text())
        # The CNN on the same folder, end to end, training streamed from its shards (1 epoch): split,
        # normalisation, training, evaluation, registration, in one process whose peak is measured.
        trained = measure(cnn_command(folder), project, env, work / "cnn.log")
        print(f"{files:>7} files: kedro run --pipeline cnn (1 epoch, streamed) {trained['wall_seconds']:.1f} s, "
              f"peak RSS {trained['max_process_rss_mb']:.0f} MB", flush=True)  # fmt: skip
        results[str(files)] = {
            "cnn": trained | {"command": " ".join(cnn_command(folder))},
            "files": files,
            "command": " ".join(command),
            "first": first,
            "rerun_after_one_file_changed": rerun
            | {"decoded_now": report.get("decoded_now"), "groups": report.get("decoded_groups")},
        }
        print(f"{files:>7} files: first run {first['wall_seconds']:.1f} s, peak RSS {first['max_process_rss_mb']:.0f} MB "
              f"(tree {first['tree_rss_peak_mb']:.0f} MB); rerun after one file changed {rerun['wall_seconds']:.1f} s, "
              f"decoded {report.get('decoded_now')}", flush=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    small, large = (results[str(n)]["first"]["max_process_rss_mb"] for n in MEMORY_FILES)
    results["peak_ratio_4x_to_1x"] = large / small
    cnn_small, cnn_large = (results[str(n)]["cnn"]["max_process_rss_mb"] for n in MEMORY_FILES)
    results["cnn_peak_ratio_4x_to_1x"] = cnn_large / cnn_small
    print(f"kedro run --pipeline cnn peak RSS 100,000 / 25,000 files: {cnn_large:.0f} / {cnn_small:.0f} MB = "
          f"{cnn_large / cnn_small:.2f}x (target <= 1.2x)")  # fmt: skip
    results["target"] = "peak(100,000 files) <= 1.2 x peak(25,000 files)"
    results["data"] = "Fashion-MNIST train+test (70,000) as grey PNG, repeated past 70,000 with one pixel changed per repeat"
    print(f"peak RSS 100,000 / 25,000 files: {large:.0f} / {small:.0f} MB = {large / small:.2f}x (target <= 1.2x)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", nargs=2, type=Path, metavar=("FOLDER", "OUT"), help="run the plain script only")
    parser.add_argument("--library", nargs=2, type=Path, metavar=("FOLDER", "OUT"), help="run the library call only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder-root", type=Path, default=None, help="where the folders are (built there if missing)")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--memory", action="store_true", help="only the memory comparison, 25,000 vs 100,000 files")
    args = parser.parse_args()
    if args.plain:
        plain(*args.plain)
        return
    if args.library:
        library(*args.library)
        return
    from harness import REPO, describe_machine, print_machine

    output = args.output or REPO / "benchmarks" / "results" / "ingestion_benchmark.json"
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()
    machine = describe_machine()
    print_machine(machine)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    root = args.folder_root or Path(tempfile.mkdtemp(prefix="dlflow-ingestion-bench-"))
    if args.memory:  # added to the results file beside the speed comparison
        found = memory(root, mirror) | {"machine": machine, "load_average_end": os.getloadavg()}
        previous = json.loads(output.read_text()) if output.exists() else {}
        output.write_text(json.dumps(previous | {"memory": found}, indent=2) + "\n")
        print(f"written {output}")
        return
    big, small = root / "images-big", root / "images-small"
    if not big.is_dir():
        started = time.time()
        big, small = build_folder(root, mirror)
        print(f"built {big} and {small} in {time.time() - started:.0f} s", flush=True)
    sizes = {"big": (big, count_files(big)), "small": (small, count_files(small))}
    print({name: n for name, (_, n) in sizes.items()}, flush=True)
    sides = ("dlflow", "library", "plain")
    found: dict[str, dict[str, list[dict]]] = {name: {side: [] for side in sides} for name in sizes}
    plan = [("big", r) for r in range(args.rounds)] + [("small", 0)]
    for name, round_ in plan:
        folder, n = sizes[name]
        for side in sides[round_ % 3 :] + sides[: round_ % 3]:  # each side first in one round
            tag = f"{side}-{name}-{round_}"
            result = dlflow_run(folder, root, mirror, tag) if side == "dlflow" else script_run(side, folder, root, tag)
            result["images_per_second"] = n / result["wall_seconds"]
            found[name][side].append(result)
            node = result.get("ingest_images_node_seconds")
            print(
                f"{tag:<16} {n:>6} files  {result['wall_seconds']:6.1f} s  {result['images_per_second']:7.0f} images/s  "
                f"max process {result['max_process_rss_mb']:6.0f} MB  tree {result['tree_rss_peak_mb']:6.0f} MB"
                + (f"  (ingest_images node {node:.1f} s)" if node else ""),
                flush=True,
            )
    summary = {}
    for name, sides in found.items():
        n = sizes[name][1]
        entry = {"files": n}
        for side, runs in sides.items():
            wall = statistics.median(r["wall_seconds"] for r in runs)
            entry[side] = {
                "median_wall_seconds": wall,
                "images_per_second": n / wall,
                "max_process_rss_mb": max(r["max_process_rss_mb"] for r in runs),
                "tree_rss_peak_mb": max(r["tree_rss_peak_mb"] for r in runs),
                "runs": runs,
            }
            nodes = [r["ingest_images_node_seconds"] for r in runs if r.get("ingest_images_node_seconds")]
            if nodes:
                entry[side]["ingest_images_node_images_per_second"] = n / statistics.median(nodes)
        plain_rate = entry["plain"]["images_per_second"]
        entry["ratio_dlflow_to_plain"] = entry["dlflow"]["images_per_second"] / plain_rate
        entry["ratio_library_to_plain"] = entry["library"]["images_per_second"] / plain_rate
        summary[name] = entry
        print(
            f"\n{name}: {n} files; plain {plain_rate:.0f} images/s; kedro run {entry['dlflow']['images_per_second']:.0f} "
            f"images/s ({entry['ratio_dlflow_to_plain']:.2f}x); library call {entry['library']['images_per_second']:.0f} "
            f"images/s ({entry['ratio_library_to_plain']:.2f}x) (target >= 0.9x)"
        )
        for side in sides:
            print(
                f"  peak RSS {side:<8} largest process {entry[side]['max_process_rss_mb']:5.0f} MB, "
                f"process tree {entry[side]['tree_rss_peak_mb']:5.0f} MB"
            )
        runs = found[name]["dlflow"]
        nodes = {
            node: statistics.median(r["timings"].get("nodes", {}).get(node, 0.0) for r in runs)
            for node in runs[0]["timings"].get("nodes", {})
        }
        startup = statistics.median(r["timings"].get("startup_seconds", 0.0) for r in runs)
        entry["dlflow"]["median_split_seconds"] = {"start-up": startup, **nodes}
        print(f"  kedro run split (median s): start-up {startup:.1f}, " + ", ".join(f"{k} {v:.1f}" for k, v in nodes.items()))
        if "ingest_images_node_images_per_second" in entry["dlflow"]:
            node_rate = entry["dlflow"]["ingest_images_node_images_per_second"]
            print(
                f"  ingest_images node alone: {node_rate:.0f} images/s ({node_rate / entry['plain']['images_per_second']:.2f}x)"
            )
    print(f"load average at end: {os.getloadavg()}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"machine": machine, "load_average_end": os.getloadavg(), **summary}, indent=2) + "\n")
    print(f"written {output}")


if __name__ == "__main__":
    main()
