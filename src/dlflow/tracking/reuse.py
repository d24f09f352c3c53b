"""A run that reuses nodes' outputs is complete on its own: it holds their artifacts and says where they came from.

When the node cache (``dlflow.caching.runner``) skips a node, the node's outputs are not saved
again, so kedro-mlflow's ``MlflowArtifactDataset`` does not log them to the new run. ``record_reuse``
makes up for it:

* each reused node is tagged ``dlflow.reused.<node>`` = the id of the run that produced its outputs;
* each output that its catalog entry logs as an artifact is copied into the new run, at the path it
  would have had (``<artifact_path>/<file name>``), from the local file the cache has just checked
  byte for byte against what that run wrote. A file (or folder) over ``COPY_LIMIT_BYTES`` is not
  copied; the description links to it in the producing run instead;
* the run's description gains a paragraph naming the reused nodes and the run they came from, with
  a link the MLflow UI opens (also kept in the tag ``REUSE_NOTE_TAG``, which
  ``dlflow.tracking.naming.result_summary`` puts back when the description is rewritten at the end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlflow.tracking.naming import REUSE_NOTE_TAG

REUSED_TAG = "dlflow.reused."  # + node name = the id of the run whose outputs were reused
#: Artifacts up to this size (a file, or a folder's files together) are copied into the reusing run.
COPY_LIMIT_BYTES = 100 * 2**20
DESCRIPTION_TAG = "mlflow.note.content"


@dataclass(frozen=True)
class ReusedNode:
    """A node the cache skipped: its name, the run that produced its outputs (None: unknown), and
    the outputs its catalog logs as artifacts, as (local file or folder, artifact folder) pairs."""

    name: str
    source_run_id: str | None
    artifacts: Sequence[tuple[Path, str]] = field(default_factory=tuple)


def artifact_folder(dataset: Any) -> str | None:
    """The artifact folder a catalog entry logs its file into on save (kedro-mlflow's
    ``MlflowArtifactDataset``; ``""``: the run's root), or None when saving it logs nothing."""
    if not hasattr(dataset, "artifact_path") or not getattr(dataset, "_logging_activated", False):
        return None
    return str(dataset.artifact_path or "")


def record_reuse(run_id: str, nodes: Sequence[ReusedNode]) -> None:
    """Tag run ``run_id`` with each reused node's source, copy their artifacts into it (up to
    ``COPY_LIMIT_BYTES`` each; larger ones are linked) and say so in its description."""
    import mlflow
    from mlflow.entities import RunTag

    if not nodes:
        return
    copy_limit = COPY_LIMIT_BYTES
    client = mlflow.MlflowClient()
    sources = {node.source_run_id: _source(client, node.source_run_id) for node in nodes}
    linked: dict[str | None, list[str]] = {}
    for node in nodes:
        if node.source_run_id == run_id:  # the same run, resumed: its artifacts are already there
            continue
        for local, folder in node.artifacts:
            if _size(local) <= copy_limit or sources[node.source_run_id] is None:  # small, or nowhere to link to
                client.log_artifact(run_id, str(local), folder or None)
            else:
                linked.setdefault(node.source_run_id, []).append(f"{folder}/{local.name}" if folder else local.name)
    note = reuse_note(run_id, nodes, sources, linked, copy_limit)
    current = client.get_run(run_id).data.tags
    description = current.get(DESCRIPTION_TAG, "")
    old = current.get(REUSE_NOTE_TAG)
    if old and old in description:  # a resumed run records its reuse again: one paragraph, the latest
        description = description.replace(old, "").rstrip()
    tags = {REUSED_TAG + node.name: node.source_run_id or "unknown" for node in nodes}
    tags |= {REUSE_NOTE_TAG: note, DESCRIPTION_TAG: f"{description}\n\n{note}" if description else note}
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])


def reuse_note(
    run_id: str,
    nodes: Sequence[ReusedNode],
    sources: dict[str | None, tuple[str, str] | None],
    linked: dict[str | None, list[str]],
    copy_limit: int = COPY_LIMIT_BYTES,
) -> str:
    """The description's paragraph (Markdown): the reused nodes grouped by the run that produced them,
    that run linked (``sources``: its experiment id and name, None when the store does not know it),
    and a link to each artifact of that run too large to copy (``linked``)."""
    by_source: dict[str | None, list[str]] = {}
    for node in nodes:
        by_source.setdefault(node.source_run_id, []).append(node.name)
    lines = ["**Reused** (unchanged nodes, skipped; the outputs they logged are among this run's artifacts):"]
    for source, names in by_source.items():
        listed = ", ".join(f"`{name}`" for name in names)
        if source == run_id:
            lines.append(f"- {listed} from this run, before it was interrupted")
        elif sources.get(source) is None:
            lines.append(f"- {listed} from run `{source or 'unknown'}` (not in this tracking store)")
        else:
            experiment_id, run_name = sources[source]
            page = f"#/experiments/{experiment_id}/runs/{source}"
            title = (run_name or source).replace("[", "\\[").replace("]", "\\]")  # `rnn ... [test]`: a link's text
            lines.append(f"- {listed} from run [{title}]({page}) (`{source}`)")
            lines += [
                f"  - [{path}]({page}/artifacts/{path}): over {copy_limit / 2**20:g} MiB, not copied; in that run"
                for path in linked.get(source, [])
            ]
    return "\n".join(lines)


def _source(client: Any, run_id: str | None) -> tuple[str, str] | None:
    """(experiment id, run name) of the producing run; None when the store does not know it."""
    from mlflow.exceptions import MlflowException

    if run_id is None:
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return run.info.experiment_id, run.info.run_name


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
