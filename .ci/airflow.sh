#!/usr/bin/env bash
# CI: the Airflow route, checked with real Apache Airflow 3 in its own virtual environment
# (Airflow's dependencies clash with the project's test tools, so it gets its own).
#
#   1. .venv-airflow: torch (the CPU build, first), Apache Airflow 3, kedro-airflow and the
#      project (editable); created once, reused while its inputs are unchanged.
#   2. Generates every pipeline's DAG for `--env test` and `--env local` (airflow/generate_dags.sh).
#   3. Parses the DAG folder with Airflow: no import errors, the expected distinct dag_ids.
#   4. `airflow dags test dlflow_test_cnn` to success (SQLite metadata DB in a temporary
#      AIRFLOW_HOME, a throw-away copy of the project, an MLflow store in a temporary folder).
#   5. Asserts one MLflow run for that DAG run, finished, with the expected metrics, artifacts
#      and registered model version.
#   6. The monitoring loop, in two steps: `airflow dags test` runs one DAG run and never the runs
#      that its TriggerDagRunOperator creates, so the trigger and the triggered DAG are tested apart.
#      a. A drifted labelled batch lands in the inbox; `airflow dags test dlflow_test_monitor_cnn`
#         scores it, raises the alert, keeps its labels as feedback and triggers dlflow_test_cnn:
#         asserted by the task states, the inbox's ledger and the queued DagRun the trigger created.
#      b. That triggered run, executed by `airflow dags test dlflow_test_cnn <its logical date>
#         --conf <its conf>` (which replaces the queued run of that logical date by its own): a new
#         model version with a gate decision, from a training run that used the 500 feedback images.
#      c. A clean unlabelled batch: the monitor scores it, no alert, no trigger, no new DagRun.
# Needs python3 and the offline data mirror (DLFLOW_DATA_MIRROR, default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 SCARF_ANALYTICS=false
export AIRFLOW__USAGE_DATA_COLLECTION__ENABLED=False
export DLFLOW_DATA_MIRROR="${DLFLOW_DATA_MIRROR:-$(cd .. && pwd)/shared/data}"

VENV="${AIRFLOW_VENV:-$ROOT/.venv-airflow}"
TORCH_SPEC="torch==2.13.0"              # as in .ci/run: the CPU build, before anything else
AIRFLOW_SPEC="apache-airflow==3.3.2"
KEDRO_AIRFLOW_SPEC="kedro-airflow~=0.11.0"     # as in pyproject.toml's test extra
DAG_ID=dlflow_test_cnn

