"""The drift report of one batch (a self-contained HTML page) and the history plot of a model's batches.

The page says first whether the batch raised the alert and why, then shows
every check (statistic, p-value, corrected p-value, whether it can alert),
live quality when labels came back, and what differs, as plots: predicted
class proportions and confidence against the reference, and each input
signal's distribution. No Kedro, no MLflow, no external CSS or JavaScript.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from dlflow.monitoring.observations import BatchObservations
    from dlflow.monitoring.profile import ReferenceProfile

REFERENCE, BATCH, ALERT = "#4a78b5", "#e07b39", "#b00020"

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.sub{color:#555;margin-top:0}.verdict{padding:.9em 1.1em;border-radius:6px;margin:1em 0;font-size:1.05em}
.drift{background:#fde2e4;border-left:6px solid #b00020}.clean{background:#e3f5e8;border-left:6px solid #17692c}
.unjudged{background:#eef0f3;border-left:6px solid #777}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.35em}.card span{color:#555;font-size:.85em}
table{border-collapse:collapse;margin:.5em 0;width:100%}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f4f4f4}td.name,th.name{text-align:left}tr.alert td{background:#fde2e4;font-weight:bold}
.na{color:#777;font-style:italic}.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}
figcaption{text-align:center;font-size:.9em;color:#555}img{max-width:100%}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    value = float(value)
    if not np.isfinite(value):
        return "—"
    if abs(value) >= 1000 or value.is_integer():
        return f"{value:,.0f}"
    return f"{value:.2e}" if 0 < abs(value) < 10**-digits else f"{value:.{digits}f}"


def _image(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{encoded}"><figcaption>{_e(alt)}</figcaption></figure>'


def build_drift_report(checks: Mapping[str, Any], profile: ReferenceProfile | None, batch: BatchObservations) -> str:
    """The HTML page of one batch: ``checks`` (what ``judge_batch`` decided and logs as JSON), with plots of
    ``batch``'s sample against ``profile`` where both exist."""
    model = checks["model"]
    title = f"Drift report: {model['model_name']} v{model['model_version']}"
    state = "drift" if checks["drift_detected"] else "clean" if checks["judged"] else "unjudged"
    heading = {"drift": "Drift detected", "clean": "No drift detected", "unjudged": "Not judged"}[state]
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>Training run {_e(model['model_run_id'])} · {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>",
        f"<div class='verdict {state}'><b>{heading}.</b> {_e(checks['verdict'])}</div>",
        _cards(checks),
        _checks_section(checks),
        _quality_section(checks),
    ]
    if profile is not None and batch.sample is not None:
        parts.append(_plots_section(profile, batch))
    parts.append(_policy_section(checks))
    parts.append("</body></html>")
    return "\n".join(parts)


def _cards(checks: Mapping[str, Any]) -> str:
    decision = checks.get("decision") or {}
    reference = checks.get("reference") or {}
    cards = [
        (_number(checks["records"]), "records scored"),
        (_number(checks["compared"]), "compared (uniform sample)"),
        (_number(reference.get("records")), "reference records"),
        (f"{_number(decision.get('drift_score'), 2)} / {_number(decision.get('threshold'), 2)}", "drift score / alert above"),
        (_number(checks["labelled"]), "labels came back"),
    ]
    return "<div class='cards'>" + "".join(f"<div class='card'><b>{v}</b><span>{_e(k)}</span></div>" for v, k in cards) + "</div>"


def _checks_section(checks: Mapping[str, Any]) -> str:
    decision = checks.get("decision")
    if not decision or not decision.get("results"):
        return "<h2>Checks</h2><p class='na'>No checks ran: " + _e(checks["verdict"]) + "</p>"
    alpha = (checks.get("policy") or {}).get("alpha", 0.05)
    rows = []
    for result in decision["results"]:
        corrected = result.get("corrected_p_value")
        alert = bool(result.get("alerting")) and corrected is not None and corrected < alpha
        status = "alert" if alert else "can alert" if result.get("alerting") else "shown only"
        rows.append(
            f"<tr class='{'alert' if alert else ''}'><td class='name'>{_e(result['name'])}</td><td class='name'>{_e(result['kind'])}</td>"
            f"<td>{_number(result['statistic'])}</td><td>{_number(result['p_value'])}</td>"
            f"<td>{_number(corrected)}</td><td class='name'>{status}</td></tr>"
        )
    return (
        "<h2>Checks</h2><table><tr><th class='name'>check</th><th class='name'>kind</th><th>statistic</th>"
        "<th>p-value</th><th>corrected p-value</th><th class='name'>status</th></tr>" + "".join(rows) + "</table>"
    )


def _quality_section(checks: Mapping[str, Any]) -> str:
    quality = checks.get("live_quality")
    if not quality:
        return (
            "<h2>Live quality</h2><p class='na'>The batch carried no labels (a <code>label</code> column): no live quality.</p>"
        )
    test = (checks.get("reference") or {}).get("test", {})
    rows = [
        ("accuracy", quality["accuracy"], *quality["accuracy_ci95"], test.get("accuracy")),
        ("macro-F1", quality["macro_f1"], *quality["macro_f1_ci95"], test.get("macro_f1")),
    ]
    body = "".join(
        f"<tr><td class='name'>{name}</td><td>{_number(value)}</td><td>[{_number(low)}, {_number(high)}]</td><td>{_number(ref)}</td></tr>"
        for name, value, low, high, ref in rows
    )
    note = "" if quality.get("judged", True) else " (too few labels to raise the alert: see min_labelled)"
    return (
        f"<h2>Live quality</h2><p>{_number(checks['labelled'])} labelled records; one-sided test of a drop in accuracy "
        f"below the champion's test accuracy: p = {_number(quality['drop_p_value'])}{_e(note)}.</p>"
        "<table><tr><th class='name'>metric</th><th>this batch</th><th>95 % interval</th><th>champion's test</th></tr>"
        + body
        + "</table>"
    )


