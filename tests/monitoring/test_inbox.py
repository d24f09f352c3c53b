"""The monitoring loop's bookkeeping (dlflow.monitoring.inbox): new inbox files, once each, and when to retrain."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dlflow.monitoring.inbox import LEDGER_NAME, InboxFile, Ledger, decide, outcome_of

DRIFTED = {"judged": True, "drift_detected": True}
CLEAN = {"judged": True, "drift_detected": False}


def _land(inbox: Path, name: str, content: bytes, mtime: float | None = None) -> Path:
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_new_files_are_listed_oldest_first_and_once_each_by_name_and_digest(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    ledger = Ledger(inbox)
    assert ledger.new_files() == []  # no inbox yet: nothing to do
    _land(inbox, "b.parquet", b"second", mtime=2_000)
    _land(inbox, "a.parquet", b"first", mtime=1_000)
    _land(inbox, ".landing.parquet.partial", b"half")  # hidden: still being landed
    _land(inbox, "_notes.txt", b"ignored")
    (inbox / "parts").mkdir()  # a folder of parquet parts is one batch
    _land(inbox / "parts", "part-0.parquet", b"p0")
    os.utime(inbox / "parts", (3_000, 3_000))
    found = ledger.new_files()
    assert [f.name for f in found] == ["a.parquet", "b.parquet", "parts"]
    assert found[0].path == str(inbox / "a.parquet") and len(found[0].digest) == 64

    ledger.record_scored(found[0], CLEAN)
    ledger.record_scored(found[2], DRIFTED)
    assert [f.name for f in ledger.new_files()] == ["b.parquet"]
    assert (
        ledger.outcome(found[0]) == CLEAN and ledger.outcome({"path": "x", "name": "parts", "digest": found[2].digest}) == DRIFTED
    )

    _land(inbox, "a.parquet", b"first")  # the same file landed again: not scored twice
    assert [f.name for f in ledger.new_files()] == ["b.parquet"]
    _land(inbox, "a.parquet", b"first, corrected", mtime=4_000)  # same name, new content: a new batch
    assert [f.name for f in ledger.new_files()] == ["b.parquet", "a.parquet"]
    assert json.loads((inbox / LEDGER_NAME).read_text())["scored"][found[0].key]["outcome"] == CLEAN


def test_decide_retrains_only_on_an_alert_with_feedback_the_last_retraining_did_not_have() -> None:
    never = None
    retrain = decide([CLEAN, DRIFTED], ["f1.parquet"], never)
    assert retrain.retrain and retrain.alert and retrain.new_feedback == ["f1.parquet"]
    assert "retraining on the training data plus the feedback" in retrain.reason

    no_alert = decide([CLEAN], ["f1.parquet"], never)
    assert not no_alert.retrain and not no_alert.alert and no_alert.reason.startswith("no alert")

    no_labels = decide([DRIFTED], ["f1.parquet"], ["f1.parquet"])  # the feedback is what the champion's retraining had
    assert not no_labels.retrain and no_labels.alert and no_labels.new_feedback == []
    assert "alert raised" in no_labels.reason and "no new labels: no retraining" in no_labels.reason
    assert not decide([DRIFTED], [], never).retrain  # an alert and no feedback at all

    newer = decide([DRIFTED], ["f1.parquet", "f2.csv"], ["f1.parquet"])
    assert newer.retrain and newer.new_feedback == ["f2.csv"] and newer.feedback == ["f1.parquet", "f2.csv"]

    nothing = decide([], ["f1.parquet"], never)
    assert not nothing.retrain and nothing.reason.startswith("nothing new in the inbox")
    failed = decide([None, {"error": "refused"}, CLEAN], ["f1.parquet"], never)
    assert not failed.retrain and "2 could not be scored" in failed.reason


def test_each_retraining_records_its_feedback_set(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "inbox")
    assert ledger.last_retraining() is None
    ledger.record_retraining(["f2.csv", "f1.parquet"], "alert", training_dag_id="dlflow_cnn")
    ledger.record_retraining(["f1.parquet", "f2.csv", "f3.csv"], "alert again")
    last = ledger.last_retraining()
    assert last["feedback"] == ["f1.parquet", "f2.csv", "f3.csv"] and last["reason"] == "alert again"
    assert ledger.read()["retrainings"][0]["training_dag_id"] == "dlflow_cnn"
    assert decide([DRIFTED], ["f1.parquet", "f2.csv", "f3.csv"], last["feedback"]).retrain is False


def test_a_broken_ledger_is_refused_naming_it(tmp_path: Path) -> None:
    _land(tmp_path, LEDGER_NAME, b"{not json")
    with pytest.raises(ValueError, match=r"\.scored\.json is not valid JSON"):
        Ledger(tmp_path).new_files()


def test_outcome_of_keeps_what_the_decision_and_the_log_need() -> None:
    checks = {"judged": True, "drift_detected": True, "records": 400, "labelled": 400, "verdict": "drift: input.brightness",
              "model": {"model_name": "dlflow-cnn-fashion_mnist", "model_version": "3"}, "decision": {"big": "..."}}  # fmt: skip
    assert outcome_of(checks) == {
        "judged": True, "drift_detected": True, "records": 400, "labelled": 400, "verdict": "drift: input.brightness",
        "model": "dlflow-cnn-fashion_mnist v3",
    }  # fmt: skip
    assert InboxFile("p/a.csv", "a.csv", "00ff").key == "a.csv@00ff"
