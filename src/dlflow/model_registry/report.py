"""Champion-vs-challenger report: one self-contained HTML page (no Kedro, no MLflow).

The registration pipeline gathers both sides (:class:`ModelSide`) and the gate's
decision; :func:`build_report` lays them out: the decision with its reason and
the rules applied, headline metrics side by side with deltas, a per-class delta
table, both confusion matrices (shaded HTML tables) and both models' learning
curves (a base64 PNG); there is no external CSS or JavaScript. Whatever a
side lacks (no champion yet, a family without classes or epochs) is said so.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dlflow.evaluation.metrics import sanitise_name
from dlflow.evaluation.plots import DPI

CLASS_METRICS = ("precision", "recall", "f1")
CURVES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
_LOWER_IS_BETTER = ("loss", "oov_rate", "error")

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.name,th.name{text-align:left}
.better{color:#17692c}.worse{color:#b00020}.breach{background:#fde2e4;font-weight:bold}
.decision{padding:.8em 1em;border-radius:6px;margin:1em 0}.promoted{background:#e3f5e8}.not_promoted{background:#fff2dc}
.na{color:#777;font-style:italic}.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}
figcaption{text-align:center;font-size:.9em;color:#555}img{max-width:100%}
table.heatmap td{text-align:center;min-width:3.2em;font-size:.85em;line-height:1.1}
table.heatmap th.col{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;font-size:.85em}
"""


@dataclass(frozen=True)
class ModelSide:
    """One model of the comparison.

    ``scores``: headline metrics by name. ``per_class``: class name → metric →
    value (as :func:`dlflow.evaluation.classification_metrics` gives it), class
    order as in the confusion matrix. ``confusion_matrix``: counts, rows = true
    class. ``history``: metric name → ``[(epoch, value), ...]``.
    """

    label: str
    version: str | None = None
    run_id: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    per_class: Mapping[str, Mapping[str, float]] | None = None
    confusion_matrix: Sequence[Sequence[int]] | None = None
    history: Mapping[str, Sequence[tuple[int, float]]] | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.per_class or {})


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{value:.0f}" if value.is_integer() and abs(value) >= 10 else f"{value:.4f}"


def _delta(new: float | None, old: float | None, higher_is_better: bool = True, breach: bool = False) -> str:
    if new is None or old is None:
        return '<td class="na">—</td>'
    diff = float(new) - float(old)
    better = diff > 0 if higher_is_better else diff < 0
    css = "breach" if breach else ("better" if better else "worse" if diff else "")
    whole = float(new).is_integer() and float(old).is_integer() and abs(float(new)) >= 10  # counts, as _fmt shows them
    return f'<td class="{css}">{diff:+.0f}</td>' if whole else f'<td class="{css}">{diff:+.4f}</td>'


def figure_to_img(fig: Figure, alt: str) -> str:
    """An ``<img>`` tag holding ``fig`` as an inline base64 PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _headline_names(side: ModelSide) -> list[str]:
    """The candidate's scores without the per-class ``*f1_<class>`` entries (they are in the class table)."""
    per_class = {f"f1_{sanitise_name(c)}" for c in side.class_names}
    return [name for name in side.scores if not any(name.endswith(suffix) for suffix in per_class)]


def _higher_is_better(metric: str, rules: Mapping[str, Any]) -> bool:
    if metric == rules.get("metric"):
        return bool(rules.get("greater_is_better", True))
    return not any(word in metric for word in _LOWER_IS_BETTER)


def _decision_section(decision: str, reason: str, rules: Mapping[str, Any], compared_with: str | None) -> str:
    promoted = decision == "promoted"
    rows = "".join(f'<tr><td class="name">{_e(k)}</td><td>{_e(v)}</td></tr>' for k, v in rules.items())
    compared = f"champion v{_e(compared_with)}" if compared_with else "no champion"
    return (
        "<h2>Gate decision</h2>"
        f'<div class="decision {"promoted" if promoted else "not_promoted"}">'
        f"<p><strong>{'Promoted to @champion' if promoted else 'Not promoted: registered as @challenger'}</strong>"
        f" (decision at registration, compared with {compared})</p>"
        f'<p id="reason">{_e(reason)}</p></div>'
        f'<table id="rules"><tr><th class="name">rule</th><th>value</th></tr>{rows}</table>'
    )


