"""What MLflow's basic-auth costs per request: the same ``log_metric`` calls against one PostgreSQL database
through a plain ``mlflow server``, a basic-auth one with the README's login cache (``auth_cache_ttl_seconds
= 60``) and one without it (MLflow's default, a PBKDF2 check on every request).

    export DLFLOW_TEST_POSTGRES_URI=$(bash .ci/postgres.sh)
    python benchmarks/auth_overhead.py [--calls 200] [--rounds 2]

Prints milliseconds per call for each server (rounds alternate the order), the CPU model and the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import cpu_model  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from dlflow.tracking.team import TeamUser, setup_team  # noqa: E402
from tests.tracking.servers import ADMIN, ADMIN_PASSWORD, MlflowServer, fresh_databases, logged_in, shared_postgres_uri  # noqa: E402

PASSWORD = "benchmark-password-1234"


def _ms_per_call(uri: str, calls: int, experiment_id: str) -> float:
    client = MlflowClient(uri)
    run = client.create_run(experiment_id)
    started = time.perf_counter()
    for step in range(calls):
        client.log_metric(run.info.run_id, "m", float(step), step=step)
    return (time.perf_counter() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dlflow-auth-bench-"))
    with fresh_databases(shared_postgres_uri(), "", "_auth") as (database, auth_database):
        servers = {}
        for name, ttl in (("basic-auth, login cache 60 s", 60), ("basic-auth, no login cache", 0)):
            folder = root / name.replace(" ", "_").replace(",", "")
            folder.mkdir()
            servers[name] = MlflowServer(folder, database, auth_database, workers=1)
            servers[name].config.write_text(servers[name].config.read_text().replace("= 60", f"= {ttl}"))
        times: dict[str, list[float]] = {name: [] for name in ["plain", *servers]}
        plain_root = root / "plain"
        plain_root.mkdir()
        for round_ in range(args.rounds):
            order = list(times) if round_ % 2 == 0 else list(reversed(times))
            for name in order:
                if name == "plain":
                    server = _plain(plain_root, database)
                    uri = server[1]
                    try:
                        experiment = MlflowClient(uri).get_experiment_by_name("bench")
                        experiment_id = experiment.experiment_id if experiment else MlflowClient(uri).create_experiment("bench")
                        times[name].append(_ms_per_call(uri, args.calls, experiment_id))
                    finally:
                        server[0].kill()
                    continue
                server = servers[name]
                server.start()
                try:
                    with logged_in(ADMIN, ADMIN_PASSWORD):
                        experiment_id = setup_team(server.uri, "bench", [TeamUser("trainer", "trainer", PASSWORD)])
                    with logged_in("trainer", PASSWORD):
                        times[name].append(_ms_per_call(server.uri, args.calls, experiment_id))
                finally:
                    server.kill()
    print(f"CPU: {cpu_model()}; load average {os.getloadavg()[0]:.1f}; {args.calls} log_metric calls, 1 worker, PostgreSQL")
    for name, values in times.items():
        print(f"  {name:30s} {' '.join(f'{v:6.1f}' for v in values)} ms/call  (best {min(values):.1f})")


def _plain(root: Path, database: str):
    """A plain ``mlflow server`` on ``database`` (the auth app's tables are simply unused)."""
    import signal
    import subprocess
    import urllib.request

    from tests.tracking.servers import free_port

    port = free_port()
    log = open(root / "server.log", "a")  # noqa: SIM115 - the child holds it
    process = subprocess.Popen(
        ["mlflow", "server", "--backend-store-uri", database, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError((root / "server.log").read_text()[-2000:]) from None
            time.sleep(0.3)

    class Handle:
        def kill(self) -> None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    return Handle(), f"http://127.0.0.1:{port}"


if __name__ == "__main__":
    main()
