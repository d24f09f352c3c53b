"""The team tracking server's users and permissions, set up through MLflow's own access control.

Run once as the server's admin against ``mlflow server --app-name basic-auth``
(README: 'Team tracking server'); running it again changes nothing that is
already in place, and resets the listed users' passwords to the given ones::

    MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=... \\
    DLFLOW_TRAINER_PASSWORD=... DLFLOW_SCHEDULER_PASSWORD=... DLFLOW_VIEWER_PASSWORD=... \\
    python -m dlflow.tracking.team --uri http://mlflow.internal:5000

Three kinds of user, least privilege each (the server's ``default_permission``
is READ, so every user reads everything):

* ``trainer``: EDIT on the experiment (create runs, log to them) and on every
  registered model (register versions, move aliases through the promotion gate);
  no MANAGE, so it deletes nothing and grants nothing;
* ``scheduler``: the service account of Airflow and cron jobs, the same grants;
* ``viewer``: no grant at all, i.e. READ only.

The admin creates the experiment here, so that no one else owns it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import dataclass

#: role -> (default username, the permission granted on the experiment and on every registered model)
ROLES: dict[str, str | None] = {"trainer": "EDIT", "scheduler": "EDIT", "viewer": None}


@dataclass(frozen=True)
class TeamUser:
    role: str
    username: str
    password: str


def setup_team(uri: str, experiment: str, users: list[TeamUser]) -> str:
    """Create ``experiment`` and ``users`` with their role's grants on the basic-auth server at ``uri``,
    logged in as its admin (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``). Returns the experiment id."""
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.tracking import MlflowClient

    client, auth = MlflowClient(uri), AuthServiceClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
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
        for resource_type, resource_id in (("experiment", experiment_id), ("registered_model", "*")):
            try:
                auth.grant_user_permission(user.username, resource_type, resource_id, permission)
            except MlflowException as error:
                if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise
    return experiment_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlflow.tracking.team", description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI"), help="the server (MLFLOW_TRACKING_URI)")
    parser.add_argument("--experiment", default="dlflow", help="the experiment the runs log to (mlflow.yml)")
    for role in ROLES:
        parser.add_argument(f"--{role}", default=role, metavar="USERNAME", help=f"the {role}'s username (default {role})")
    args = parser.parse_args(argv)
    if not args.uri:
        parser.error("no server: pass --uri or set MLFLOW_TRACKING_URI")
    users = []
    for role in ROLES:
        password = os.environ.get(f"DLFLOW_{role.upper()}_PASSWORD") or getpass.getpass(f"password for the {role}: ")
        users.append(TeamUser(role, getattr(args, role), password))
    experiment_id = setup_team(args.uri, args.experiment, users)
    for user in users:
        print(f"{user.role}: {user.username} ({ROLES[user.role] or 'READ only'})")
    print(f"experiment {args.experiment!r}: id {experiment_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
