"""dlflow's Word2Vec against gensim's, side by side, on the same corpus and settings.

Corpus: MR sentence polarity (rt-polarity, Latin-1) + NLTK movie_reviews + the
Brown corpus with its POS tags stripped: about 2.9 M tokens, lower-cased,
split on white space, one sentence a line. Settings: dim 100, window 5,
negative 5, min_count 5, sample 1e-3, 5 epochs, 2 threads, for CBOW and
skip-gram. For each mode the engines train back to back (so all see the same
machine load), then the same evaluator (``dlflow.evaluation.word_vectors``,
which reproduces gensim's ``evaluate_word_analogies`` / ``evaluate_word_pairs``)
scores every set of vectors. Every engine runs once per seed (three by
default: one run's analogy accuracy moves by a point from seed to seed, for
gensim as for dlflow) and the table shows the means. Engines:

``gensim``         gensim's ``Word2Vec`` (Cython), ``workers=threads``
``dlflow``         dlflow's default on CPU: the compiled kernel, ``threads`` lock-free threads
``deterministic``  the same with ``deterministic=True``: one thread, bit-identical vectors for a seed
``torch``          dlflow's tensor engine (the default on CUDA), on the CPU

    python benchmarks/word2vec_benchmark.py                       # both modes, 5 epochs
    python benchmarks/word2vec_benchmark.py --modes cbow --engines gensim dlflow --epochs 1

words/s is counted the same way for every engine: raw corpus tokens (out-of-
vocabulary ones included) times epochs, divided by the wall seconds of
training (gensim: ``train()`` only, its vocabulary scan excluded; dlflow:
``train_word2vec`` from its first job to its last, its one-time kernel
compilation reported apart). The CPU model, the table and the ratios go to
stdout and ``benchmarks/results/word2vec_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from harness import describe_machine, print_machine

from dlflow.evaluation.word_vectors import analogy_accuracy, similarity_spearman
from dlflow.training.word2vec import Word2VecConfig, train_word2vec

ROOT = Path(__file__).resolve().parents[1]


def read_sentences(data: Path) -> list[list[str]]:
    """MR + movie_reviews + Brown (tags stripped) as lower-cased token lists, one per line."""
    sentences: list[list[str]] = []
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        text = (data / "rt-polarity" / name).read_bytes().decode("latin-1")
        sentences += [line.lower().split() for line in text.splitlines()]
    with zipfile.ZipFile(data / "corpora" / "movie_reviews.zip") as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.filename.endswith(".txt"):
                text = archive.read(info).decode("utf-8", errors="replace")
                sentences += [line.lower().split() for line in text.splitlines()]
    with zipfile.ZipFile(data / "corpora" / "brown.zip") as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            name = info.filename.rsplit("/", 1)[-1]
            if info.is_dir() or name in ("README", "CONTENTS", "cats.txt") or not name[:2].isalpha():
                continue
            text = archive.read(info).decode("utf-8", errors="replace")
            for line in text.splitlines():
                tokens = [t.rsplit("/", 1)[0].lower() for t in line.split()]
                sentences.append(tokens)
    return [s for s in sentences if s]


def build_vocabulary(sentences: list[list[str]], min_count: int) -> tuple[list[str], np.ndarray]:
    """Words seen at least ``min_count`` times, most frequent first (ties: first seen first, as gensim)."""
    counter = Counter(token for sentence in sentences for token in sentence)
    kept = [(w, c) for w, c in counter.items() if c >= min_count]  # Counter keeps first-seen order
    kept.sort(key=lambda item: -item[1])
    return [w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64)


def encode(sentences: list[list[str]], words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The in-vocabulary tokens as one flat id array plus sentence offsets."""
    index = {w: i for i, w in enumerate(words)}
    encoded = [[index[t] for t in s if t in index] for s in sentences]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in encoded])
    ids = np.fromiter((i for s in encoded for i in s), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets


def evaluate(words: list[str], vectors: np.ndarray, bench: Path) -> dict[str, float]:
    analogy = analogy_accuracy(words, vectors, bench / "questions-words.txt")
    ws = similarity_spearman(words, vectors, bench / "wordsim353.tsv")
    simlex = similarity_spearman(words, vectors, bench / "simlex999.txt")
    return {"analogy": analogy["accuracy"], "ws353": ws["spearman"], "simlex": simlex["spearman"]}


def run_gensim(sentences, words, n_words, mode, args) -> tuple[np.ndarray, float]:
    from gensim.models import Word2Vec as GensimWord2Vec

    model = GensimWord2Vec(
        vector_size=args.dim, window=args.window, negative=args.negative, min_count=args.min_count,
        sample=args.sample, workers=args.threads, sg=int(mode == "skipgram"), seed=args.seed, hs=0,
    )  # fmt: skip
    model.build_vocab(sentences)
    started = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=args.epochs)
    seconds = time.perf_counter() - started
    kv = model.wv
    vectors = np.stack([kv[w] for w in words])  # our vocabulary order (same words, same counts)
    return vectors, seconds


