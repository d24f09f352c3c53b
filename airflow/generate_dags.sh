#!/usr/bin/env bash
# Write one Airflow DAG per registered pipeline (every one but __default__, which is `cnn`)
# with kedro-airflow and dlflow's template (airflow/dag_template.j2):
#   distinct dag_ids (<package>[_<env>]_<pipeline>), nodes joined by in-memory datasets in one
#   task (--group-by memory), one MLflow run per DAG run.
#
#   bash airflow/generate_dags.sh                                  # --env local into airflow/dags/
#   bash airflow/generate_dags.sh --env test --target /tmp/dags    # the tiny test configuration
#   bash airflow/generate_dags.sh --pipelines cnn,ingestion --params "schedule=0 3 * * *"
#   bash airflow/generate_dags.sh --pipelines monitor_cnn --params "monitor_schedule=*/15 * * * *"
#
# Beside them, one scheduled monitor per family (airflow/monitor_dag_template.j2, rendered by
# airflow/render_monitor_dags.py): <package>[_<env>]_monitor_<family> scores the new files of the inbox
# (monitoring.inbox/<family>) with inference_<family> and, on an alert with new labels, triggers the
# family's training DAG <package>[_<env>]_<family>.
#
# Options:
#   --env ENV            Kedro environment the DAGs run with (default: local)
#   --target DIR         where the DAG files go (default: airflow/dags)
#   --pipelines A,B      only these pipelines (default: all registered but __default__, and both monitors);
#                        monitor_cnn / monitor_rnn name the monitor DAGs
#   --conf-source DIR    the conf folder (or archive) the DAGs run with (default: <project>/conf)
#   --params K=V,...     template settings: schedule, start_date, retries, retry_delay (minutes),
#                        max_active_runs, owner, catchup, project_path (default: this checkout;
#                        DLFLOW_PROJECT_PATH overrides it where the DAG runs); monitor_schedule
#                        (the monitors' schedule, default @hourly)
# Needs kedro-airflow in the environment that runs it (pip install -e ".[test]").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

env_name=local
target="$ROOT/airflow/dags"
pipelines=""
params=""
conf_source=""
while [ $# -gt 0 ]; do
    case "$1" in
        -e|--env) env_name="$2"; shift 2 ;;
        -t|--target) target="$2"; shift 2 ;;
        -p|--pipelines) pipelines="$2"; shift 2 ;;
        --params) params="$2"; shift 2 ;;
        --conf-source) conf_source="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "generate_dags.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac

cd "$ROOT"
export KEDRO_DISABLE_TELEMETRY=true
monitors=cnn,rnn
if [ -n "$pipelines" ]; then  # monitor_<family> names a monitor DAG, the rest kedro-airflow's pipelines
    monitors="$(tr ',' '\n' <<< "$pipelines" | sed -n 's/^monitor_//p' | paste -sd, -)"
    pipelines="$(tr ',' '\n' <<< "$pipelines" | { grep -v '^monitor_' || true; } | paste -sd, -)"
    [ -n "$pipelines" ] || pipelines=none
fi
args=(airflow create --env "$env_name" --target-dir "$target"
      --jinja-file airflow/dag_template.j2 --group-by memory
      --params "project_path=$ROOT${params:+,$params}")
[ -z "$conf_source" ] || args+=(--conf-source "$conf_source")
if [ -n "$pipelines" ]; then
    args+=(--pipelines "$pipelines")
else
    args+=(--all)
fi
if [ "$pipelines" != none ]; then
    echo "+ kedro ${args[*]}"
    python3 -m kedro "${args[@]}"
fi
if [ -n "$monitors" ]; then
    monitor_args=(airflow/render_monitor_dags.py --env "$env_name" --target "$target" --families "$monitors"
                  --params "project_path=$ROOT${params:+,$params}")
    [ -z "$conf_source" ] || monitor_args+=(--conf-source "$conf_source")
    echo "+ python3 ${monitor_args[*]}"
    python3 "${monitor_args[@]}"
fi

if [ -z "$pipelines" ]; then
    # `--all` also writes __default__, the same pipeline as cnn under another dag_id: drop it
    package="$(sed -n 's/^package_name *= *"\(.*\)"/\1/p' pyproject.toml)"
    default_dag="$target/${package}$([ "$env_name" = local ] || echo "_$env_name")_dag.py"
    rm -f "$default_dag"
fi
echo "DAGs in $target:"
ls -1 "$target"/*_dag.py
