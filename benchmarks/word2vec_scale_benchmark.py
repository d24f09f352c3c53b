"""Word2Vec beyond memory (issue 27, part 3): peak memory at 1x and 4x the corpus, streaming speed, and
the end-to-end time against gensim, side by side in one invocation.

Corpora. A folder of real text, as a user brings one: MR sentence polarity and the Brown corpus (tags
stripped) from ``$DLFLOW_DATA_MIRROR``, about 1.4 M tokens, **repeated and shuffled by sentence** (seeded)
up to 25 M and 100 M tokens, written as UTF-8 text files, one sentence a line (built once in the work
folder and reused). The repeats make the vocabulary that of MR + Brown at every size: only the corpus
grows.

(a) Memory. ``kedro run --pipeline word2vec --params user_corpus=<folder>,text.corpora=[user],
    word2vec.training.mode=cbow,word2vec.training.epochs=1,cache.enabled=false`` in a fresh copy of the
    project (``harness.make_project``): the whole pipeline (the corpus pass, the vocabulary, training,
    evaluation, registration), its peak resident set from ``/usr/bin/time -v``; then the same with
    ``--to-nodes train_word2vec`` (the corpus pass, the vocabulary and training only), whose peak is
    not hidden by the evaluation's. Target: the peak at 4x the tokens at most 1.2x the peak at 1x.
(b) Streaming speed. On the 1x corpus the (a) run wrote, in this process, CBOW, 1 epoch, the same
    vocabulary: ``train_word2vec`` reading the token-id folder a window at a time (``stream``) against the
    same function on the ids loaded whole into memory (``memory``) and against the implementation before
    this change, on the corpus encoded in memory as it used to be (``before``: commit ``--before-commit``,
    loaded from git). Rounds alternate; medians. Target: stream >= 0.9x memory.
(c) End to end against gensim. Our side: ``kedro run --pipeline word2vec --to-nodes train_word2vec`` and
    the run's ``timings.json`` (``dlflow.tracking.hooks.TimingHook``): the ``build_vocabulary`` and
    ``train_word2vec`` nodes with the loading and saving of their data sets (the issue's measure), and,
    apart, the corpus pass (``build_text_corpus`` and saving ``text_corpus``: reading, tokenising and
    counting the raw text). gensim's side, in a process of its own: ``gensim.models.Word2Vec(sentences,
    ...)`` whole (its vocabulary scan and training) on the same sentences tokenised by the same tokeniser,
    held in memory as token lists; reading and tokenising them is timed apart. Same settings (dim 100,
    window 5, negative 5, sample 1e-3, min_count 2, ``--epochs``), same threads, CBOW and skip-gram; on
    the mirror's corpus (the pipeline's default ``text.corpora``: MR and subjectivity x3, movie_reviews,
    Brown; about 3.9 M tokens) and on the 25 M-token folder. Both sets of vectors are scored by the same
    evaluator. Targets: >= 1.0x on the mirror's corpus, >= 1.5x on 25 M tokens.
(before) The project as it was at ``--before-commit`` (``git archive``, run from its own ``src``), on the
    same machine in the same invocation: (a) up to ``train_word2vec`` on the 1x folder, and (c)'s nodes
    on the mirror's corpus, right after ours.

    flock /tmp/dlflow-bench.lock python benchmarks/word2vec_scale_benchmark.py --workdir /tmp/w2v-scale

Writes ``benchmarks/results/word2vec_scale_benchmark.json`` (``--output``). The machine is shared: other
work may run meanwhile; the load average before and after each run is recorded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"25M": 25_000_000, "100M": 100_000_000}
SETTINGS = {"dim": 100, "window": 5, "negative": 5, "sample": 1e-3, "min_count": 2, "alpha": 0.025, "min_alpha": 1e-4}


# ---------------------------------------------------------------- corpora


def base_sentences(mirror: Path) -> list[str]:
    """MR (both files, Latin-1) and Brown (tags stripped), one sentence each, as the corpus readers give them."""
    from dlflow.sources.text import read_corpus, read_polarity

    mr = read_polarity(mirror / "rt-polarity" / "rt-polarity.pos", mirror / "rt-polarity" / "rt-polarity.neg")
    return mr["sentence"].tolist() + list(read_corpus(mirror / "corpora" / "brown.zip"))


def build_corpus(folder: Path, tokens: int, mirror: Path, seed: int, files: int = 16) -> dict:
    """A folder of ``files`` text files holding MR + Brown repeated and shuffled by sentence up to ``tokens`` tokens."""
    from dlflow.text import tokenize

    manifest = folder / "corpus.json"
    if manifest.is_file():
        found = json.loads(manifest.read_text())
        if found.get("requested_tokens") == tokens and found.get("seed") == seed:
            return found
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sentences = base_sentences(mirror)
    lengths = np.array([len(tokenize(s)) for s in sentences])
    repeats = -(-tokens // int(lengths.sum()))
    order = np.random.default_rng(seed).permutation(np.tile(np.arange(len(sentences)), repeats))
    order = order[: int(np.searchsorted(np.cumsum(lengths[order]), tokens)) + 1]
    for part, chunk in enumerate(np.array_split(order, files)):
        (folder / f"part-{part:03d}.txt").write_text("\n".join(sentences[i] for i in chunk) + "\n", encoding="utf-8")
    found = {
        "requested_tokens": tokens, "tokens": int(lengths[order].sum()), "sentences": len(order), "seed": seed,
        "files": files, "repeats_of_mr_and_brown": round(len(order) / len(sentences), 2),
        "bytes": sum(p.stat().st_size for p in folder.glob("*.txt")),
    }  # fmt: skip
    manifest.write_text(json.dumps(found, indent=2))
    return found


# ---------------------------------------------------------------- kedro runs


def kedro_run(project: Path, params: dict, env: dict, log: Path, to_nodes: str | None = None) -> dict:
    """``/usr/bin/time -v kedro run --pipeline word2vec`` in ``project``: wall, peak RSS, and the run's timings."""
    from harness import timed

    command = ["/usr/bin/time", "-v", "kedro", "run", "--pipeline", "word2vec"]
    command += ["--to-nodes", to_nodes] if to_nodes else []
    command += ["--params", ",".join(f"{k}={v}" for k, v in params.items())]
    times = timed(command, project, env, log)
    text = log.read_text()
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("dlflow/word2vec")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    folder = log.parent / f"{log.stem}-artifacts"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    artifact = lambda path: json.loads(Path(client.download_artifacts(run.info.run_id, path, str(folder))).read_text())  # noqa: E731
    return times | {
        "peak_rss_mb": peak_kb / 1024,
        "timings": artifact("timings.json"),
        "training": artifact("word2vec/training.json"),
        "project": str(project),
    }