started=$SECONDS
step() { printf '\n== [%3ds] %s\n' "$((SECONDS - started))" "$*"; }
pip_quiet() {  # pip install, without the notes about this machine's absent extra indexes
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
        | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

[ -d "$DLFLOW_DATA_MIRROR/fashion-mnist" ] || {
    echo "airflow.sh: offline data mirror not found at $DLFLOW_DATA_MIRROR (set DLFLOW_DATA_MIRROR)" >&2
    exit 1
}

# ---------------------------------------------------------------- 1. the Airflow environment
stamp="$( { echo "$TORCH_SPEC $AIRFLOW_SPEC $KEDRO_AIRFLOW_SPEC $ROOT"; python3 --version; cat pyproject.toml; } | sha256sum | cut -c1-16)"
if [ -x "$VENV/bin/airflow" ] && [ "$(cat "$VENV/.dlflow-stamp" 2>/dev/null)" = "$stamp" ]; then
    step "reusing $VENV ($AIRFLOW_SPEC, stamp $stamp)"
else
    step "installing into $VENV: $TORCH_SPEC, then $AIRFLOW_SPEC $KEDRO_AIRFLOW_SPEC and the project (minutes when new)"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    pip_quiet "$TORCH_SPEC"
    # Whatever Airflow or the project asks for, pip keeps the torch build installed above.
    "$VENV/bin/python" -c 'from importlib.metadata import version; print("torch==" + version("torch"))' \
        > "$VENV/torch-constraint.txt"
    pip_quiet -c "$VENV/torch-constraint.txt" "$AIRFLOW_SPEC" "$KEDRO_AIRFLOW_SPEC" -e .
    echo "$stamp" > "$VENV/.dlflow-stamp"
fi
export PATH="$VENV/bin:$PATH"
python3 -c 'import airflow, kedro, kedro_airflow, mlflow, torch, dlflow
print(f"airflow {airflow.__version__}, kedro {kedro.__version__}, mlflow {mlflow.__version__}, torch {torch.__version__}")'

# ---------------------------------------------------------------- 2. the DAGs
work="$(mktemp -d "${TMPDIR:-/tmp}/dlflow-airflow.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export AIRFLOW_HOME="$work/airflow-home"
export AIRFLOW__CORE__DAGS_FOLDER="$work/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export MLFLOW_TRACKING_URI="sqlite:///$work/mlruns/mlflow.db"
mkdir -p "$AIRFLOW_HOME" "$AIRFLOW__CORE__DAGS_FOLDER" "$work/mlruns"
echo "AIRFLOW_HOME=$AIRFLOW_HOME  MLFLOW_TRACKING_URI=$MLFLOW_TRACKING_URI  DLFLOW_DATA_MIRROR=$DLFLOW_DATA_MIRROR"

for env_name in test local; do
    step "generating the --env $env_name DAGs"
    # retries=0: a failing task fails the test at once instead of waiting for a retry
    bash airflow/generate_dags.sh --env "$env_name" --target "$AIRFLOW__CORE__DAGS_FOLDER" --params retries=0 \
        > "$work/generate-$env_name.log" 2>&1 || { tail -50 "$work/generate-$env_name.log"; exit 1; }
    grep -E '^(Converted|DAGs in|/)' "$work/generate-$env_name.log"
done

# ---------------------------------------------------------------- 3. Airflow parses them
step "airflow db migrate (SQLite)"
airflow db migrate > "$work/db-migrate.log" 2>&1 || { tail -50 "$work/db-migrate.log"; exit 1; }

step "airflow dags list-import-errors --local: every DAG file imports"
# (their JSON is the last line of stdout: Airflow prints a warning about graphviz before it)
airflow dags list-import-errors --local -o json > "$work/import-errors.out" 2>&1 || { cat "$work/import-errors.out"; exit 1; }
airflow dags list --local -o json > "$work/dags.out" 2>&1 || { cat "$work/dags.out"; exit 1; }
python3 - "$work" <<'EOF'
import json, sys
from pathlib import Path

work = Path(sys.argv[1])
def last_json(name):
    return json.loads((work / name).read_text().strip().splitlines()[-1])

errors = last_json("import-errors.out")
assert errors == [], f"DAG import errors: {json.dumps(errors, indent=1)}"
print("no import errors")
dag_ids = sorted(dag["dag_id"] for dag in last_json("dags.out"))
# one dag_id per file: the file name without `_dag.py`, both environments, every pipeline
expected = sorted(f.name.removesuffix("_dag.py") for f in (work / "dags").glob("*_dag.py"))
print(f"{len(dag_ids)} DAGs: {', '.join(dag_ids)}")
assert dag_ids == expected, f"expected the dag_ids {expected}, Airflow found {dag_ids}"
required = {f"dlflow{env}_{p}" for env in ("", "_test") for p in ("cnn", "ingestion", "nlp", "rnn", "word2vec")}
assert required <= set(dag_ids), f"missing DAGs: {sorted(required - set(dag_ids))}"
EOF

# ---------------------------------------------------------------- 4. one real DAG run
# A throw-away copy of the project (conf without local overrides): the run writes its data/
# there, not into this checkout. DLFLOW_PROJECT_PATH is how a deployment moves it too.
project="$work/project"
mkdir -p "$project/src"
cp -r conf "$project/conf"
rm -rf "$project/conf/local" && mkdir "$project/conf/local"
cp pyproject.toml "$project/"
printf 'consent: false\n' > "$project/.telemetry"
export DLFLOW_PROJECT_PATH="$project"

step "airflow dags test $DAG_ID (project copy $project; full log on failure)"
status=0
(cd "$work" && airflow dags test "$DAG_ID") > "$work/dags-test.log" 2>&1 || status=$?
grep -oE 'MLflow run [0-9a-f]+ in .*|DagRun Finished: .*' "$work/dags-test.log" \
    | sed -E 's/(run_start_date|run_end_date|logical_date)=[^,]*, //g' | cut -c1-200 || true
# The JSON of these commands is the last line of their stdout.
airflow dags list-runs "$DAG_ID" -o json 2>/dev/null | tail -n 1 > "$work/runs.json" || true
airflow_run_id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["run_id"])' "$work/runs.json" 2>/dev/null || true)"
[ -z "$airflow_run_id" ] || airflow tasks states-for-dag-run "$DAG_ID" "$airflow_run_id" -o json 2>/dev/null \
    | tail -n 1 > "$work/tasks.json" || true
