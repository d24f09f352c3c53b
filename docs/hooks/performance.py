"""MkDocs hook: tables of measurements rendered from ``benchmarks/results/*.json`` at build time.

The numbers on the site come from the files the benchmarks wrote, never from hand-copied text, so a
page cannot drift from its measurements. In any page's Markdown:

``<!-- results: cnn_benchmark.json -->``
    that file in full: the machine it ran on (CPU model, cores, whether bf16 was native or AVX2
    emulated), then its tables. A glob (``cnn_benchmark*.json``) renders every match in name order.
``<!-- results: rnn_benchmark*.json | runs -->``
    one table, a row per file: runs of one benchmark side by side.
``<!-- results: drift_benchmark.json | optional -->``
    the file in full when it exists, else a line saying it has not been measured yet.
``<!-- results: * | rest -->``
    every file that no directive on any page names, each in full under its own heading: a benchmark
    added later (``drift_benchmark.json``, ``serving_benchmark.json``, ...) shows up without an edit.
``{{ results:rnn_benchmark.json:rnn.accuracy_mean|pct }}``
    one value inline, for prose (formats: ``pct``, ``pct1``, ``x``, ``s``, ``s0``, ``int``, ``f1``,
    ``f2``, ``f3``, ``k``, ``raw``; the path's keys are separated by dots).

Known shapes (the CNN, RNN, Word2Vec, tuning, own-data and ingestion benchmarks) get tables laid out
for them; any other JSON gets a generic rendering of its scalars, tables and nested sections. A
directive or an inline value that names a missing file or key stops the build with an error.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.hooks.performance")

RESULTS = Path("benchmarks") / "results"  # relative to mkdocs.yml
DIRECTIVE = re.compile(r"^<!--\s*results:\s*(?P<glob>\S+)\s*(?:\|\s*(?P<view>\w+)\s*)?-->[ \t]*$", re.MULTILINE)
INLINE = re.compile(r"\{\{\s*results:(?P<file>[\w.\-]+\.json):(?P<path>[^|}]+?)\s*(?:\|\s*(?P<fmt>\w+)\s*)?\}\}")

_state: dict[str, Any] = {"results": None, "named": set()}


# ----------------------------------------------------------------------------------------- MkDocs events


def on_config(config):
    root = Path(config.config_file_path).resolve().parent
    _state["results"] = root / RESULTS
    named: set[str] = set()
    for page in Path(config.docs_dir).rglob("*.md"):
        for match in DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            if match["view"] != "rest":
                named.update(_matching(match["glob"]))
    _state["named"] = named
    return config


def on_serve(server, config, builder):
    server.watch(str(_state["results"]))
    return server


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "results:" not in markdown:
        return markdown
    where = page.file.src_uri

    def block(match: re.Match) -> str:
        glob, view = match["glob"], match["view"] or "full"
        names = _matching(glob)
        if view == "rest":
            names = [name for name in names if name not in _state["named"]]
            return "\n\n".join(f"### `{name}`\n\n{render_file(name, _load(name))}" for name in names) or (
                "*(Every measurement is shown above.)*"
            )
        if not names and view == "optional":
            return f"*Not measured yet: no `benchmarks/results/{glob}`.*"
        if not names:
            raise PluginError(f"{where}: <!-- results: {glob} --> matches no file in {_state['results']}")
        if view == "optional":
            view = "full"
        if view == "runs":
            return render_runs({name: _load(name) for name in names})
        if view != "full":
            raise PluginError(f"{where}: unknown view {view!r} in <!-- results: {glob} | {view} -->")
        return "\n\n".join(render_file(name, _load(name)) for name in names)

    def inline(match: re.Match) -> str:
        name = match["file"]
        if not (_state["results"] / name).is_file():
            raise PluginError(f"{where}: {{{{ results:{name}:... }}}}: no file {name} in {_state['results']}")
        value = _resolve(_load(name), match["path"].strip(), f"{where}: {name}")
        return _format(value, match["fmt"] or "raw")

    return INLINE.sub(inline, DIRECTIVE.sub(block, markdown))


# ----------------------------------------------------------------------------------------------- files


def _matching(glob: str) -> list[str]:
    folder = _state["results"]
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.json") if fnmatch.fnmatch(p.name, glob))


def _load(name: str) -> dict:
    path = _state["results"] / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PluginError(f"cannot read {path}: {error}") from error


def _resolve(data: Any, path: str, where: str) -> Any:
    """``a.b.c`` through dicts and lists; a key that itself holds dots (``training.lr``) matches whole."""
    value, rest = data, path
    while rest:
        if isinstance(value, dict):
            keys = sorted((k for k in value if rest == k or rest.startswith(f"{k}.")), key=len, reverse=True)
            if not keys:
                raise PluginError(f"{where}: no key {rest.split('.')[0]!r} (path {path!r}); there are {list(value)[:12]}")
            value, rest = value[keys[0]], rest[len(keys[0]) + 1 :]
        elif isinstance(value, list):
            head, _, rest = rest.partition(".")
            try:
                value = value[int(head)]
            except (ValueError, IndexError) as error:
                raise PluginError(f"{where}: no item {head!r} in a list of {len(value)} (path {path!r})") from error
        else:
            raise PluginError(f"{where}: {path!r} goes past a value")
    return value


# ------------------------------------------------------------------------------------------ formatting


def _format(value: Any, fmt: str = "raw") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    percent = value * 100 if abs(value) <= 1.0 else value  # shares (0.9296) and points (99.16) alike
    formats = {
        "pct": lambda: f"{percent:.2f} %",
        "pct1": lambda: f"{percent:.1f} %",
        "x": lambda: f"{value:.2f}×",
        "s": lambda: f"{value:.1f} s",
        "s0": lambda: f"{value:.0f} s",
        "int": lambda: f"{round(value):,}",
        "f1": lambda: f"{value:.1f}",
        "f2": lambda: f"{value:.2f}",
        "f3": lambda: f"{value:.3f}",
        "k": lambda: f"{value / 1000:,.0f}k",
        "raw": lambda: _number(value),
    }
    if fmt not in formats:
        raise PluginError(f"unknown format {fmt!r}: one of {sorted(formats)}")
    return formats[fmt]()


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _format(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0 or not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.001:
        return f"{value:.4f}"
    return f"{value:.2e}"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) if len(value) <= 12 else f"{len(value)} values"
    return _number(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(data: dict) -> str:
    """The machine a benchmark recorded: CPU model, cores, and the bf16 line."""
    machine = data.get("machine") if isinstance(data.get("machine"), dict) else {}
    if not machine:
        return "*Machine: not recorded in the file.*"
    cpu = machine.get("cpu", "CPU not recorded")
    cores = f", {machine['cpus']} cores" if machine.get("cpus") else ""
    if machine.get("emulated_avx2"):
        bf16 = "AVX2 emulated (oneDNN, ATen, MKL and Numba capped at AVX2): float32, as a CPU without native bf16 runs"
    elif machine.get("bf16_native") is True:
        bf16 = "bf16 native (AVX512-BF16 / AMX)"
    elif machine.get("bf16_native") is False:
        bf16 = "no native bf16"
    else:
        bf16 = "bf16 not recorded"
    extras = [f"{key} {machine[key]}" for key in ("python", "torch") if machine.get(key)]
    return f"*Machine: {cpu}{cores}; {bf16}" + (f"; {', '.join(extras)}" if extras else "") + ".*"


def render_file(name: str, data: dict) -> str:
    """One results file: its machine line, then tables for its shape."""
    for matches, renderer in SHAPES:
        if matches(data):
            body = renderer(data)
            break
    else:
        body = generic(data)
    return f"{machine_line(data)} Source: `benchmarks/results/{name}`.\n\n{body}"


# ---------------------------------------------------------------------------------------- known shapes

CNN_VARIANTS = {
    "plain": "plain script, reference recipe",
    "default": "`kedro run --pipeline cnn` (defaults)",
    "default_fp32": "`kedro run --pipeline cnn` (float32 forced)",
    "reference": "`kedro run`, reference recipe",
}


def _is_cnn(data: dict) -> bool:
    results = data.get("results")
    return isinstance(results, dict) and all(
        isinstance(v, dict) and "wall_seconds" in v and "accuracy" in v for v in results.values()
    )


def cnn(data: dict) -> str:
    results, base = data["results"], data["results"].get("plain", {}).get("wall_seconds")
    repeats = data.get("repeats", 1)
    rows = []
    for key, found in results.items():
        ratio = _format(found["wall_seconds"] / base, "x") if base else "–"
        every = found.get("wall_seconds_all") or []
        rows.append([CNN_VARIANTS.get(key, f"`{key}`"), _format(found["accuracy"], "pct"), _format(found["wall_seconds"], "s"),
                     ratio, _format(found.get("train_seconds"), "s"), ", ".join(_format(w, "s") for w in every) or "–"])  # fmt: skip
    what = "median of" if repeats > 1 else "one run of"
    text = _table(
        ["variant", "Fashion-MNIST test accuracy", f"wall time ({what} {repeats})", "vs plain script", "training", "every run"],
        rows,
    )
    breakdowns = {key: found["breakdown"] for key, found in results.items() if isinstance(found.get("breakdown"), dict)}
    if breakdowns:
        parts = list(dict.fromkeys(part for b in breakdowns.values() for part in b))
        header = ["where the time went (s)"] + [CNN_VARIANTS.get(k, k) for k in breakdowns]
        text += "\n\n" + _table(header, [[part] + [_format(b.get(part), "f1") for b in breakdowns.values()] for part in parts])
    derived = data.get("derived")
    if isinstance(derived, dict):
        text += "\n\n" + _table(["derived", "value"], [[f"`{k}`", _number(v)] for k, v in derived.items()])
    return text


def _is_rnn(data: dict) -> bool:
    return isinstance(data.get("rnn"), dict) and "fold_accuracy" in data["rnn"] and isinstance(data.get("naive_bayes"), dict)


def rnn(data: dict) -> str:
    ours, nb = data["rnn"]["fold_accuracy"], data["naive_bayes"]["fold_accuracy"]
    folds = list(ours)
    params = data.get("params") or {}
    label = "RNN ({}{} {} units per direction{})".format(
        "Bi" if params.get("rnn.model.bidirectional") == "True" else "",
        str(params.get("rnn.model.cell", "")).upper() or "RNN",
        params.get("rnn.model.hidden_size", "?"),
        f", {params['rnn.model.conv_filters']} filters over its states" if params.get("rnn.model.conv_filters") not in (None, "0", "None") else "",
    )  # fmt: skip
    row = lambda values: [f"{100 * values[f]:.1f}" if f in values else "–" for f in folds]  # noqa: E731
    mean = lambda block: f"**{100 * block['accuracy_mean']:.2f} ± {100 * block['accuracy_std']:.2f}**"  # noqa: E731
    diff = [f"{100 * (ours[f] - nb[f]):+.1f}" if f in nb else "–" for f in folds]
    text = _table(
        ["fold", *folds, "mean ± std"],
        [[label, *row(ours), mean(data["rnn"])], [str(data["naive_bayes"].get("model", "Naive Bayes")), *row(nb), mean(data["naive_bayes"])],
         ["RNN − NB (points)", *diff, f"**{100 * (data['rnn']['accuracy_mean'] - data['naive_bayes']['accuracy_mean']):+.2f}**"]],
    )  # fmt: skip
    split = data.get("split_seconds")
    if isinstance(split, dict):
        rows = [[part, _format(seconds, "f1")] for part, seconds in split.items()]
        rows.append(["**total (wall)**", f"**{_format(data.get('wall_seconds'), 'f1')}**"])
        text += "\n\n" + _table(["where the time went", "seconds"], rows)
    speeds = [(k, v) for k, v in data.items() if k.endswith("_per_second")]
    if speeds:
        text += "\n\n" + "; ".join(f"`{k}` {_number(v)}" for k, v in speeds) + "."
    kim = data.get("kim_2014")
    if isinstance(kim, dict):
        text += " Kim (2014), MR: " + ", ".join(f"{k} {v}" for k, v in kim.items()) + "."
    return text


def _rnn_run_row(name: str, data: dict) -> list[str]:
    params = data.get("params") or {}
    machine = data.get("machine") or {}
    precision = (
        "AVX2 emulated"
        if machine.get("emulated_avx2")
        else {True: "native", False: "not native"}.get(machine.get("bf16_native"), "?")
    )
    bf16 = {"None": "where native", "False": "off", "True": "on"}.get(
        str(params.get("rnn.model.bf16")), str(params.get("rnn.model.bf16", "–"))
    )
    return [f"`{name}`", str(machine.get("cpu", "?")), precision, str(params.get("rnn.model.hidden_size", "–")), bf16,
            str(params.get("rnn.adversarial.epsilon", "–")), _format(data["rnn"]["accuracy_mean"], "pct"),
            f"{100 * (data['rnn']['accuracy_mean'] - data['naive_bayes']['accuracy_mean']):+.2f}",
            _format(data.get("wall_seconds"), "s0"), _format(data.get("rnn_sentences_per_second"), "int"),
            _format(data.get("word2vec_words_per_second"), "k")]  # fmt: skip


def render_runs(files: dict[str, dict]) -> str:
    """Runs of one benchmark side by side: a row per file."""
    if all(_is_rnn(data) for data in files.values()):
        header = ["file", "CPU", "bf16 on this CPU", "units", "`rnn.model.bf16`", "adversarial ε", "RNN, 10-fold mean", "RNN − NB",
                  "wall", "sentences/s per worker", "Word2Vec words/s"]  # fmt: skip
        return _table(header, [_rnn_run_row(name, data) for name, data in files.items()], ["---"] * 3 + ["---:"] * 8)
    flat = {
        name: {k: v for k, v in _flatten(data).items() if not k.startswith(("machine", "params"))} for name, data in files.items()
    }
    keys = [k for k in dict.fromkeys(k for f in flat.values() for k in f) if all(k in f for f in flat.values())][:10]
    rows = [[f"`{name}`", str((data.get("machine") or {}).get("cpu", "?"))] + [_cell(flat[name][k]) for k in keys]
            for name, data in files.items()]  # fmt: skip
    return _table(["file", "CPU", *keys], rows, ["---", "---"] + ["---:"] * len(keys))


def _is_word2vec(data: dict) -> bool:
    results = data.get("results")
    return isinstance(results, list) and bool(results) and all(isinstance(r, dict) and "mode" in r for r in results)


def word2vec(data: dict) -> str:
    engines = {
        "gensim": "gensim",
        "dlflow": "**dlflow (kernel)**",
        "deterministic": "dlflow, deterministic",
        "torch": "dlflow, torch engine",
    }
    rows = []
    for result in data["results"]:
        for key, found in result.items():
            if key == "mode" or not isinstance(found, dict):
                continue
            if "words_per_second" in found:
                rows.append([result["mode"], engines.get(key, key), _format(found["words_per_second"], "k"), _format(found.get("seconds"), "f1"),
                             _format(found.get("analogy"), "pct1"), _format(found.get("ws353"), "f3"), _format(found.get("simlex"), "f3")])  # fmt: skip
            elif "speed_ratio" in found:
                rows.append([result["mode"], key.replace("dlflow/", "dlflow (kernel) / ").replace("deterministic/", "deterministic / ")
                             .replace("torch/", "torch engine / "), f"**{_format(found['speed_ratio'], 'x')}**", "",
                             f"{found.get('analogy_delta_points', 0):+.1f} pt", f"{found.get('ws353_delta', 0):+.3f}",
                             f"{found.get('simlex_delta', 0):+.3f}"])  # fmt: skip
    text = _table(
        ["mode", "engine", "words/s", "seconds", "analogy", "WS-353 ρ", "SimLex ρ"], rows, ["---", "---"] + ["---:"] * 5
    )
    settings, corpus = data.get("settings") or {}, data.get("corpus") or {}
    shown = {k: v for k, v in settings.items() if k not in ("data", "output", "progress") and v is not None}
    if corpus:
        text += "\n\nCorpus: " + ", ".join(f"{k} {_number(v)}" for k, v in corpus.items()) + "."
    if shown:
        text += " Settings: " + ", ".join(f"{k} {_cell(v)}" for k, v in shown.items()) + "."
    return text


def _is_tuning(data: dict) -> bool:
    return isinstance(data.get("tuned"), dict) and isinstance(data.get("default"), dict)


def tuning(data: dict) -> str:
    labels = {
        "default": "default recipe (`kedro run --pipeline cnn`)",
        "tuned": f"`tune_cnn`, {_number(data.get('budget_minutes'))}-minute budget, 1 worker",
        "one_worker": "`tune_cnn_trials`, 1 worker × 1 thread",
        "two_workers": "`tune_cnn_trials`, 2 workers × 1 thread, one study",
    }
    rows = []
    for key, found in data.items():
        if not isinstance(found, dict) or "wall_seconds" not in found:
            continue
        trials = found.get("trials") or {}
        accuracy = _format(found["test_accuracy"], "pct") if "test_accuracy" in found else ""
        if found.get("gate"):
            accuracy += f" ({found['gate']})"
        rows.append([labels.get(key, f"`{key}`"), accuracy, _format(found["wall_seconds"], "s0"),
                     f"{trials['complete']} / {trials['pruned']}" if trials else "",
                     _format(found["trials_per_hour"], "f1") if "trials_per_hour" in found else ""])  # fmt: skip
    text = _table(["", "test accuracy", "wall", "trials complete / pruned", "trials per hour"], rows)
    tuned = data["tuned"]
    if tuned.get("kedro_params"):
        text += f'\n\nBest trial (validation accuracy {_format(tuned.get("best_val_accuracy"), "pct")}): `--params "{tuned["kedro_params"]}"`.'
    return text


def _is_rnn_speed(data: dict) -> bool:
    return isinstance(data.get("epochs"), dict) and isinstance(data.get("folds"), dict)


def rnn_speed(data: dict) -> str:
    rows = [[key, _format(found.get("rows"), "int"), _format(found.get("epoch_seconds"), "f2"), _format(found.get("sentences_per_second"), "int"),
             _format(found.get("speed_up"), "x")] for key, found in data["epochs"].items()]  # fmt: skip
    text = _table(
        ["one fold, an epoch, one process on both cores", "embedding rows trained", "s / epoch", "sentences/s", "speed-up"], rows
    )
    folds = data["folds"]
    rows = [[key, _format(found.get("wall_seconds"), "s0")] for key, found in folds.items()]
    text += "\n\n" + _table([f"all folds × {data.get('fold_epochs', '?')} epochs", "wall"], rows)
    if "fold_speed_up" in data:
        text += f"\n\nSpeed-up of the workers: **{_format(data['fold_speed_up'], 'x')}**; the same accuracies fold for fold: {_format(data.get('same_accuracies'))}."
    return text


def _is_own_data(data: dict) -> bool:
    return any(isinstance(v, dict) and isinstance(v.get("comparison"), dict) for v in data.values())


def own_data(data: dict) -> str:
    rows = []
    for key, found in data.items():
        if not (isinstance(found, dict) and isinstance(found.get("comparison"), dict)):
            continue
        c = found["comparison"]
        family = "RNN" if key.startswith("rnn") else "CNN"
        baseline = found["baseline"]["model"] if isinstance(found.get("baseline"), dict) else str(found.get("baseline", ""))
        low, high = c.get("ci95_normal_points") or (float("nan"), float("nan"))
        command = (found.get("kedro") or {}).get("command", "")
        rows.append([f"`{key}`", _format(c["test_items"], "int"), f"{family} {_format(c['model_accuracy'], 'pct')}",
                     f"{_format(c['baseline_accuracy'], 'pct')} ({baseline})", f"{c['difference_points']:+.2f} [{low:+.2f}, {high:+.2f}]",
                     _format((found.get("kedro") or {}).get("wall_seconds"), "s0"), f"`{command}`" if command else ""])  # fmt: skip
    text = _table(["data", "test items", "ours", "baseline", "difference [95 % CI], points", "`kedro run` wall", "command"], rows,
                  ["---", "---:", "---:", "---", "---", "---:", "---"])  # fmt: skip
    notes = data.get("notes") or {}
    if isinstance(notes.get("runs"), str):
        text += f"\n\nRuns: {notes['runs']}."
    return text


def _is_ingestion(data: dict) -> bool:
    return any(
        isinstance(v, dict) and isinstance(v.get("plain"), dict) and "images_per_second" in v["plain"] for v in data.values()
    )


def ingestion(data: dict) -> str:
    names = {"plain": "plain `multiprocessing.Pool` + Pillow + pyarrow script", "library": "dlflow's ingestion as a library call",
             "dlflow": "`kedro run --pipeline ingestion`"}  # fmt: skip
    rows = []
    for size, found in data.items():
        if not (isinstance(found, dict) and isinstance(found.get("plain"), dict)):
            continue
        base = found["plain"]["images_per_second"]
        for key in ("plain", "library", "dlflow"):
            if isinstance(found.get(key), dict):
                v = found[key]
                rows.append([f"{size}: {_format(found.get('files'), 'int')} files", names[key], _format(v["images_per_second"], "int"),
                             _format(v["images_per_second"] / base, "x"), _format(v.get("median_wall_seconds"), "f2"),
                             _format(v.get("max_process_rss_mb"), "int")])  # fmt: skip
    return _table(
        ["set", "variant", "images/s", "vs plain", "median wall (s)", "peak RSS (MB)"], rows, ["---", "---"] + ["---:"] * 4
    )


SHAPES = [
    (_is_cnn, cnn), (_is_rnn, rnn), (_is_word2vec, word2vec), (_is_tuning, tuning),
    (_is_rnn_speed, rnn_speed), (_is_own_data, own_data), (_is_ingestion, ingestion),
]  # fmt: skip


# -------------------------------------------------------------------------------------------- generic


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out |= _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _shallow(value: Any) -> bool:
    """A dict whose values are scalars, short lists of scalars or small dicts of scalars: fits a table row."""
    return isinstance(value, dict) and all(
        _scalar(v) or (isinstance(v, list) and all(_scalar(x) for x in v)) or (isinstance(v, dict) and all(_scalar(x) for x in v.values()))
        for v in value.values()
    )  # fmt: skip


def _records_table(records: list[dict] | dict[str, dict], first: str = "") -> str:
    items = list(records.items()) if isinstance(records, dict) else [(None, r) for r in records]
    columns = list(dict.fromkeys(k for _, r in items for k in r))
    header = ([first or ""] if isinstance(records, dict) else []) + [f"`{c}`" for c in columns]
    rows = [([f"`{key}`"] if key is not None else []) + [_cell(r.get(c)) for c in columns] for key, r in items]
    return _table(header, rows, ["---"] * (len(header) - len(columns)) + ["---:"] * len(columns))


def generic(data: Any, depth: int = 0) -> str:
    """Any JSON: its scalars as a key-value table, lists of records and dicts of records as tables, the rest as sections."""
    if not isinstance(data, dict):
        return _cell(data)
    scalars = [
        [f"`{k}`", _cell(v)]
        for k, v in data.items()
        if k != "machine" and (_scalar(v) or (isinstance(v, list) and all(map(_scalar, v))))
    ]
    parts = [_table(["", "value"], scalars, ["---", "---:"])] if scalars else []
    for key, value in data.items():
        if key == "machine" or _scalar(value) or (isinstance(value, list) and all(map(_scalar, value))):
            continue
        heading = "#" * min(4 + depth, 6) + f" `{key}`"
        if isinstance(value, list) and all(isinstance(v, dict) and _shallow(v) for v in value):
            body = _records_table(value)
        elif isinstance(value, dict) and value and all(_shallow(v) for v in value.values()):
            body = _records_table(value, key)
        elif _shallow(value):
            body = _table(["", "value"], [[f"`{k}`", _cell(v)] for k, v in value.items()], ["---", "---:"])
        elif isinstance(value, dict):
            body = generic(value, depth + 1)
        else:
            body = f"{len(value)} items (not shown)"
        parts.append(f"{heading}\n\n{body}")
    return "\n\n".join(parts) or "*(empty)*"