def node_seconds(timings: dict) -> dict[str, float]:
    """Our nodes' wall time from the run's timings (``TimingHook``): each node with the loading of its inputs
    and, for the vocabulary, the saving of its output, which training reads. Writing the vectors out (text
    format, and their copy to MLflow) is apart: gensim's side writes nothing."""
    nodes, loads, saves = timings["nodes"], timings["loads"], timings["saves"]
    vocabulary = nodes["build_vocabulary"] + saves["text_vocabulary"]
    training = nodes["train_word2vec"] + loads["text_vocabulary"]
    corpus_load = loads["text_corpus"]  # both nodes open it (the folder's metadata: milliseconds)
    return {
        "vocabulary_and_training": vocabulary + training + corpus_load,
        "corpus_pass": nodes["build_text_corpus"] + saves["text_corpus"],
        "vocabulary": vocabulary,
        "training_node": training,
        "vectors_save": saves["word2vec_vectors"] + saves["word2vec_training_report"],
    }


def fresh_project(root: Path, mirror: Path) -> tuple[Path, dict]:
    from harness import make_project

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    tracking_uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    project = make_project(root, tracking_uri)
    env = dict(os.environ) | {
        "MLFLOW_TRACKING_URI": tracking_uri, "DLFLOW_DATA_MIRROR": str(mirror),
        "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
    }  # fmt: skip
    return project, env