python3 - "$work" "$status" <<'EOF' || { echo "the end of the airflow dags test log:" >&2; tail -150 "$work/dags-test.log" >&2; exit 1; }
import json, sys
from datetime import datetime
from pathlib import Path

work, status = Path(sys.argv[1]), int(sys.argv[2])
runs = json.loads((work / "runs.json").read_text() or "[]")
tasks = json.loads((work / "tasks.json").read_text() or "[]") if (work / "tasks.json").exists() else []
for t in tasks:
    done = t["start_date"] and t["end_date"]
    seconds = (datetime.fromisoformat(t["end_date"]) - datetime.fromisoformat(t["start_date"])).total_seconds() if done else 0
    print(f"  {t['state'] or 'none':15} {seconds:6.1f}s  {t['task_id']}")
assert status == 0, f"airflow dags test exited with {status}"
assert len(runs) == 1 and runs[0]["state"] == "success", f"DAG run: {runs}"
assert tasks and all(t["state"] == "success" for t in tasks), "not every task succeeded"
print(f"DAG run {runs[0]['run_id']}: success, {len(tasks)} tasks")
EOF

# ---------------------------------------------------------------- 5. one MLflow run for it
step "one MLflow run for the DAG run, with its metrics"
python3 - "$work" "$DAG_ID" <<'EOF'
import json, sys
from pathlib import Path

from mlflow.tracking import MlflowClient

work, dag_id = Path(sys.argv[1]), sys.argv[2]
(dag_run,) = json.loads((work / "runs.json").read_text())
client = MlflowClient()
experiments = client.search_experiments()
runs = [run for e in experiments for run in client.search_runs([e.experiment_id])]
assert len(runs) == 1, f"expected one MLflow run for the DAG run, found {len(runs)}: {[r.info.run_id for r in runs]}"
(run,) = runs
tags, metrics = run.data.tags, run.data.metrics
assert tags.get("airflow.dag_id") == dag_id, tags
assert tags.get("airflow.run_id") == dag_run["run_id"], (tags.get("airflow.run_id"), dag_run["run_id"])
assert run.info.status == "FINISHED", run.info.status
# the family's experiment, a name that says what ran, a description with the result
assert client.get_experiment(run.info.experiment_id).name == "dlflow/cnn", client.get_experiment(run.info.experiment_id).name
assert run.info.run_name.startswith("cnn fast fashion_mnist ") and run.info.run_name.endswith(" [test]"), run.info.run_name
assert "**Result:** test_accuracy" in tags.get("mlflow.note.content", ""), tags.get("mlflow.note.content")
for name in ("test_accuracy", "test_macro_f1", "train_loss", "val_loss", "val_accuracy"):
    assert name in metrics, f"metric {name} missing: {sorted(metrics)}"
assert 0.0 <= metrics["test_accuracy"] <= 1.0, metrics["test_accuracy"]
steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
assert steps and steps == list(range(1, len(steps) + 1)), f"val_loss per epoch: steps {steps}"
artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
assert {"data", "evaluation", "training", "registration"} <= artifacts, artifacts
evaluation = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
assert "evaluation/metrics.json" in evaluation, evaluation
assert run.data.params, "no parameters logged"
versions = client.search_model_versions(f"run_id='{run.info.run_id}'")
assert versions, "no registered model version from the DAG run"
print(f"MLflow run {run.info.run_id} ({run.info.status}) for Airflow run {dag_run['run_id']}:")
print(f"  test_accuracy={metrics['test_accuracy']:.3f} test_macro_f1={metrics['test_macro_f1']:.3f}, "
      f"{len(steps)} epochs of val_loss, {len(run.data.params)} params, artifacts {sorted(artifacts)}")
print(f"  registered {versions[0].name} version {versions[0].version}")
EOF

# ---------------------------------------------------------------- 6. the monitoring loop
# Two steps (see the header): the trigger (6a), then the triggered training DAG run (6b); and a clean batch (6c).
MONITOR_DAG_ID=dlflow_test_monitor_cnn
inbox="$project/data/10_inbox/cnn"   # monitoring.inbox (conf/base/parameters_monitoring.yml) + /cnn
mkdir -p "$inbox"

