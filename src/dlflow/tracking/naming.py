"""What a run is called, which experiment it goes to, and what its description says.

``kedro run --pipeline cnn`` becomes the run ``cnn fast fashion_mnist 4ep`` in
the experiment ``dlflow/cnn``, described as what ran on which data, and, once
it has ended, its headline metrics and what the registry made of its model.
The experiments and the headline metrics are set in ``conf/<env>/experiments.yml``;
the names and descriptions are read off the run's validated parameters.

Pure functions of parameters and configuration: the hooks
(:class:`dlflow.tracking.hooks.RunIdentityHook`) and the Airflow DAGs apply them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Where the configuration below lives: ``conf/<env>/experiments.yml``, the config loader's ``experiments`` pattern.
CONFIG_KEY = "experiments"
#: Environments that need no mention in a run's name.
QUIET_ENVS = (None, "", "base", "local")
#: The tag holding the description's paragraph on reused nodes (``dlflow.tracking.reuse``), kept when it is rewritten.
REUSE_NOTE_TAG = "dlflow.reuse_note"


class RunIdentityConfig(BaseModel):
    """``conf/<env>/experiments.yml``."""

    model_config = ConfigDict(extra="forbid")

    #: pipeline name -> MLflow experiment
    experiments: dict[str, str] = Field(default_factory=dict)
    #: the experiment of a pipeline not listed: ``<prefix>/<pipeline>``
    prefix: str = Field(default="dlflow", min_length=1)
    #: pipeline name -> metrics its run's description reports once the run has ended
    headline_metrics: dict[str, list[str]] = Field(default_factory=dict)


def load_config(raw: Mapping[str, Any] | None) -> RunIdentityConfig:
    """``raw`` (the loaded ``experiments.yml``, possibly empty) validated; ``ValueError`` naming the file otherwise."""
    try:
        return RunIdentityConfig.model_validate(dict(raw or {}))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ValueError(f"conf/<env>/experiments.yml is invalid: {problems}") from None


def _pipelines(pipeline_names: Sequence[str] | str | None) -> list[str]:
    if not pipeline_names:
        return ["__default__"]
    return [pipeline_names] if isinstance(pipeline_names, str) else list(pipeline_names)


def experiment_name(pipeline_names: Sequence[str] | str | None, config: RunIdentityConfig) -> str:
    """The experiment a run of ``pipeline_names`` goes to: the first one listed in ``config``, else ``<prefix>/<first>``."""
    names = _pipelines(pipeline_names)
    for name in ["+".join(names), *names]:
        if name in config.experiments:
            return config.experiments[name]
    return f"{config.prefix}/{names[0].strip('_') or 'default'}"


# ----------------------------------------------------------------------------- names and descriptions per pipeline

#: (parameters, the run's tags so far) -> (run name, description)
Describer = Callable[[Mapping[str, Any], Mapping[str, str]], tuple[str, str]]


def _get(params: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    value: Any = params
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


def _count(number: Any, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _image_data(params: Mapping[str, Any]) -> str:
    """The image data set's name: the registered source, or the user's folder (``dlflow.sources.naming``)."""
    from dlflow.sources.naming import dataset_name

    source = str(params.get("image_source", "?"))
    try:
        return dataset_name(source, params.get("images_dir"), params.get("dataset_name"))
    except ValueError:
        return source


def _cnn(params: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[str, str]:
    architecture = _get(params, "cnn.model.architecture", "?")
    source, epochs = _image_data(params), _get(params, "cnn.training.epochs", "?")
    images = _get(params, "cnn.data.max_train_samples") or "all"
    return (
        f"cnn {architecture} {source} {epochs}ep",
        f"Image classifier: the {architecture} CNN trained on {source} ({images} training images, "
        f"{_count(epochs, 'epoch')} of batch {_get(params, 'cnn.training.batch_size', '?')}, lr {_get(params, 'cnn.training.lr', '?')}), "
        "evaluated on the test images and offered to the promotion gate.",
    )


def _word2vec(params: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[str, str]:
    mode, dim = _get(params, "word2vec.training.mode", "?"), _get(params, "word2vec.training.dim", "?")
    epochs = _get(params, "word2vec.training.epochs", "?")
    corpora = ", ".join(_get(params, "text.corpora", []) or ["?"])
    return (
        f"word2vec {mode} d{dim} {epochs}ep",
        f"Word2Vec {mode} vectors, {dim} dimensions, window {_get(params, 'word2vec.training.window', '?')}, "
        f"{_count(epochs, 'epoch')}, on the corpora {corpora}; judged on analogies, WordSim-353 and SimLex-999.",
    )


def _rnn(params: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[str, str]:
    cell = _get(params, "rnn.model.cell", "?")
    bidirectional = "bi" if _get(params, "rnn.model.bidirectional") else ""
    embedding = _get(params, "rnn.model.embedding_mode", "?")
    folds, fold = _get(params, "text.folds", 10), _get(params, "rnn.evaluation.test_fold", 0)
    mode = _get(params, "rnn.evaluation.mode", "cv")
    if mode is None:  # chosen by the data's size (dlflow.config.RnnEvaluationParams.resolved_mode)
        limit = _get(params, "rnn.evaluation.cv_max_sentences", "?")
        evaluation, short = f"{folds}-fold cross-validation up to {limit} sentences, else fold {fold} held out", "auto"
    elif mode == "cv":
        evaluation, short = f"{folds}-fold cross-validation", f"cv{folds}"
    else:
        evaluation, short = f"fold {fold} of {folds} held out", f"fold{fold}"
    table = params.get("labelled_text") if params.get("text_source") == "table" else None
    data = f"the labelled text {table}" if table else "MR movie-review polarity"
    return (
        f"rnn {cell} {embedding} {short}",
        f"Sentence classifier: a {bidirectional}{str(cell).upper()} over the Word2Vec vectors ({embedding}), "
        f"{_count(_get(params, 'rnn.training.epochs', '?'), 'epoch')}, on {data}, {evaluation}; "
        "baseline: bag-of-words Naive Bayes on the same folds.",
    )


def _inference(family: str) -> Describer:
    def describe(params: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[str, str]:
        name, alias = _get(params, f"inference.{family}.model_name", "?"), _get(params, f"inference.{family}.alias", "?")
        version = tags.get(f"inference.{family}.model_version")
        return (
            f"inference_{family} {alias}" + (f" v{version}" if version else ""),
            f"Batch inference: models:/{name}@{alias} scores a file.",
        )

    return describe


def _both(*describers: Describer) -> Describer:
    return lambda params, tags: tuple(" + ".join(parts) for parts in zip(*(d(params, tags) for d in describers)))


def _tuning(family: str, worker_only: bool) -> Describer:
    def describe(params: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[str, str]:
        study = _get(params, f"tuning.{family}", {}) or {}
        budget = [f"{study['n_trials']} trials"] if study.get("n_trials") else []
        budget += [f"{study['timeout_minutes']:g} min"] if study.get("timeout_minutes") else []
        sampler, pruner = _get(study, "sampler.type", "tpe"), _get(study, "pruner.type", "median")
        space = ", ".join(sorted(_flat_keys(study.get("space") or {}))) or "?"
        rest = "" if worker_only else "; the best trial's model is then tested once and offered to the promotion gate"
        return (
            f"tune_{family}{'_trials' if worker_only else ''} {study.get('study_name', '?')} {' '.join(budget)}".rstrip(),
            f"Hyperparameter search ({'another worker of ' if worker_only else ''}Optuna study "
            f"{study.get('study_name', '?')}, {sampler} sampler, {pruner} pruner) over {family}: {space}; "
            f"budget {' and '.join(budget) or '?'} (over all workers); each trial is a child run{rest}.",
        )

    return describe


def _flat_keys(space: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of a search space, nested or dotted (as ``dlflow.config.StudyParams`` reads it)."""
    keys = []
    for key, value in space.items():
        if isinstance(value, Mapping) and value and "type" not in value:
            keys += _flat_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _ingestion(params: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[str, str]:
    source = _image_data(params)
    return f"ingestion {source}", f"Ingestion: the {source} images and the text corpora, fetched, checked and tabled."


#: pipeline -> (run name, description) from the parameters
DESCRIBERS: dict[str, Describer] = {
    "__default__": _cnn,
    "cnn": _cnn,
    "word2vec": _word2vec,
    "rnn": _rnn,
    "nlp": _both(_word2vec, _rnn),
    "inference_cnn": _inference("cnn"),
    "inference_rnn": _inference("rnn"),
    "inference": _both(_inference("cnn"), _inference("rnn")),
    "ingestion": _ingestion,
    "tune_cnn": _tuning("cnn", worker_only=False),
    "tune_cnn_trials": _tuning("cnn", worker_only=True),
    "tune_rnn": _tuning("rnn", worker_only=False),
    "tune_rnn_trials": _tuning("rnn", worker_only=True),
}


def run_name(
    pipeline_names: Sequence[str] | str | None,
    params: Mapping[str, Any],
    env: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """``cnn fast fashion_mnist 4ep``; ``... [test]`` under another Kedro environment than ``local``.

    ``tags``: the run's tags once it has ended (an inference run then names the version it scored with).
    """
    names = [DESCRIBERS[name](params, tags or {})[0] if name in DESCRIBERS else name for name in _pipelines(pipeline_names)]
    return " + ".join(names) + ("" if env in QUIET_ENVS else f" [{env}]")


def run_description(
    pipeline_names: Sequence[str] | str | None, params: Mapping[str, Any], env: str | None = None, command: str = ""
) -> str:
    """What the run does, on which data (Markdown, as MLflow shows a run's description)."""
    names = _pipelines(pipeline_names)
    parts = [DESCRIBERS[name](params, {})[1] for name in names if name in DESCRIBERS]
    what = " ".join(parts) or f"Pipeline {' + '.join(names)}."
    where = f" (Kedro environment `{env}`)" if env not in QUIET_ENVS else ""
    return what + (f"\n\n`{command}`{where}" if command else where)


def result_summary(
    pipeline_names: Sequence[str] | str | None,
    config: RunIdentityConfig,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
) -> str:
    """The run's outcome in a line or two: the headline metrics it logged, and its registered version;
    then the nodes it reused from earlier runs (``REUSE_NOTE_TAG``), if any."""
    lines = []
    wanted = [metric for name in _pipelines(pipeline_names) for metric in config.headline_metrics.get(name, [])]
    found = [f"{metric} {metrics[metric]:.4f}" for metric in dict.fromkeys(wanted) if metric in metrics]
    if found:
        lines.append("**Result:** " + ", ".join(found) + ".")
    if tags.get("registered_model"):
        lines.append(
            f"**Registered:** {tags['registered_model']} v{tags.get('registered_version', '?')}, "
            f"gate decision: {tags.get('gate_decision', '?')}."
        )
    for family in ("cnn", "rnn"):
        if tags.get(f"inference.{family}.model_version"):
            lines.append(
                f"**Scored with:** {tags.get(f'inference.{family}.model_name')} "
                f"v{tags[f'inference.{family}.model_version']} (run {tags.get(f'inference.{family}.model_run_id', '?')})."
            )
    if tags.get(REUSE_NOTE_TAG):
        lines.append(tags[REUSE_NOTE_TAG])
    return "\n\n".join(lines)


def summary_line(
    pipeline_names: Sequence[str] | str | None,
    config: RunIdentityConfig,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    run_url: str,
) -> str:
    """The one line a run ends its log with: what ran, its headline metrics, its registered version and the
    gate's decision (or the model it scored with), and where to look in the MLflow UI."""
    names = ", ".join(_pipelines(pipeline_names)) or "__default__"
    parts = [f"Run finished: {names}"]
    wanted = [metric for name in _pipelines(pipeline_names) for metric in config.headline_metrics.get(name, [])]
    found = [f"{metric} {metrics[metric]:.4g}" for metric in dict.fromkeys(wanted) if metric in metrics]
    if found:
        parts.append(", ".join(found))
    if tags.get("registered_model"):
        parts.append(
            f"registered {tags['registered_model']} v{tags.get('registered_version', '?')} ({tags.get('gate_decision', '?')})"
        )
    for family in ("cnn", "rnn"):
        if tags.get(f"inference.{family}.model_version"):
            parts.append(f"scored with {tags.get(f'inference.{family}.model_name')} v{tags[f'inference.{family}.model_version']}")
    return " | ".join(parts) + f" | MLflow: {run_url}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI: on the tracking server, or (an embedded store) where ``mlflow ui`` serves it."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{page}"
    return f"http://127.0.0.1:5000/{page} (start the UI: mlflow ui --backend-store-uri {tracking_uri})"
