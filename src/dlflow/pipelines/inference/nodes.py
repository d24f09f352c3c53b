"""Batch inference: the registered model scores an input, read in chunks → check → score → write.

One node per family (``score_images``, ``score_sentences``) returns the loop
below (``_scored``) as a lazy iterator of output tables; the catalog's output
dataset (``dlflow.io.ChunkedParquetDataset``) consumes it and writes each table
as it comes, so memory holds a few chunks, whatever the size of the input. (So
the work happens while Kedro saves ``<family>_inference_predictions``: the run's
timings count it as saving.) ::

    for chunk in <input>.chunks(chunk_size):         # read: the catalog's input dataset, size-bounded
        records = check_chunk(chunk, champion)         # check: the model's signature; a refusal names the file
        answers = score_chunk(chunk, records, champion, batch_size, monitored)  # score: the model's own predict
        answers = observe_chunk(chunk, answers, champion, observations)  # monitor: what the model saw and said
        yield output_table(chunk, answers, ...)        # write: one table per chunk

The three stages overlap, each on its own thread, a chunk apart: the next chunk
is read and checked (``READ_AHEAD``: ``dlflow.io.chunked_parquet.Ahead``) while
this one is scored, with torch's intra-op threads, and the output dataset writes
the one before. Order is kept; an exception in any stage stops all three and is
raised as it is, at its chunk's turn; the threads have ended when the run goes on.

Monitoring: when the champion was registered with a reference profile, the
model is asked with ``params={"monitoring": True}`` and also returns each
record's input signals and penultimate features; ``observe_chunk`` takes them
out of the answers into ``<family>_batch_observations``
(``dlflow.monitoring.observations.BatchObservations``: a bounded uniform sample,
the predicted-class counts and, when the input carries a ``label`` column, the
confusion matrix of live quality). That object is the node's second output;
it is complete once the predictions are written, and the monitoring pipeline's
``judge_<family>_batch`` node turns it into the decision
(``dlflow.pipelines.monitoring``).

Every refusal (``dlflow.io.inference_inputs.InputRefused``) names the input
file, and the row, line or file where it can tell; the output is written to a
temporary file and renamed only after the last chunk, so a refusal in any
chunk leaves no output (a previous run's file, if any, stays as it was). A
refusal met while writing reaches ``kedro run`` as Kedro's ``DatasetError``
prefixed with the output's name (``cnn_inference_predictions: /data/x.idx
images 0-4: ...``), the ``InputRefused`` as its cause.

The model comes from the catalog (``<family>_champion``,
``dlflow.model_registry.champion.RegisteredModelDataset``): one version of
``models:/<name>@<alias>``, already recorded on the MLflow run. Its name,
version and training run id go into every output row. No MLflow here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from dlflow.config import MonitoringParams
from dlflow.io.chunked_parquet import Ahead
from dlflow.io.inference_inputs import LABEL_COLUMN, ChunkedInput, InputChunk, InputRefused
from dlflow.monitoring.observations import BatchObservations, split_answers

logger = logging.getLogger(__name__)

MODEL_COLUMNS = ("model_name", "model_version", "model_run_id")
READ_AHEAD = 1  # chunks read and checked ahead of scoring, on a background thread (0: in the scoring thread)


def score_images(
    images: ChunkedInput, champion: Any, params: dict[str, Any], monitoring: dict[str, Any]
) -> tuple[Iterator[pd.DataFrame], BatchObservations]:
    """The champion's answers for ``images``, one table per chunk: ``path`` (a folder's files) or ``row``, then
    ``prediction`` (class index), ``label_name``, ``probability``, ``p_<class>`` for every class and the model
    columns; and the batch's observations for monitoring, filled as the answers are written.

    ``params``: ``inference.cnn`` (``model_name``/``alias``, which the catalog's model must be,
    ``chunk_size``, ``batch_size``); ``monitoring``: ``params:monitoring``. Lazy: nothing is read
    before the output dataset asks.
    """
    _check_selection(champion, params["model_name"], params["alias"])
    observations = _observations(champion, monitoring)
    return _scored(images, images.chunks(params["chunk_size"]), champion, params["batch_size"], observations), observations


def score_sentences(
    sentences: ChunkedInput, champion: Any, params: dict[str, Any], monitoring: dict[str, Any]
) -> tuple[Iterator[pd.DataFrame], BatchObservations]:
    """The champion's answers for ``sentences``, one table per chunk: ``row``, ``sentence``, ``label`` (class
    name), ``probability``, ``p_<class>`` for every class and the model columns; and the batch's observations.

    ``params``: ``inference.rnn`` (as for images, plus ``text_column`` and ``encoding`` of the input).
    """
    _check_selection(champion, params["model_name"], params["alias"])
    observations = _observations(champion, monitoring)
    chunks = sentences.chunks(params["chunk_size"], text_column=params["text_column"], encoding=params["encoding"])
    return _scored(sentences, chunks, champion, params["batch_size"], observations, echo="sentence"), observations


def _observations(champion: Any, monitoring: dict[str, Any]) -> BatchObservations:
    """What this run will observe: nothing to compare (``monitored`` False) when monitoring is off or the
    champion has no reference profile, else a bounded sample (``monitoring.batch_sample``)."""
    params = MonitoringParams.model_validate(monitoring)
    profile = getattr(champion, "profile", None)
    classes = len(profile.class_names) if profile is not None else 0
    monitored = params.enabled and profile is not None
    return BatchObservations(num_classes=classes, keep=params.batch_sample, seed=params.profile.seed, monitored=monitored)


def _scored(
    source: ChunkedInput,
    chunks: Iterator[InputChunk],
    champion: Any,
    batch_size: int,
    observations: BatchObservations,
    echo: str | None = None,
) -> Iterator[pd.DataFrame]:
    """read → check → score → monitor → write, chunk by chunk; ``echo``: an input column the output repeats.
    Reading and checking run ``READ_AHEAD`` chunks ahead on a background thread; scoring and monitoring run
    in the thread that iterates this (the output dataset's producer thread), one chunk at a time."""
    progress = _Progress(source)
    with Ahead(_checked(chunks, champion), READ_AHEAD, "dlflow-read") as ready:  # read, check
        for chunk, records in ready:
            answers = score_chunk(chunk, records, champion, batch_size, observations.monitored)  # score
            answers = observe_chunk(chunk, answers, champion, observations)  # monitor
            yield output_table(chunk, answers, champion.info, echo)  # write
            progress.update(len(chunk))
    observations.finished = True
    progress.done()


def _checked(chunks: Iterator[InputChunk], champion: Any) -> Iterator[tuple[InputChunk, Any]]:
    """``(chunk, records)`` for every chunk, checked; ``chunks`` (and the file it reads) closed however this ends."""
    try:
        for chunk in chunks:
            yield chunk, check_chunk(chunk, champion)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def observe_chunk(chunk: InputChunk, answers: pd.DataFrame, champion: Any, observations: BatchObservations) -> pd.DataFrame:
    """``answers`` without their monitoring columns, which (with the chunk's labels, if any) go to ``observations``."""
    if not observations.monitored:
        observations.records += len(chunk)
        return answers
    class_names = champion.profile.class_names
    answers, observed = split_answers(answers, class_names)
    labels = None if chunk.labels is None else class_indices(chunk, class_names)
    observations.observe(observed, labels)
    return answers


def class_indices(chunk: InputChunk, class_names: list[str]) -> np.ndarray:
    """The chunk's labels as class indices: class names, or indices 0..C-1; a refusal names the row."""
    index = {name: i for i, name in enumerate(class_names)}
    found = np.empty(len(chunk.labels), np.int64)
    for position, value in enumerate(chunk.labels):
        key = str(value).strip() if not isinstance(value, (int, np.integer)) else value
        if isinstance(key, str) and key in index:
            found[position] = index[key]
        elif str(key).lstrip("-").isdigit() and 0 <= int(key) < len(class_names):
            found[position] = int(key)
        else:
            raise InputRefused(
                f"{chunk.where(position, position + 1)}: the {LABEL_COLUMN!r} {value!r} is not one of the model's "
                f"classes {class_names} (names, or indices 0-{len(class_names) - 1}): correct it, or drop the column"
            )
    return found


class _Progress:
    """A log line every ``every`` seconds while scoring, and one at the end."""

    def __init__(self, source: ChunkedInput, every: float = 10.0) -> None:
        self._source, self._every, self._count = source, every, 0
        self._started = self._logged = time.perf_counter()

    def update(self, count: int) -> None:
        self._count += count
        if time.perf_counter() - self._logged >= self._every:
            self._logged = time.perf_counter()
            total = f" of {self._source.total:,}" if self._source.total is not None else ""
            logger.info("Scored %s%s %s of %s (%.0f/s)", f"{self._count:,}", total, self._source.what, self._source.source,
                        self._count / (self._logged - self._started))  # fmt: skip

    def done(self) -> None:
        seconds = time.perf_counter() - self._started
        logger.info("Scored %s %s of %s in %.1f s (%.0f/s)", f"{self._count:,}", self._source.what, self._source.source,
                    seconds, self._count / max(seconds, 1e-9))  # fmt: skip


def _model(champion: Any) -> str:
    return f"{champion.info['model_name']} version {champion.info['model_version']}"


def _check_selection(champion: Any, model_name: str, alias: str) -> None:
    """The catalog loaded the model that the parameters name (the run is named and logged after those)."""
    asked = f"models:/{model_name}@{alias}"
    if champion.info["model_uri"] != asked:
        family = champion.family
        raise ValueError(
            f"The parameters inference.{family}.model_name/alias name {asked}, but the catalog entry "
            f"{family}_champion loaded {champion.info['model_uri']}: change both conf/*/parameters_inference.yml "
            f"and conf/*/catalog_inference.yml, or override both with --params inference.{family}.alias=<alias>."
        )


def check_chunk(chunk: InputChunk, champion: Any) -> Any:
    """``chunk``'s records checked against ``champion``'s input signature, in the form the model takes.

    Tensor signatures (pixel arrays) check the shape and give the model's dtype;
    column signatures check that the named columns are present and filled, and
    keep only those. Arrays for a column signature go to the model as they are
    (its ``predict`` decides). Refusals name the file.
    """
    schema = champion.input_schema
    if schema is None:
        return chunk.records
    if schema.is_tensor_spec():
        return _check_tensor(chunk, schema.inputs[0], _model(champion))
    if isinstance(chunk.records, pd.DataFrame):
        return _check_columns(chunk, schema, _model(champion))
    return chunk.records


def _check_tensor(chunk: InputChunk, spec: Any, model: str) -> np.ndarray:
    expected = tuple(spec.shape)
    shown = "(N, " + ", ".join(map(str, expected[1:])) + ")"
    if isinstance(chunk.records, pd.DataFrame):
        raise InputRefused(
            f"{chunk.source}: {model} takes pixel arrays shaped {shown}, not image files: score an IDX file or a "
            "parquet 'pixels' table with it, or register a model that takes encoded images (train it again)"
        )
    data = chunk.records
    if data.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, data.shape)):
        raise InputRefused(
            f"{chunk.where()}: images of shape {data.shape[1:]} (an input of shape {data.shape}) do not fit {model}, "
            f"which takes {shown} arrays: score images of that size, or with a model trained on yours"
        )
    return data.astype(spec.type)