def _policy_section(checks: Mapping[str, Any]) -> str:
    policy = checks.get("policy") or {}
    rows = "".join(f"<tr><td class='name'>{_e(k)}</td><td class='name'>{_e(v)}</td></tr>" for k, v in policy.items())
    return f"<h2>Policy</h2><p>conf/base/parameters_monitoring.yml (monitoring.policy):</p><table>{rows}</table>"


def _plots_section(profile: ReferenceProfile, batch: BatchObservations) -> str:
    reference, sample = profile.observations, batch.sample
    figures = [
        _image(
            _class_figure(profile.class_names, reference.probabilities, batch.predicted), "Predicted classes: share of records"
        ),
        _image(_confidence_figure(reference.probabilities, sample.probabilities), "Confidence (top class probability)"),
        _image(_signals_figure(reference.input_names, reference.inputs, sample.inputs), "Input signals"),
    ]
    return "<h2>What differs</h2><div class='figs'>" + "".join(figures) + "</div>"


def _class_figure(class_names: Sequence[str], reference_probabilities: np.ndarray, predicted: np.ndarray) -> Figure:
    classes = len(class_names)
    reference = np.bincount(reference_probabilities.argmax(axis=1), minlength=classes) / len(reference_probabilities)
    batch = predicted / max(predicted.sum(), 1)
    figure = Figure(figsize=(max(5.0, 0.55 * classes + 2), 3.2))
    axes = figure.subplots()
    x = np.arange(classes)
    axes.bar(x - 0.2, reference, 0.4, label="reference", color=REFERENCE)
    axes.bar(x + 0.2, batch, 0.4, label="this batch", color=BATCH)
    axes.set_xticks(x, [str(n) for n in class_names], rotation=45 if classes > 4 else 0, ha="right" if classes > 4 else "center")
    axes.set_ylabel("share")
    axes.legend(frameon=False)
    return figure


def _confidence_figure(reference: np.ndarray, batch: np.ndarray) -> Figure:
    figure = Figure(figsize=(4.6, 3.2))
    axes = figure.subplots()
    bins = np.linspace(1.0 / reference.shape[1], 1.0, 21)
    axes.hist(reference.max(axis=1), bins, density=True, alpha=0.6, label="reference", color=REFERENCE)
    axes.hist(batch.max(axis=1), bins, density=True, alpha=0.6, label="this batch", color=BATCH)
    axes.set_xlabel("confidence")
    axes.legend(frameon=False)
    return figure


def _signals_figure(names: Sequence[str], reference: np.ndarray, batch: np.ndarray) -> Figure:
    figure = Figure(figsize=(2.9 * len(names), 2.8))
    for index, (axes, name) in enumerate(zip(np.atleast_1d(figure.subplots(1, len(names))), names)):
        values = np.concatenate([reference[:, index], batch[:, index]])
        low, high = np.percentile(values, [0.5, 99.5])
        bins = np.linspace(low, high if high > low else low + 1, 25)
        axes.hist(reference[:, index], bins, density=True, alpha=0.6, color=REFERENCE, label="reference")
        axes.hist(batch[:, index], bins, density=True, alpha=0.6, color=BATCH, label="this batch")
        axes.set_title(name, fontsize=10)
        axes.set_yticks([])
    figure.axes[0].legend(frameon=False, fontsize=8)
    return figure


def plot_drift_history(history: Mapping[str, Sequence[tuple[int, float]]], model_name: str) -> Figure:
    """Drift score per batch (step) against the alert threshold, alerts marked in red, and live accuracy
    (second panel) where labels came back. ``history``: metric name → ``[(step, value), ...]``."""
    scores = sorted(history.get("drift_score", []))
    threshold = dict(history.get("drift_threshold", []))
    detected = dict(history.get("drift_detected", []))
    judged = dict(history.get("drift_judged", []))
    accuracy = sorted(history.get("live_accuracy", []))
    figure = Figure(figsize=(8, 5.2 if accuracy else 3.4))
    axes = figure.subplots(2 if accuracy else 1, 1, sharex=True, squeeze=False)[:, 0]
    steps = [s for s, _ in scores]
    axes[0].plot(steps, [v for _, v in scores], "-o", color=REFERENCE, markersize=4, label="drift score")
    if threshold:
        axes[0].step(sorted(threshold), [threshold[s] for s in sorted(threshold)], where="mid", color="#555",
                     linestyle="--", label="alert threshold")  # fmt: skip
    alerts = [(s, v) for s, v in scores if detected.get(s)]
    if alerts:
        axes[0].scatter(*zip(*alerts), color=ALERT, zorder=3, s=40, label="alert")
    unjudged = [(s, v) for s, v in scores if not judged.get(s, 1)]
    if unjudged:
        axes[0].scatter(*zip(*unjudged), color="#999", marker="x", zorder=3, label="not judged")
    axes[0].set_ylabel("−log10 corrected p")
    axes[0].set_title(f"{model_name}: drift per batch")
    axes[0].legend(frameon=False, fontsize=8, loc="upper left")
    if accuracy:
        axes[1].plot([s for s, _ in accuracy], [v for _, v in accuracy], "-o", color=BATCH, markersize=4)
        axes[1].set_ylabel("live accuracy")
    axes[-1].set_xlabel("batch (step)")
    figure.tight_layout()
    return figure
