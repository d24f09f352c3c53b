"""The monitoring loop's bookkeeping: which inbox files were scored, and whether an alert retrains the model.

A scheduled monitor (the Airflow DAG ``dlflow_monitor_<family>``, or a cron job)
scores every file that has landed in the family's inbox folder since its last
run, once each, then decides whether to retrain. The inbox keeps its own ledger,
``<inbox>/.scored.json``::

    {"scored": {"<name>@<sha256>": {"name", "digest", "scored_at", "outcome"}},
     "retrainings": [{"at", "feedback", "reason", ...}]}

* A file is known by its name and content digest: re-landing an identical
  file does not score it again; a changed file under the same name is new.
  Hidden names (``.x``, ``_x``) are never listed: land a file by writing it
  elsewhere (or under a hidden name) and renaming it into the inbox.
* ``decide`` retrains only when the policy alerted on a batch of this run AND
  the feedback data holds files that the last retraining did not have:
  retraining on unchanged data would only reproduce the champion. Each
  retraining records the feedback set it was triggered with.

Framework-free: files, JSON and the pure decision; the ledger is rewritten
atomically (``dlflow.files.atomic_write``), one writer at a time (the DAG runs
one scoring at a time).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlflow.files import atomic_write, content_digest

LEDGER_NAME = ".scored.json"


@dataclass(frozen=True)
class InboxFile:
    """A file (or a folder of parquet parts) in the inbox, known by its name and content digest."""

    path: str
    name: str
    digest: str

    @property
    def key(self) -> str:
        return f"{self.name}@{self.digest}"

    @classmethod
    def of(cls, path: str | Path) -> InboxFile:
        path = Path(path)
        return cls(str(path), path.name, content_digest(path))


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, and why: ``alert`` (a batch of this run drifted), ``new_feedback`` (feedback files
    the last retraining did not have), ``reason`` (one sentence, for the log)."""

    retrain: bool
    alert: bool
    new_feedback: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "alert": self.alert, "new_feedback": self.new_feedback,
                "feedback": self.feedback, "reason": self.reason}  # fmt: skip


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """The ledger of ``inbox`` (``<inbox>/.scored.json``): scored files and the retrainings triggered."""

    def __init__(self, inbox: str | Path) -> None:
        self.inbox = Path(inbox)
        self.path = self.inbox / LEDGER_NAME

    def read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"scored": {}, "retrainings": []}
        try:
            ledger = json.loads(self.path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{self.path} is not valid JSON ({error}): repair it, or delete it to score the inbox again"
            ) from None
        return {"scored": dict(ledger.get("scored", {})), "retrainings": list(ledger.get("retrainings", []))}

    def _write(self, ledger: Mapping[str, Any]) -> None:
        with atomic_write(self.path, "w", encoding="utf-8") as stream:
            json.dump(ledger, stream, indent=1, sort_keys=True)

    def new_files(self) -> list[InboxFile]:
        """The inbox's files and folders not scored yet (by name and digest), oldest first; hidden names skipped."""
        if not self.inbox.is_dir():
            return []
        entries = [p for p in self.inbox.iterdir() if not p.name.startswith((".", "_"))]
        scored = self.read()["scored"]
        found = [InboxFile.of(p) for p in sorted(entries, key=lambda p: (p.stat().st_mtime, p.name))]
        return [file for file in found if file.key not in scored]

    def record_scored(self, file: InboxFile, outcome: Mapping[str, Any]) -> None:
        """``file`` was scored (or refused) with ``outcome``; it is not listed again."""
        ledger = self.read()
        ledger["scored"][file.key] = {"name": file.name, "digest": file.digest, "scored_at": _now(), "outcome": dict(outcome)}
        self._write(ledger)

    def outcome(self, file: InboxFile | Mapping[str, Any]) -> dict[str, Any] | None:
        key = file.key if isinstance(file, InboxFile) else InboxFile(**file).key
        entry = self.read()["scored"].get(key)
        return None if entry is None else entry["outcome"]

    def last_retraining(self) -> dict[str, Any] | None:
        retrainings = self.read()["retrainings"]
        return retrainings[-1] if retrainings else None

    def record_retraining(self, feedback: Iterable[str], reason: str, **about: Any) -> None:
        """A retraining was triggered with these feedback files (their names), for ``reason``."""
        ledger = self.read()
        ledger["retrainings"].append({"at": _now(), "feedback": sorted(feedback), "reason": reason} | about)
        self._write(ledger)


def decide(
    outcomes: Sequence[Mapping[str, Any] | None], feedback: Iterable[str], last_feedback: Iterable[str] | None
) -> RetrainDecision:
    """Retrain when a batch of ``outcomes`` raised the alert (``drift_detected``) and ``feedback`` (the names of
    the feedback files now) holds files that ``last_feedback`` (those of the last retraining; None: never) did not.

    ``outcomes``: one per file scored in this run (None or ``{"error": ...}`` for one that failed).
    """
    feedback = sorted(set(feedback))
    new = sorted(set(feedback) - set(last_feedback or ()))
    scored = [o for o in outcomes if o is not None and "error" not in o]
    failed = len(outcomes) - len(scored)
    drifted = [o for o in scored if o.get("drift_detected")]
    failures = f"; {failed} could not be scored" if failed else ""
    if not outcomes:
        return RetrainDecision(False, False, new, feedback, "nothing new in the inbox: no retraining")
    if not drifted:
        return RetrainDecision(False, False, new, feedback, f"no alert: {len(scored)} batch(es) scored, none drifted{failures}")
    if not new:
        return RetrainDecision(
            False, True, [], feedback,
            f"alert raised ({len(drifted)} of {len(scored)} batch(es) drifted), no new labels: no retraining "
            f"(the feedback data is what the last retraining had: retraining would only reproduce the champion){failures}",
        )  # fmt: skip
    return RetrainDecision(
        True, True, new, feedback,
        f"alert raised ({len(drifted)} of {len(scored)} batch(es) drifted) and {len(new)} new feedback file(s): "
        f"retraining on the training data plus the feedback{failures}",
    )  # fmt: skip


def outcome_of(checks: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a batch's drift checks (``data/08_reporting/monitoring/<family>_drift_checks.json``)."""
    model = checks.get("model") or {}
    return {
        "judged": bool(checks.get("judged")),
        "drift_detected": bool(checks.get("drift_detected")),
        "records": int(checks.get("records") or 0),
        "labelled": int(checks.get("labelled") or 0),
        "verdict": str(checks.get("verdict", "")),
        "model": f"{model.get('model_name', '?')} v{model.get('model_version', '?')}",
    }
