"""dlflow's Word2Vec against gensim's, side by side, on the same corpus and settings.

Corpus: MR sentence polarity (rt-polarity, Latin-1) + NLTK movie_reviews + the
Brown corpus with its POS tags stripped: about 2.9 M tokens, lower-cased,
split on white space, one sentence a line. Settings: dim 100, window 5,
negative 5, min_count 5, sample 1e-3, 5 epochs, 2 threads, for CBOW and
skip-gram. For each mode gensim and dlflow train back to back (so both see
the same machine load), then the same evaluator (``dlflow.evaluation.word_vectors``,
which reproduces gensim's ``evaluate_word_analogies`` / ``evaluate_word_pairs``)
scores both sets of vectors.

    python benchmarks/word2vec_benchmark.py                       # both modes, 5 epochs
    python benchmarks/word2vec_benchmark.py --modes cbow --epochs 1

words/s is corpus words (in-vocabulary tokens, the same count for both) times
epochs divided by the wall seconds of training (gensim: ``train()`` only, its
vocabulary scan excluded; dlflow: ``train_word2vec`` including its set-up).
The table goes to stdout and ``benchmarks/results/word2vec_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

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


def run_dlflow(ids, offsets, counts, mode, args) -> tuple[np.ndarray, float]:
    config = Word2VecConfig(
        mode=mode, dim=args.dim, window=args.window, negative=args.negative, sample=args.sample,
        epochs=args.epochs, threads=args.threads, seed=args.seed, device="cpu",
        **({"batch_words": args.batch_words} if args.batch_words else {}),
    )  # fmt: skip
    result = train_word2vec(ids, offsets, counts, config, progress=args.progress)
    return result.input_vectors, result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mirror = Path(os.environ.get("DLFLOW_DATA_MIRROR", ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=mirror)
    parser.add_argument("--modes", nargs="+", default=["cbow", "skipgram"], choices=["cbow", "skipgram"])
    parser.add_argument("--engines", nargs="+", default=["gensim", "dlflow"], choices=["gensim", "dlflow"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
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
    print(
        f"corpus: {len(sentences):,} sentences, {sum(map(len, sentences)):,} tokens, "
        f"{n_words:,} in a vocabulary of {len(words):,} (min_count {args.min_count}); "
        f"read in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    bench = args.data / "word-benchmarks"
    rows = []
    for mode in args.modes:
        row: dict[str, object] = {"mode": mode}
        for engine in args.engines:
            if engine == "gensim":
                vectors, seconds = run_gensim(sentences, words, n_words, mode, args)
            else:
                vectors, seconds = run_dlflow(ids, offsets, counts, mode, args)
            scores = evaluate(words, vectors, bench)
            row[engine] = {"words_per_second": n_words * args.epochs / seconds, "seconds": seconds, **scores}
            print(f"  {mode:8s} {engine:6s} {seconds:6.1f} s  {row[engine]}", flush=True)
        if "gensim" in row and "dlflow" in row:
            g, d = row["gensim"], row["dlflow"]
            row["speed_ratio"] = d["words_per_second"] / g["words_per_second"]
            row["analogy_delta_points"] = 100 * (d["analogy"] - g["analogy"])
            row["ws353_delta"] = d["ws353"] - g["ws353"]
            row["simlex_delta"] = d["simlex"] - g["simlex"]
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
        if "speed_ratio" in row:
            print(
                f"| {row['mode']} | dlflow/gensim | {row['speed_ratio']:.2f}x | | "
                f"{row['analogy_delta_points']:+.1f} pt | {row['ws353_delta']:+.3f} | {row['simlex_delta']:+.3f} |"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "corpus": {"sentences": len(sentences), "words": n_words, "vocabulary": len(words)},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "torch": torch.__version__},  # fmt: skip
        "results": rows,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
