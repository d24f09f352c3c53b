"""The team tracking server's users and permissions, set up through MLflow's own access control.

Run once as the server's admin against ``mlflow server --app-name basic-auth``
(README: 'Team tracking server'); running it again changes nothing that is
already in place, and resets the listed users' passwords to the given ones::

    MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=... \\
    DLFLOW_TRAINER_PASSWORD=... DLFLOW_SCHEDULER_PASSWORD=... DLFLOW_VIEWER_PASSWORD=... \\
    python -m dlflow.tracking.team --uri http://mlflow.internal:5000

Three kinds of user, least privilege each (the server's ``default_permission``
is READ, so every user reads everything):

* ``trainer``: EDIT on the experiments (create runs, log to them) and on every
  registered model (register versions, move aliases through the promotion gate);
  no MANAGE, so it deletes nothing and grants nothing;
* ``scheduler``: the service account of Airflow and cron jobs, the same grants;
* ``viewer``: no grant at all, i.e. READ only.

The admin creates the experiments here (by default every one the project's pipelines log
into, from ``conf/base/experiments.yml``: ``dlflow/cnn``, ``dlflow/rnn``, ...), so that no one
else owns them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: role -> (default username, the permission granted on the experiment and on every registered model)
ROLES: dict[str, str | None] = {"trainer": "EDIT", "scheduler": "EDIT", "viewer": None}


@dataclass(frozen=True)
class TeamUser:
    role: str
    username: str
    password: str


def setup_team(uri: str, experiments: Sequence[str], users: list[TeamUser]) -> dict[str, str]:
    """Create ``experiments`` and ``users`` with their role's grants on the basic-auth server at ``uri``,
    logged in as its admin (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``). Returns each experiment's id."""
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.tracking import MlflowClient

    client, auth = MlflowClient(uri), AuthServiceClient(uri)
    ids = {}
    for experiment in dict.fromkeys(experiments):
        found = client.get_experiment_by_name(experiment)
        ids[experiment] = found.experiment_id if found is not None else client.create_experiment(experiment)
    for user in users:
        try:
            auth.create_user(user.username, user.password)
        except RestException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            auth.update_user_password(user.username, user.password)
        permission = ROLES[user.role]
        if permission is None:
            continue
        for resource_type, resource_id in [*(("experiment", i) for i in ids.values()), ("registered_model", "*")]:
            try:
                auth.grant_user_permission(user.username, resource_type, resource_id, permission)
            except MlflowException as error:
                if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise
    return ids


def project_experiments(project: Path) -> list[str]:
    """The experiments the project's pipelines log into (``conf/base/experiments.yml``), in file order."""
    import yaml

    from dlflow.tracking.naming import load_config

    with open(project / "conf" / "base" / "experiments.yml") as stream:
        return list(dict.fromkeys(load_config(yaml.safe_load(stream)).experiments.values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlflow.tracking.team", description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI"), help="the server (MLFLOW_TRACKING_URI)")
    parser.add_argument(
        "--experiment", action="append", dest="experiments", metavar="NAME",
        help="an experiment the runs log to (repeatable); default: every one in conf/base/experiments.yml",
    )  # fmt: skip
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project whose experiments to set up")
    for role in ROLES:
        parser.add_argument(f"--{role}", default=role, metavar="USERNAME", help=f"the {role}'s username (default {role})")
    args = parser.parse_args(argv)
    if not args.uri:
        parser.error("no server: pass --uri or set MLFLOW_TRACKING_URI")
    users = []
    for role in ROLES:
        password = os.environ.get(f"DLFLOW_{role.upper()}_PASSWORD") or getpass.getpass(f"password for the {role}: ")
        users.append(TeamUser(role, getattr(args, role), password))
    ids = setup_team(args.uri, args.experiments or project_experiments(args.project), users)
    for user in users:
        print(f"{user.role}: {user.username} ({ROLES[user.role] or 'READ only'})")
    for name, experiment_id in ids.items():
        print(f"experiment {name!r}: id {experiment_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