def run_dlflow(ids, offsets, counts, tokens, mode, args, engine) -> tuple[np.ndarray, float, float]:
    config = Word2VecConfig(
        mode=mode, dim=args.dim, window=args.window, negative=args.negative, sample=args.sample,
        epochs=args.epochs, threads=args.threads, seed=args.seed, device="cpu",
        engine="torch" if engine == "torch" else "kernel", deterministic=engine == "deterministic",
        **({"batch_words": args.batch_words} if args.batch_words else {}),
    )  # fmt: skip
    result = train_word2vec(ids, offsets, counts, config, corpus_tokens=tokens, progress=args.progress)
    return result.input_vectors, result.seconds, result.compile_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=mirror)
    parser.add_argument("--modes", nargs="+", default=["cbow", "skipgram"], choices=["cbow", "skipgram"])
    parser.add_argument(
        "--engines", nargs="+", default=["gensim", "dlflow", "deterministic", "torch"],
        choices=["gensim", "dlflow", "deterministic", "torch"],
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one run per seed; means are reported")
    parser.add_argument("--batch-words", type=int, default=None)
    parser.add_argument("--progress", action="store_true", help="draw dlflow's progress bar")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "word2vec_benchmark.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    started = time.perf_counter()
    sentences = read_sentences(args.data)
    words, counts = build_vocabulary(sentences, args.min_count)
    ids, offsets = encode(sentences, words)
    n_words = len(ids)
    tokens = sum(map(len, sentences))
    machine = describe_machine()
    print_machine(machine)
    print(f"{args.threads} threads; numba kernel; torch {torch.__version__} (Word2Vec trains in float32)")
    print(
        f"corpus: {len(sentences):,} sentences, {tokens:,} tokens, "
        f"{n_words:,} in a vocabulary of {len(words):,} (min_count {args.min_count}); "
        f"read in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    bench = args.data / "word-benchmarks"
    rows = []
    for mode in args.modes:
        row: dict[str, object] = {"mode": mode}
        runs: dict[str, list[dict]] = {engine: [] for engine in args.engines}
        for seed in args.seeds:  # engines back to back for each seed: both see the same machine load
            for engine in args.engines:
                settings = argparse.Namespace(**{**vars(args), "seed": seed})
                compile_seconds = 0.0
                if engine == "gensim":
                    vectors, seconds = run_gensim(sentences, words, n_words, mode, settings)
                else:
                    vectors, seconds, compile_seconds = run_dlflow(ids, offsets, counts, tokens, mode, settings, engine)
                scores = evaluate(words, vectors, bench)
                runs[engine].append({
                    "seed": seed, "words_per_second": tokens * args.epochs / seconds, "seconds": seconds,
                    "compile_seconds": compile_seconds, **scores,
                })  # fmt: skip
                print(f"  {mode:8s} {engine:13s} seed {seed}: {seconds:6.1f} s  {runs[engine][-1]}", flush=True)
        for engine, found in runs.items():  # the mean over the seeds
            row[engine] = {key: float(np.mean([r[key] for r in found])) for key in found[0] if key != "seed"}
            row[engine]["runs"] = found
        for engine in args.engines:
            if engine != "gensim" and "gensim" in row:
                g, d = row["gensim"], row[engine]
                row[f"{engine}/gensim"] = {
                    "speed_ratio": d["words_per_second"] / g["words_per_second"],
                    "analogy_delta_points": 100 * (d["analogy"] - g["analogy"]),
                    "ws353_delta": d["ws353"] - g["ws353"],
                    "simlex_delta": d["simlex"] - g["simlex"],
                }
        rows.append(row)

    print()
    header = "| mode | engine | words/s | seconds | analogy | WS-353 ρ | SimLex ρ |"
    print(header)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        for engine in args.engines:
            r = row[engine]
            print(
                f"| {row['mode']} | {engine} | {r['words_per_second'] / 1e3:,.0f}k | {r['seconds']:.1f} | "
                f"{100 * r['analogy']:.1f}% | {r['ws353']:.3f} | {r['simlex']:.3f} |"
            )
        for engine in args.engines:
            if f"{engine}/gensim" in row:
                ratio = row[f"{engine}/gensim"]
                print(
                    f"| {row['mode']} | {engine} / gensim | **{ratio['speed_ratio']:.2f}x** | | "
                    f"{ratio['analogy_delta_points']:+.1f} pt | {ratio['ws353_delta']:+.3f} | {ratio['simlex_delta']:+.3f} |"
                )
    compiled = [row[e]["compile_seconds"] for row in rows for e in args.engines if e != "gensim"]
    if compiled:
        print(f"(kernel compilation before training: {max(compiled):.1f} s at most, 0 once numba has cached it)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "corpus": {"sentences": len(sentences), "tokens": tokens, "in_vocabulary": n_words, "vocabulary": len(words)},
        "machine": machine | {"torch": torch.__version__},
        "results": rows,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