# `airflow dags test` a DAG, keep its runs and its newest run's task states as JSON, print its telling log lines.
# $1: dag_id, $2: a name for the files, the rest: more arguments for `airflow dags test`.
dag_test() {
    local dag_id="$1" name="$2" code=0 run_id
    shift 2
    (cd "$work" && airflow dags test "$dag_id" "$@") > "$work/$name.log" 2>&1 || code=$?
    airflow dags list-runs "$dag_id" -o json 2>/dev/null | tail -n 1 > "$work/$name-runs.json" || true
    run_id="$(python3 -c 'import json, sys
runs = json.load(open(sys.argv[1]))
print(max(runs, key=lambda r: r["start_date"] or "")["run_id"])' "$work/$name-runs.json" 2>/dev/null || true)"
    [ -z "$run_id" ] || airflow tasks states-for-dag-run "$dag_id" "$run_id" -o json 2>/dev/null \
        | tail -n 1 > "$work/$name-tasks.json" || true
    grep -ohE '[0-9]+ new file\(s\) in .*|dlflow_test_monitor_cnn: .*|Triggered dlflow_test_cnn .*|Training on [0-9]+ images plus .*' \
        "$work/$name.log" | cut -c1-200 | sort -u | sed 's/^/  /' || true
    if [ "$code" != 0 ]; then
        echo "airflow dags test $dag_id exited with $code; the end of its log:" >&2
        tail -150 "$work/$name.log" >&2
        exit 1
    fi
}
training_runs() { airflow dags list-runs "$DAG_ID" -o json 2>/dev/null | tail -n 1 > "$work/$1"; }

step "6a. a drifted labelled batch in the inbox: $MONITOR_DAG_ID alerts and triggers $DAG_ID"
# the test split's images and labels at half their brightness: a batch that drifted, and came back labelled
python3 - "$project" "$inbox/dimmed-labelled.parquet" <<'PY'
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dlflow.sources.image_table import image_table, table_images

project, target = Path(sys.argv[1]), Path(sys.argv[2])
test = pd.read_parquet(project / "data/05_model_input/cnn/test.parquet")
dimmed = image_table((table_images(test) * 0.5).astype(np.uint8), test["label"].to_numpy())
hidden = target.with_name(f".{target.name}")  # landed under a hidden name, then renamed: never seen half-written
dimmed.to_parquet(hidden)
hidden.rename(target)
print(f"  {target.name}: {len(dimmed)} labelled images")
PY
training_runs training-runs-before.json
dag_test "$MONITOR_DAG_ID" monitor-drifted
training_runs training-runs-triggered.json
triggered="$(python3 - "$work" "$project" "$inbox" <<'PY'
import json, sys
from pathlib import Path

work, project, inbox = (Path(a) for a in sys.argv[1:])
states = {t["task_id"]: t["state"] for t in json.loads((work / "monitor-drifted-tasks.json").read_text())}
print("  tasks: " + ", ".join(f"{task} {state}" for task, state in sorted(states.items())), file=sys.stderr)
for task in ("list_new_files", "score_file", "decide", "retrain_or_not", "trigger_training", "record_retraining"):
    assert states.get(task) == "success", f"{task}: {states.get(task)} ({states})"
assert states.get("no_retraining") == "skipped", states
ledger = json.loads((inbox / ".scored.json").read_text())
(entry,) = ledger["scored"].values()
assert entry["name"] == "dimmed-labelled.parquet" and entry["outcome"]["drift_detected"], entry
assert entry["outcome"]["labelled"] == 500, entry
(retraining,) = ledger["retrainings"]
feedback = sorted(p.name for p in (project / "data/09_feedback/fashion_mnist/cnn").iterdir() if not p.name.startswith("."))
assert len(feedback) == 1 and retraining["feedback"] == feedback, (retraining, feedback)
print(f"  ledger: {entry['name']} drift_detected; a retraining recorded with the feedback {feedback}", file=sys.stderr)
before = {r["run_id"] for r in json.loads((work / "training-runs-before.json").read_text())}
new = [r for r in json.loads((work / "training-runs-triggered.json").read_text()) if r["run_id"] not in before]
assert len(new) == 1, f"expected one DagRun of the training DAG, created by the trigger; found {new}"
(run,) = new
assert run["state"] == "queued", run  # no scheduler here: step 6b runs it
# its conf, from Airflow's metadata database (`dags list-runs` does not show it)
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session

with create_session() as session:
    (found,) = DagRun.find(dag_id=run["dag_id"], run_id=run["run_id"], session=session)
    conf = dict(found.conf or {})
assert conf.get("triggered_by") == "dlflow_test_monitor_cnn", conf
print(json.dumps({"run_id": run["run_id"], "logical_date": run["logical_date"], "conf": conf}))
PY
)"
echo "  the trigger created the queued DagRun $triggered"

