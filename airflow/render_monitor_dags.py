"""Render airflow/monitor_dag_template.j2 into one monitor DAG per family (`bash airflow/generate_dags.sh` calls it).

    python3 airflow/render_monitor_dags.py --env test --target /tmp/dags --families cnn,rnn --params retries=0

Writes <package>[_<env>]_monitor_<family>_dag.py with the same Jinja settings as kedro-airflow (the template and
airflow/dag_template.j2 share airflow/_project_helpers.j2). --params: the same `key=value,...` as generate_dags.sh
(schedule and max_active_runs apply to kedro-airflow's DAGs only; `monitor_schedule`, default @hourly, to these).
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import jinja2
from slugify import slugify

HERE = Path(__file__).resolve().parent
INPUT_PARAMS = {"cnn": "images_path", "rnn": "sentences_path"}  # the runtime parameter inference_<family> reads


def _params(text: str) -> dict[str, object]:
    """``key=value,key=value``; values that read as Python literals (numbers, booleans, lists) become them."""
    found: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        try:
            found[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            found[key.strip()] = value.strip()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local")
    parser.add_argument("--target", required=True)
    parser.add_argument("--families", default="cnn,rnn")
    parser.add_argument("--params", default="")
    parser.add_argument("--conf-source", default="")
    args = parser.parse_args()

    root = HERE.parent
    package_name = re.search(r'^package_name\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.M).group(1)
    environment = jinja2.Environment(autoescape=True, loader=jinja2.FileSystemLoader(HERE), lstrip_blocks=True)
    environment.filters["slugify"] = slugify
    template = environment.get_template("monitor_dag_template.j2")
    settings = {"project_path": str(root)} | _params(args.params)
    target = Path(args.target)
    target.mkdir(parents=True, exist_ok=True)
    for family in filter(None, args.families.split(",")):
        if family not in INPUT_PARAMS:
            raise SystemExit(f"render_monitor_dags.py: no monitor for family {family!r} (known: {', '.join(INPUT_PARAMS)})")
        name = f"{package_name}{'' if args.env == 'local' else '_' + args.env}_monitor_{family}_dag.py"
        template.stream(
            package_name=package_name, env=args.env, family=family, input_param=INPUT_PARAMS[family],
            conf_source=args.conf_source, **settings,
        ).dump(str(target / name))  # fmt: skip
        print(f"Rendered the {family} monitor DAG in the file `{name}`")


if __name__ == "__main__":
    main()