def _check_columns(chunk: InputChunk, schema: Any, model: str) -> pd.DataFrame:
    data = chunk.records
    missing = [name for name in schema.required_input_names() if name not in data.columns]
    if missing:
        raise InputRefused(f"{chunk.source}: the input lacks the column(s) {missing} that {model} needs")
    table = data[[name for name in schema.input_names() if name in data.columns]]
    empty = table.isna().any(axis=1).to_numpy()
    if empty.any():
        row = int(np.argmax(empty))
        columns = list(table.columns[table.iloc[row].isna()])
        raise InputRefused(f"{chunk.where(row, row + 1)} has no value for {columns}; {model} needs every row filled")
    strings = {spec.name: str for spec in schema.inputs if getattr(spec.type, "name", "") == "string" and spec.name in table}
    return table.astype(strings).reset_index(drop=True)


def score_chunk(chunk: InputChunk, records: Any, champion: Any, batch_size: int, monitored: bool = False) -> pd.DataFrame:
    """``champion``'s answers for ``records`` (one row each), in batches; a refused batch is named by file and rows.
    ``monitored``: the model also returns its monitoring columns (input signals, features)."""
    answers = []
    params = {"monitoring": True} if monitored else None
    for start in range(0, len(chunk), batch_size):
        stop = min(start + batch_size, len(chunk))
        batch = records.iloc[start:stop] if isinstance(records, pd.DataFrame) else records[start:stop]
        try:
            answers.append(champion.predict(batch, params))
        except ValueError as error:
            raise InputRefused(
                f"{chunk.where(start, stop)}: {_model(champion)} refused them (rows numbered from 0 within them): {error}"
            ) from None
    table = pd.concat(answers, ignore_index=True)
    if len(table) != len(chunk):
        raise ValueError(f"{_model(champion)} answered {len(table)} rows for the {len(chunk)} of {chunk.where()}")
    return table


def output_table(chunk: InputChunk, answers: pd.DataFrame, model_info: dict[str, Any], echo: str | None = None) -> pd.DataFrame:
    """The output rows of ``chunk``: its identity columns, ``echo`` from its records, the answers, the model columns."""
    table = chunk.ids.reset_index(drop=True)
    if echo is not None:
        table = table.assign(**{echo: chunk.records[echo].to_numpy()})
    table = pd.concat([table, answers.reset_index(drop=True)], axis=1)
    return table.assign(**{key: model_info[key] for key in MODEL_COLUMNS})