def _headline_section(candidate: ModelSide, champion: ModelSide | None, rules: Mapping[str, Any]) -> str:
    names = _headline_names(candidate)
    if not names:
        return '<h2>Headline metrics</h2><p class="na">No metrics available.</p>'
    if champion is None:
        body = "".join(f'<tr><td class="name">{_e(n)}</td><td>{_fmt(candidate.scores[n])}</td></tr>' for n in names)
        return (
            f'<h2>Headline metrics</h2><table id="headline"><tr><th class="name">metric</th>'
            f"<th>{_e(candidate.label)}</th></tr>{body}</table>"
        )
    rows = []
    for name in names:
        new, old = candidate.scores.get(name), champion.scores.get(name)
        marker = " ★" if name == rules.get("metric") else ""
        rows.append(
            f'<tr><td class="name">{_e(name)}{marker}</td><td>{_fmt(old)}</td><td>{_fmt(new)}</td>'
            f"{_delta(new, old, _higher_is_better(name, rules))}</tr>"
        )
    return (
        '<h2>Headline metrics</h2><table id="headline"><tr><th class="name">metric</th>'
        f"<th>{_e(champion.label)}</th><th>{_e(candidate.label)}</th><th>Δ (candidate − champion)</th></tr>"
        f"{''.join(rows)}</table><p>★ the gate's metric.</p>"
    )


def _per_class_section(candidate: ModelSide, champion: ModelSide | None, rules: Mapping[str, Any]) -> str:
    if not candidate.per_class:
        return '<h2>Per-class metrics</h2><p class="na">Per-class metrics are not available for this model.</p>'
    note = ""
    if champion is not None and not champion.per_class:
        note = f'<p class="na">Per-class metrics of {_e(champion.label)} are not available.</p>'
        champion = None
    checked, limit = rules.get("class_metric"), rules.get("max_class_drop")
    head = "".join(
        f"<th>{_e(m)} {_e(champion.label)}</th><th>{_e(m)} {_e(candidate.label)}</th><th>Δ {_e(m)}</th>"
        if champion is not None
        else f"<th>{_e(m)}</th>"
        for m in CLASS_METRICS
    )
    rows = []
    for name, scores in candidate.per_class.items():
        cells = []
        old_scores = champion.per_class.get(name) if champion is not None and champion.per_class else None
        for m in CLASS_METRICS:
            new = scores.get(m)
            if champion is None:
                cells.append(f"<td>{_fmt(new)}</td>")
                continue
            old = old_scores.get(m) if old_scores else None
            breach = (
                m == checked
                and limit is not None
                and new is not None
                and old is not None
                and float(old) - float(new) > float(limit) + 1e-12
            )
            cells.append(f"<td>{_fmt(old)}</td><td>{_fmt(new)}</td>{_delta(new, old, True, breach)}")
        support = scores.get("support")
        rows.append(f'<tr><td class="name">{_e(name)}</td>{"".join(cells)}<td>{_fmt(support)}</td></tr>')
    legend = (
        f"<p>Highlighted: a drop of {_e(checked)} larger than max_class_drop {_e(limit)}.</p>"
        if champion is not None and limit is not None
        else ""
    )
    return (
        f'<h2>Per-class metrics</h2>{note}<table id="per_class"><tr><th class="name">class</th>{head}'
        f"<th>support</th></tr>{''.join(rows)}</table>{legend}"
    )


def _matrix_table(side: ModelSide, table_id: str) -> str:
    """The confusion matrix as a heatmap table: each cell shaded by its share of the true class."""
    names = side.class_names
    matrix = np.asarray(side.confusion_matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)

    def cell(count: int, share: float) -> str:
        text = "#fff" if share > 0.6 else "#222"
        return (
            f'<td style="background:rgba(8,81,156,{share:.2f});color:{text}" title="{share:.1%} of the true class">'
            f"{share:.0%}<br><small>{int(count)}</small></td>"
        )

    head = "".join(f'<th class="col">{_e(n)}</th>' for n in names)
    rows = "".join(
        f'<tr><th class="name">{_e(names[i])}</th>' + "".join(cell(c, f) for c, f in zip(row, shares[i])) + "</tr>"
        for i, row in enumerate(matrix)
    )
    return (
        f'<figure><table id="{table_id}" class="heatmap"><tr><th class="name">true \\ predicted</th>{head}</tr>'
        f"{rows}</table><figcaption>{_e(side.label)} (rows: true class; share of the row, and count)</figcaption></figure>"
    )


