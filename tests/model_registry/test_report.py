"""The champion-vs-challenger HTML report: numbers, both confusion matrices, curves, decision."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from dlflow.model_registry.report import ModelSide, build_report

CLASSES = ["T-shirt/top", "Trouser", "Bag"]
RULES = {
    "metric": "test_accuracy",
    "greater_is_better": True,
    "min_improvement": 0.0,
    "class_metric": "recall",
    "max_class_drop": 0.02,
}


def classes(recalls, f1s):
    return {name: {"precision": 0.5, "recall": r, "f1": f, "support": 40} for name, r, f in zip(CLASSES, recalls, f1s)}


def history(loss0: float) -> dict:
    return {
        "train_loss": [(1, loss0), (2, loss0 / 2)],
        "val_loss": [(1, loss0 * 1.1), (2, loss0 / 1.8)],
        "train_accuracy": [(1, 0.6), (2, 0.8)],
        "val_accuracy": [(1, 0.55), (2, 0.75)],
    }


CANDIDATE = ModelSide(
    label="candidate v2",
    version="2",
    run_id="run-new",
    scores={"test_accuracy": 0.8125, "test_macro_f1": 0.8011, "test_num_samples": 120.0, "test_f1_T-shirt_top": 0.7},
    per_class=classes([0.6250, 0.9750, 0.8500], [0.7, 0.9, 0.8]),
    confusion_matrix=[[25, 3, 12], [0, 39, 1], [4, 2, 34]],
    history=history(2.0),
)
CHAMPION = ModelSide(
    label="champion v1",
    version="1",
    run_id="run-old",
    scores={"test_accuracy": 0.7750, "test_macro_f1": 0.7600, "test_num_samples": 120.0},
    per_class=classes([0.7000, 0.9000, 0.7250], [0.72, 0.85, 0.71]),
    confusion_matrix=[[28, 5, 7], [2, 36, 2], [6, 5, 29]],
    history=history(3.0),
)


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.scripts = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "link" or (tag == "script"):
            self.scripts += 1


def table(html: str, table_id: str) -> str:
    match = re.search(rf'<table id="{table_id}"[^>]*>(.*?)</table>', html, re.S)
    assert match, table_id
    return match.group(1)


def report(**kwargs) -> str:
    defaults = dict(
        decision="not_promoted",
        reason="not promoted (rule max_class_drop): recall of class 'T-shirt/top' 0.7000 → 0.6250",
        rules=RULES,
    )
    return build_report("dlflow-cnn-test", CANDIDATE, CHAMPION, **(defaults | kwargs))


def test_report_has_headline_numbers_side_by_side_with_deltas():
    html = report()
    headline = table(html, "headline")
    for text in ("0.7750", "0.8125", "+0.0375", "0.7600", "0.8011", "+0.0411", "120"):
        assert text in headline, text
    assert "test_f1_T-shirt_top" not in headline  # per-class F1 lives in the per-class table


def test_report_has_per_class_deltas_and_flags_the_breach():
    rows = table(report(), "per_class")
    assert "T-shirt/top" in rows and "0.6250" in rows and "0.7000" in rows
    assert '<td class="breach">-0.0750</td>' in rows  # the recall drop beyond max_class_drop
    assert "+0.0750" in rows and "+0.1250" in rows  # Trouser and Bag recall gains


def test_report_has_both_confusion_matrices_as_shaded_tables():
    html = report()
    candidate, champion = table(html, "confusion_candidate"), table(html, "confusion_champion")
    assert [int(n) for n in re.findall(r"<small>(\d+)</small>", candidate)] == [25, 3, 12, 0, 39, 1, 4, 2, 34]
    assert [int(n) for n in re.findall(r"<small>(\d+)</small>", champion)] == [28, 5, 7, 2, 36, 2, 6, 5, 29]
    assert "rgba(8,81,156,0.97)" in candidate  # Trouser: 39 of 40 right, the darkest cell
    assert "62%" in candidate and "70%" in champion  # T-shirt/top recall, as a share of the row
    collector = _Collector()
    collector.feed(html)
    assert [img["alt"] for img in collector.images] == ["learning curves"]


def test_report_is_self_contained_and_states_the_decision_and_rules():
    html = report()
    collector = _Collector()
    collector.feed(html)
    assert collector.scripts == 0 and "http://" not in html and "https://" not in html
    assert all(img["src"].startswith("data:image/png;base64,") for img in collector.images)
    assert "Not promoted" in html and "rule max_class_drop" in html and "T-shirt/top" in html
    rules = table(html, "rules")
    assert "max_class_drop" in rules and "0.02" in rules and "recall" in rules


def test_without_a_champion_the_candidate_is_shown_alone():
    html = build_report("m", CANDIDATE, None, decision="promoted", reason="promoted (no champion yet)", rules=RULES)
    assert 'id="no_champion"' in html and "No champion yet" in html
    assert "0.8125" in table(html, "headline") and "Δ" not in table(html, "headline")
    assert "confusion_candidate" in html and "confusion_champion" not in html
    assert "Promoted to @champion" in html


def test_families_without_classes_or_curves_say_what_is_missing():
    words = ModelSide(label="candidate v3", version="3", scores={"analogy_accuracy": 0.31, "wordsim353_spearman": 0.42})
    old = ModelSide(label="champion v2", version="2", scores={"analogy_accuracy": 0.30})
    html = build_report("w2v", words, old, decision="promoted", reason="promoted (all rules passed)", rules=RULES)
    assert "+0.0100" in table(html, "headline")
    assert "Per-class metrics are not available" in html
    assert "No confusion matrix available for candidate v3" in html
    assert "No learning curves available for candidate v3" in html and "No learning curves available for champion v2" in html
    assert "<img" not in html


def test_a_champion_measured_elsewhere_is_named_but_not_compared():
    html = build_report(
        "m",
        CANDIDATE,
        None,
        decision="not_promoted",
        reason="not promoted (rule test_data): not comparable",
        rules=RULES,
        champion_note="Champion v1 was measured on other test data.",
        compared_with="1",
    )
    assert "Champion v1 was measured on other test data." in html and "compared with champion v1" in html