step "6b. the triggered run of $DAG_ID, by airflow dags test in its place: training data plus feedback, then the gate"
logical_date="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["logical_date"])' "$triggered")"
run_conf="$(python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])["conf"]))' "$triggered")"
dag_test "$DAG_ID" retraining "$logical_date" --conf "$run_conf"
python3 - "$work" "$triggered" <<'PY'
import json, sys
from pathlib import Path

from mlflow.tracking import MlflowClient

work, triggered = Path(sys.argv[1]), json.loads(sys.argv[2])
# `dags test` replaced the queued run (the same logical date) by its own, under a run id of its own
runs = json.loads((work / "retraining-runs.json").read_text())
assert triggered["run_id"] not in {r["run_id"] for r in runs}, runs
(retraining,) = [r for r in runs if r["logical_date"] == triggered["logical_date"]]
assert retraining["state"] == "success" and len(runs) == 2, runs
client = MlflowClient()
(experiment,) = [e for e in client.search_experiments() if e.name == "dlflow/cnn"]
(run,) = client.search_runs([experiment.experiment_id], f"tags.`airflow.run_id` = '{retraining['run_id']}'")
metrics = run.data.metrics
assert metrics.get("feedback_files") == 1 and metrics.get("feedback_records") == 500, metrics
(version,) = client.search_model_versions(f"run_id='{run.info.run_id}'")
versions = client.search_model_versions(f"name='{version.name}'")
assert int(version.version) == len(versions) == 2, [v.version for v in versions]
decision = version.tags.get("gate_decision")
assert decision in ("promoted", "not_promoted"), version.tags
print(f"  MLflow run {run.info.run_id}: trained with {metrics['feedback_records']:.0f} feedback images, "
      f"test_accuracy={metrics['test_accuracy']:.3f}")
print(f"  registered {version.name} version {version.version}: gate {decision}: {version.tags.get('gate_reason', '')[:110]}")
PY

step "6c. a clean unlabelled batch: $MONITOR_DAG_ID scores it, no alert, no retraining"
python3 - "$DLFLOW_DATA_MIRROR" "$inbox/clean.gz" <<'PY'
import sys
from pathlib import Path

from dlflow.sources.idx import read_idx, write_idx

images = read_idx(Path(sys.argv[1]) / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")[6000:6400]
target = Path(sys.argv[2])
write_idx(images, target.with_name(f".{target.name}"), gzip=True)
target.with_name(f".{target.name}").rename(target)
print(f"  {target.name}: {len(images)} unlabelled Fashion-MNIST test images")
PY
training_runs training-runs-before-clean.json
dag_test "$MONITOR_DAG_ID" monitor-clean
training_runs training-runs-after-clean.json
python3 - "$work" "$inbox" <<'PY'
import json, sys
from pathlib import Path

work, inbox = Path(sys.argv[1]), Path(sys.argv[2])
states = {t["task_id"]: t["state"] for t in json.loads((work / "monitor-clean-tasks.json").read_text())}
print("  tasks: " + ", ".join(f"{task} {state}" for task, state in sorted(states.items())))
for task in ("list_new_files", "score_file", "decide", "retrain_or_not", "no_retraining"):
    assert states.get(task) == "success", f"{task}: {states.get(task)} ({states})"
assert states.get("trigger_training") == "skipped" and states.get("record_retraining") == "skipped", states
runs = {name: {r["run_id"] for r in json.loads((work / name).read_text())}
        for name in ("training-runs-before-clean.json", "training-runs-after-clean.json")}
assert runs["training-runs-after-clean.json"] == runs["training-runs-before-clean.json"], "the clean batch triggered training"
ledger = json.loads((inbox / ".scored.json").read_text())
scored = {e["name"]: e["outcome"] for e in ledger["scored"].values()}
assert set(scored) == {"dimmed-labelled.parquet", "clean.gz"}, scored  # the drifted batch was not scored again
assert scored["clean.gz"]["judged"] and not scored["clean.gz"]["drift_detected"], scored["clean.gz"]
assert len(ledger["retrainings"]) == 1, ledger["retrainings"]
print(f"  clean.gz: {scored['clean.gz']['verdict'][:140]}")
PY

step "Airflow checks passed"
# DAG imports, dag_ids, the DAG run, its MLflow run, and the monitoring loop's three steps
echo "airflow: 7 passed, 0 failed"