def _confusion_section(candidate: ModelSide, champion: ModelSide | None) -> str:
    tables, missing = [], []
    for side, key in ((champion, "champion"), (candidate, "candidate")):
        if side is None:
            continue
        if side.confusion_matrix is None or not side.per_class:
            missing.append(f'<p class="na">No confusion matrix available for {_e(side.label)}.</p>')
            continue
        tables.append(_matrix_table(side, f"confusion_{key}"))
    return f'<h2>Confusion matrices</h2>{"".join(missing)}<div class="figs">{"".join(tables)}</div>'


def plot_compared_curves(sides: Sequence[ModelSide]) -> Figure:
    """Loss and accuracy per epoch, train (solid) and validation (dashed), one colour per model."""
    fig = Figure(figsize=(11.0, 4.0), dpi=DPI, layout="tight")
    axes = fig.subplots(1, 2)
    for ax, kind in zip(axes, ("loss", "accuracy")):
        # the first side (the candidate) on top, thinner, so that identical curves still show both colours
        for order, (side, colour) in enumerate(zip(sides, ("tab:blue", "tab:orange"))):
            for split, style in (("train", "o-"), ("val", "s--")):
                points = (side.history or {}).get(f"{split}_{kind}")
                if points:
                    steps, values = zip(*sorted(points))
                    ax.plot(
                        steps, values, style, color=colour, label=f"{side.label} {split}",
                        linewidth=1.5 + 2.5 * order, markersize=5 + 4 * order, alpha=1.0 - 0.45 * order, zorder=3 - order,
                    )  # fmt: skip
        ax.set_title(kind.capitalize())
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    return fig


def _curves_section(candidate: ModelSide, champion: ModelSide | None) -> str:
    sides = [s for s in (candidate, champion) if s is not None]
    with_curves = [s for s in sides if s.history and any(s.history.get(k) for k in CURVES)]
    missing = "".join(f'<p class="na">No learning curves available for {_e(s.label)}.</p>' for s in sides if s not in with_curves)
    image = figure_to_img(plot_compared_curves(with_curves), "learning curves") if with_curves else ""
    return f"<h2>Learning curves</h2>{missing}{image}"


def build_report(
    model_name: str,
    candidate: ModelSide,
    champion: ModelSide | None,
    *,
    decision: str,
    reason: str,
    rules: Mapping[str, Any],
    champion_note: str | None = None,
    compared_with: str | None = None,
) -> str:
    """The whole report as one HTML string.

    ``decision`` is ``"promoted"`` or ``"not_promoted"``; ``reason`` the gate's
    reason; ``rules`` the promotion rules applied (shown as a table). With
    ``champion=None`` the page says there is no champion and shows the
    candidate alone (``champion_note`` can say why, e.g. a different test set,
    and ``compared_with`` which champion version the gate looked at).
    """
    title = f"{model_name} v{candidate.version}: champion vs challenger"
    if champion is None:
        intro = f'<p id="no_champion" class="na">{_e(champion_note or "No champion yet: the candidate is shown alone.")}</p>'
    else:
        intro = (
            f"<p>The {_e(candidate.label)} (run {_e(candidate.run_id)}) against the {_e(champion.label)} "
            f"(run {_e(champion.run_id)}), on the same test data.</p>"
        )
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1><p>Generated {generated}.</p>{intro}",
        _decision_section(decision, reason, rules, champion.version if champion else compared_with),
        _headline_section(candidate, champion, rules),
        _per_class_section(candidate, champion, rules),
        _confusion_section(candidate, champion),
        _curves_section(candidate, champion),
        "</body></html>",
    ]
    return "\n".join(parts)