def before_project(commit: str, root: Path, mirror: Path) -> tuple[Path, dict]:
    """The project as it was at ``commit`` (``git archive``: its code, conf and data folders), its own MLflow
    store, run with ``PYTHONPATH`` on its ``src`` so that its ``dlflow`` is imported; its kernel compiled once
    here so that no timed run pays for numba's compilation."""
    shutil.rmtree(root, ignore_errors=True)
    project = root / "project"
    project.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "src", "conf", "data", "pyproject.toml", ".telemetry"],
                             cwd=ROOT, capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(project)], input=archive, check=True)
    (project / "conf" / "local").mkdir(exist_ok=True)
    (root / "mlruns").mkdir()
    tracking_uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    import mlflow

    mlflow.MlflowClient(tracking_uri=tracking_uri).search_experiments()  # creates the store's tables
    env = dict(os.environ) | {
        "MLFLOW_TRACKING_URI": tracking_uri, "DLFLOW_DATA_MIRROR": str(mirror), "PYTHONPATH": str(project / "src"),
        "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
    }  # fmt: skip
    warm = ("import numpy as np; from dlflow.training.word2vec import Word2VecConfig, train_word2vec; "
            "ids = np.arange(2, 12, dtype=np.int32).repeat(50); "
            "train_word2vec(ids, np.array([0, len(ids)]), np.bincount(ids, minlength=12), "
            "Word2VecConfig(dim=4, epochs=1, device='cpu'), progress=False)")  # fmt: skip
    found = subprocess.run([sys.executable, "-c", warm + "; import dlflow; print(dlflow.__file__)"], env=env, cwd=project,
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    if not found.startswith(str(project)):
        raise RuntimeError(f"the 'before' project imports dlflow from {found}, not from {project / 'src'}")
    return project, env


# ---------------------------------------------------------------- (b) streaming speed


def load_before(commit: str, workdir: Path):
    """``dlflow.training.word2vec`` and its kernel as they were at ``commit`` (git show), as a module."""
    folder = workdir / f"before-{commit}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("word2vec", "word2vec_kernel"):
        source = subprocess.run(
            ["git", "show", f"{commit}:src/dlflow/training/{name}.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        source = source.replace("from dlflow.training.word2vec_kernel import", "from w2v_before_kernel import")
        path = folder / f"w2v_before{'_kernel' if name.endswith('kernel') else ''}.py"
        if not path.is_file() or path.read_text() != source:
            path.write_text(source)
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("w2v_before", folder / "w2v_before.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["w2v_before"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def speed_rounds(project: Path, args) -> dict:
    """stream / memory / before on the corpus and vocabulary of ``project``'s run, ``args.rounds`` alternating rounds."""
    from dlflow.text import TokenIds, Vocabulary
    from dlflow.training.word2vec import Word2VecConfig, train_word2vec

    corpus = TokenIds(project / "data" / "03_primary" / "text" / "mr" / "corpus")
    vocabulary = Vocabulary.from_dict(
        json.loads((project / "data" / "04_feature" / "text" / "mr" / "vocabulary.json").read_text())
    )
    remap = vocabulary.type_map(corpus.words)
    config = Word2VecConfig(
        mode="cbow", dim=SETTINGS["dim"], window=SETTINGS["window"], negative=SETTINGS["negative"], sample=SETTINGS["sample"],
        epochs=1, threads=args.threads, seed=1, device="cpu",
    )  # fmt: skip
    engines = ["stream", "memory"]
    before = None
    if args.before_commit:
        try:
            before = load_before(args.before_commit, args.workdir)
            engines.append("before")
        except (subprocess.CalledProcessError, OSError) as error:
            print(f"(no 'before' engine: {error})")
    found: dict[str, list[dict]] = {e: [] for e in engines}
    for round_ in range(args.speed_rounds):
        for engine in engines:
            load = os.getloadavg()[0]
            if engine == "stream":
                cpu = time.process_time()
                result = train_word2vec(corpus, None, vocabulary.counts, config, remap=remap, progress=False)
            else:
                ids = np.load(corpus.folder / "ids.npy")
                offsets = np.load(corpus.folder / "offsets.npy")
                if engine == "memory":
                    cpu = time.process_time()
                    result = train_word2vec(ids, offsets, vocabulary.counts, config, remap=remap, progress=False)
                else:  # the corpus as it used to reach training: vocabulary ids only, offsets of the kept tokens
                    mapped = remap[ids]
                    kept = mapped >= 0
                    before_kept = np.concatenate([[0], np.cumsum(kept)])
                    ids, offsets = mapped[kept], before_kept[offsets]
                    cpu = time.process_time()
                    result = before.train_word2vec(
                        ids, offsets, vocabulary.counts, config, corpus_tokens=corpus.n_tokens, progress=False
                    )
                del ids, offsets
            # CPU seconds of the whole call (checks, start-up, training) per thread and wall second of training
            busy = (time.process_time() - cpu) / result.seconds / args.threads
            found[engine].append({"words_per_second": result.words_per_second, "seconds": result.seconds,
                                  "cpu_per_thread": busy, "load_before": load})  # fmt: skip
            print(
                f"  (b) round {round_ + 1} {engine:7s}: {result.words_per_second / 1e3:,.0f}k words/s ({result.seconds:.1f} s)",
                flush=True,
            )
    out = {e: {"words_per_second": statistics.median(r["words_per_second"] for r in runs),
               "all_words_per_second": [round(r["words_per_second"]) for r in runs],
               "cpu_per_thread": [r["cpu_per_thread"] and round(r["cpu_per_thread"], 3) for r in runs]} for e, runs in found.items()}  # fmt: skip
    out["corpus_tokens"] = corpus.n_tokens
    return out


# ---------------------------------------------------------------- (c) gensim's side, in its own process


def mirror_sentences(mirror: Path) -> list[str]:
    """The pipeline's default corpus (parameters_text.yml): MR and subjectivity x3, movie_reviews, Brown."""
    from dlflow.sources.text import read_corpus, read_polarity

    mr = read_polarity(mirror / "rt-polarity" / "rt-polarity.pos", mirror / "rt-polarity" / "rt-polarity.neg")[
        "sentence"
    ].tolist()
    subjectivity = list(read_corpus(mirror / "corpora" / "subjectivity.zip"))
    return (
        mr * 3
        + subjectivity * 3
        + list(read_corpus(mirror / "corpora" / "movie_reviews.zip"))
        + list(read_corpus(mirror / "corpora" / "brown.zip"))
    )


def gensim_child(args) -> None:
    """Read and tokenise the corpus, then time gensim's ``Word2Vec(...)`` whole; score the vectors; JSON to --out."""
    import resource

    from gensim.models import Word2Vec as GensimWord2Vec

    from dlflow.evaluation.word_vectors import analogy_accuracy, similarity_spearman
    from dlflow.sources.text import read_corpus
    from dlflow.text import tokenize

    started = time.perf_counter()
    raw = mirror_sentences(args.data) if args.gensim == "mirror" else read_corpus(Path(args.gensim))
    words: dict[str, str] = {}  # one string object per distinct token, as a tokenised corpus in memory would share
    sentences = [[words.setdefault(t, t) for t in tokens] for tokens in map(tokenize, raw) if tokens]
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = GensimWord2Vec(
        sentences, vector_size=SETTINGS["dim"], window=SETTINGS["window"], negative=SETTINGS["negative"], sample=SETTINGS["sample"],
        min_count=SETTINGS["min_count"], alpha=SETTINGS["alpha"], min_alpha=SETTINGS["min_alpha"], hs=0, workers=args.threads,
        sg=int(args.mode == "skipgram"), epochs=args.epochs, seed=1,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    bench = args.data / "word-benchmarks"
    kv = model.wv
    tokens = sum(map(len, sentences))
    report = {
        "seconds": seconds, "read_tokenise_seconds": read_seconds, "tokens": tokens, "vocabulary": len(kv),
        "words_per_second_whole": tokens * args.epochs / seconds,
        "analogy": analogy_accuracy(list(kv.index_to_key), kv.vectors, bench / "questions-words.txt", restrict_vocab=30000)["accuracy"],
        "ws353": similarity_spearman(list(kv.index_to_key), kv.vectors, bench / "wordsim353.tsv")["spearman"],
        "simlex": similarity_spearman(list(kv.index_to_key), kv.vectors, bench / "simlex999.txt")["spearman"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(report))


def score_ours(project: Path, bench: Path) -> dict[str, float]:
    from gensim.models import KeyedVectors

    from dlflow.evaluation.word_vectors import analogy_accuracy, similarity_spearman

    kv = KeyedVectors.load_word2vec_format(str(project / "data" / "06_models" / "word2vec" / "vectors.txt"))
    words = list(kv.index_to_key)
    return {
        "analogy": analogy_accuracy(words, kv.vectors, bench / "questions-words.txt", restrict_vocab=30000)["accuracy"],
        "ws353": similarity_spearman(words, kv.vectors, bench / "wordsim353.tsv")["spearman"],
        "simlex": similarity_spearman(words, kv.vectors, bench / "simlex999.txt")["spearman"],
    }


def e2e_params(mode: str, args) -> dict:
    return {"word2vec.training.mode": mode, "word2vec.training.epochs": args.epochs,
            "word2vec.training.threads": args.threads, "cache.enabled": "false"}  # fmt: skip


def end_to_end(name: str, corpus_params: dict, gensim_corpus: str, mode: str, args) -> tuple[dict, dict]:
    """One corpus and mode: ours (kedro run to train_word2vec) then gensim (its own process), ``args.rounds`` times."""
    ours, theirs = [], []
    for round_ in range(args.rounds):
        project, env = fresh_project(args.workdir / f"e2e-{name}-{mode}", args.data)
        params = corpus_params | e2e_params(mode, args)
        run = kedro_run(project, params, env, args.workdir / f"e2e-{name}-{mode}-{round_}.log", to_nodes="train_word2vec")
        seconds = node_seconds(run["timings"])
        ours.append(seconds | {"train_seconds": run["training"]["train_seconds"], "words_per_second": run["training"]["words_per_second"],
                               "startup_seconds": run["training"].get("startup_seconds"), "compile_seconds": run["training"]["compile_seconds"],
                               "wall_seconds": run["wall_seconds"], "load_before": run["load_before"]} | score_ours(project, args.data / "word-benchmarks"))  # fmt: skip
        out = args.workdir / f"gensim-{name}-{mode}-{round_}.json"
        command = [sys.executable, __file__, "--gensim", gensim_corpus, "--mode", mode, "--epochs", str(args.epochs),
                   "--threads", str(args.threads), "--out", str(out), "--data", str(args.data), "--workdir", str(args.workdir)]  # fmt: skip
        load = os.getloadavg()[0]
        subprocess.run(command, check=True, env=env)
        theirs.append(json.loads(out.read_text()) | {"load_before": load})
        print(f"  (c) {name} {mode} round {round_ + 1}: ours {ours[-1]['vocabulary_and_training']:.1f} s "
              f"(+ corpus pass {ours[-1]['corpus_pass']:.1f} s), gensim {theirs[-1]['seconds']:.1f} s "
              f"(+ read/tokenise {theirs[-1]['read_tokenise_seconds']:.1f} s)", flush=True)  # fmt: skip
    med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    row = {
        "corpus_tokens": theirs[0]["tokens"],
        "ours_vocabulary_and_training_s": med(ours, "vocabulary_and_training"),
        "gensim_word2vec_s": med(theirs, "seconds"),
        "speedup": med(theirs, "seconds") / med(ours, "vocabulary_and_training"),
        "ours_corpus_pass_s": med(ours, "corpus_pass"),
        "gensim_read_tokenise_s": med(theirs, "read_tokenise_seconds"),
        "speedup_from_raw_text": (med(theirs, "seconds") + med(theirs, "read_tokenise_seconds"))
        / (med(ours, "vocabulary_and_training") + med(ours, "corpus_pass")),
        "ours_train_s": med(ours, "train_seconds"),
        "ours_startup_s": med(ours, "startup_seconds"),
        "ours_kernel_load_s": med(ours, "compile_seconds"),
        "ours_vectors_save_s": med(ours, "vectors_save"),
        "ours_analogy": med(ours, "analogy"), "gensim_analogy": med(theirs, "analogy"),
        "ours_ws353": med(ours, "ws353"), "gensim_ws353": med(theirs, "ws353"),
        "ours_simlex": med(ours, "simlex"), "gensim_simlex": med(theirs, "simlex"),
    }  # fmt: skip
    return row, {"ours": ours, "gensim": theirs}


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DLFLOW_DATA_MIRROR", ROOT.parent / "shared" / "data")))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dlflow-word2vec-scale"))
    parser.add_argument("--sizes", nargs=2, type=float, default=[25e6, 100e6], help="tokens at 1x and 4x")
    parser.add_argument("--parts", nargs="+", default=["memory", "speed", "e2e"], choices=["memory", "speed", "e2e"])
    parser.add_argument("--e2e-corpora", nargs="+", default=["mirror", "1x"], choices=["mirror", "1x"])
    parser.add_argument("--modes", nargs="+", default=["cbow", "skipgram"], choices=["cbow", "skipgram"])
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the end-to-end runs (c)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="of the end-to-end runs (c)")
    parser.add_argument("--speed-rounds", type=int, default=3, help="of the speed comparison (b)")
    parser.add_argument("--seed", type=int, default=0, help="of the corpus' shuffle")
    parser.add_argument("--before-commit", default="70cad63", help="the implementation (b) compares with ('' to skip)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "word2vec_scale_benchmark.json")
    parser.add_argument("--gensim", help=argparse.SUPPRESS)  # child mode: 'mirror' or a corpus folder
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()
    if args.gensim:
        return gensim_child(args)

    import torch
    from harness import describe_machine, print_machine

    machine = describe_machine()
    print_machine(machine)
    args.workdir.mkdir(parents=True, exist_ok=True)
    labels = {"1x": f"{args.sizes[0] / 1e6:g}M", "4x": f"{args.sizes[1] / 1e6:g}M"}
    report: dict = {
        "machine": machine | {"torch": torch.__version__},
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("gensim", "mode", "out")
        }
        | {"word2vec": SETTINGS},
        "corpora": {},
    }
    started = time.perf_counter()
    for key, tokens in zip(("1x", "4x"), args.sizes):
        if key == "4x" and "memory" not in args.parts:
            continue
        report["corpora"][labels[key]] = build_corpus(
            args.workdir / f"corpus-{labels[key]}", int(tokens), args.data, args.seed
        ) | {"built_from": "MR + Brown (mirror), repeated and shuffled by sentence"}
        print(f"corpus {labels[key]}: {report['corpora'][labels[key]]}", flush=True)

    def corpus_params(key: str) -> dict:
        return {"user_corpus": str(args.workdir / f"corpus-{labels[key]}"), "text.corpora": "[user]"}

    if "memory" in args.parts or "speed" in args.parts:
        memory = {}
        runs = [("1x", None), ("4x", None), ("1x", "train_word2vec"), ("4x", "train_word2vec")]
        if args.before_commit:
            runs.append(("1x", "before"))
        for key, to_nodes in runs if "memory" in args.parts else runs[:1]:
            name = (
                labels[key] + {None: "", "train_word2vec": " to train_word2vec", "before": " to train_word2vec, before"}[to_nodes]
            )
            folder = f"memory-{labels[key]}" + {None: "", "train_word2vec": "-to-train", "before": "-to-train-before"}[to_nodes]
            if to_nodes == "before":
                project, env = before_project(args.before_commit, args.workdir / folder, args.data)
                to_nodes = "train_word2vec"
            else:
                project, env = fresh_project(args.workdir / folder, args.data)
            params = corpus_params(key) | {
                "word2vec.training.mode": "cbow",
                "word2vec.training.epochs": 1,
                "cache.enabled": "false",
            }
            run = kedro_run(project, params, env, args.workdir / f"{folder}.log", to_nodes=to_nodes)
            memory[name] = {
                "tokens": run["training"]["corpus_tokens"], "peak_rss_mb": run["peak_rss_mb"], "wall_seconds": run["wall_seconds"],
                **{f"{k}_seconds": v for k, v in node_seconds(run["timings"]).items()},
                "words_per_second": run["training"]["words_per_second"], "train_seconds": run["training"]["train_seconds"],
                "startup_seconds": run["training"].get("startup_seconds"), "load_before": run["load_before"], "load_after": run["load_after"],
            }  # fmt: skip
            print(f"  (a) {name}: peak {run['peak_rss_mb']:,.0f} MB, wall {run['wall_seconds']:.0f} s", flush=True)
            save(report | {"memory": memory}, args.output, complete=False)
            if key == "1x" and to_nodes is None and "speed" in args.parts:
                report["speed"] = speed_rounds(project, args)
                report["stream_vs_memory"] = (
                    report["speed"]["stream"]["words_per_second"] / report["speed"]["memory"]["words_per_second"]
                )
                if "before" in report["speed"]:
                    report["stream_vs_before"] = (
                        report["speed"]["stream"]["words_per_second"] / report["speed"]["before"]["words_per_second"]
                    )
        if "memory" in args.parts:
            report["memory"] = memory
            peak = lambda name: memory[name]["peak_rss_mb"]  # noqa: E731
            report["memory_ratio_4x_over_1x"] = peak(labels["4x"]) / peak(labels["1x"])
            report["memory_ratio_4x_over_1x_to_train_word2vec"] = peak(f"{labels['4x']} to train_word2vec") / peak(
                f"{labels['1x']} to train_word2vec"
            )
    if "e2e" in args.parts:
        report["end_to_end"], report["end_to_end_runs"] = {}, {}
        for corpus in args.e2e_corpora:
            name = "mirror" if corpus == "mirror" else labels["1x"]
            params = {} if corpus == "mirror" else corpus_params("1x")
            gensim_corpus = "mirror" if corpus == "mirror" else str(args.workdir / f"corpus-{labels['1x']}")
            for mode in args.modes:
                row, runs = end_to_end(name, params, gensim_corpus, mode, args)
                report["end_to_end"][f"{name} {mode}"], report["end_to_end_runs"][f"{name} {mode}"] = row, runs
                if corpus == "mirror" and args.before_commit:  # the same nodes as they were, same machine, right after
                    project, env = before_project(args.before_commit, args.workdir / f"e2e-{name}-{mode}-before", args.data)
                    before = kedro_run(project, params | e2e_params(mode, args), env, args.workdir / f"e2e-{name}-{mode}-before.log",
                                       to_nodes="train_word2vec")  # fmt: skip
                    seconds = node_seconds(before["timings"])
                    row["before_vocabulary_and_training_s"] = seconds["vocabulary_and_training"]
                    row["before_corpus_pass_s"] = seconds["corpus_pass"]
                    row["before_train_s"] = before["training"]["train_seconds"]
                    row["before_speedup"] = row["gensim_word2vec_s"] / seconds["vocabulary_and_training"]
                    runs["before"] = [seconds | {"training": before["training"], "wall_seconds": before["wall_seconds"]}]
                    print(f"  (c) {name} {mode} before: {seconds['vocabulary_and_training']:.1f} s "
                          f"(+ corpus pass {seconds['corpus_pass']:.1f} s)", flush=True)  # fmt: skip
                save(report, args.output, complete=False)
    report["benchmark_seconds"] = time.perf_counter() - started
    report["targets"] = {"memory_ratio_4x_over_1x": "<= 1.2", "stream_vs_memory": ">= 0.9",
                         "speedup (mirror)": ">= 1.0", f"speedup ({labels['1x']})": ">= 1.5"}  # fmt: skip
    summary(report)
    save(report, args.output, complete=True)
    print(f"\nwritten to {args.output}")


def save(report: dict, output: Path, complete: bool) -> None:
    """The results so far (``complete`` false until every part ran), so that a long run that is cut short keeps them."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report | {"complete": complete}, indent=2, default=float) + "\n")


def summary(report: dict) -> None:
    print()
    if "memory" in report:
        for label, found in report["memory"].items():
            print(
                f"(a) {label}: {found['tokens']:,} tokens, peak RSS {found['peak_rss_mb']:,.0f} MB, wall {found['wall_seconds']:.0f} s"
            )
        print(f"    4x / 1x peak: {report['memory_ratio_4x_over_1x']:.3f} (target <= 1.2); up to train_word2vec only: "
              f"{report['memory_ratio_4x_over_1x_to_train_word2vec']:.3f}")  # fmt: skip
    if "speed" in report:
        speeds = ", ".join(f"{e} {v['words_per_second'] / 1e3:,.0f}k" for e, v in report["speed"].items() if isinstance(v, dict))
        print(f"(b) words/s: {speeds}; stream / memory {report['stream_vs_memory']:.3f} (target >= 0.9)"
              + (f", stream / before {report['stream_vs_before']:.3f}" if "stream_vs_before" in report else ""))  # fmt: skip
    for name, row in report.get("end_to_end", {}).items():
        print(f"(c) {name}: ours {row['ours_vocabulary_and_training_s']:.1f} s vs gensim {row['gensim_word2vec_s']:.1f} s = "
              f"{row['speedup']:.2f}x; from raw text {row['speedup_from_raw_text']:.2f}x; analogy {100 * row['ours_analogy']:.1f} vs "
              f"{100 * row['gensim_analogy']:.1f} %, WS-353 {row['ours_ws353']:.3f} vs {row['gensim_ws353']:.3f}")  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
