"""Jobs side by side in spawned worker processes: planning, results, errors, and no orphans after a kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from dlflow.training.parallel import WorkerDied, plan_workers, worker_pool
from dlflow.training.runtime import usable_cores

_shared: dict = {}


def _remember(state: dict) -> None:
    _shared.update(state)


def _scaled_threads(item: int) -> tuple[int, int, int, int]:
    return item, item * _shared["factor"], torch.get_num_threads(), os.getpid()


def _fail_on_two(item: int) -> int:
    if item == 2:
        raise ValueError(f"job {item} failed")
    return item


def test_plan_gives_each_core_a_worker_and_shares_the_threads():
    cores = usable_cores()
    assert plan_workers(None, jobs=10) == (min(cores, 10), max(1, cores // min(cores, 10)))
    assert plan_workers(None, jobs=1) == (1, cores)  # one job: it runs here, on every core
    assert plan_workers(4, jobs=2) == (2, max(1, cores // 2))  # never more workers than jobs
    assert plan_workers(1, jobs=10) == (1, cores)
    assert plan_workers(2, jobs=10, threads=3) == (2, 3)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        plan_workers(0, jobs=3)


def test_workers_run_every_job_with_the_shared_state_and_their_thread_share():
    with worker_pool(2, 1, _remember, {"factor": 10}) as run:
        results = sorted(run(_scaled_threads, range(5)))
    assert [(item, scaled) for item, scaled, _, _ in results] == [(i, 10 * i) for i in range(5)]
    assert {threads for _, _, threads, _ in results} == {1}
    assert os.getpid() not in {pid for *_, pid in results}  # spawned, not run here


def test_a_failing_job_raises_in_the_parent():
    with pytest.raises(ValueError, match="job 2 failed"), worker_pool(2, 1) as run:
        list(run(_fail_on_two, range(4)))


def _die_on_one(item: int) -> int:
    if item == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    return item


def test_a_worker_that_dies_is_an_error_not_a_hang():
    started = time.monotonic()
    with pytest.raises(WorkerDied, match="ended without returning"), worker_pool(2, 1) as run:
        list(run(_die_on_one, range(3)))
    assert time.monotonic() - started < 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_die_with_a_killed_parent(tmp_path: Path):
    """A ``kill -9`` of the run must not leave folds training (and writing checkpoints) in the background."""
    pids = tmp_path / "pids"
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, sys, time
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_parallel import _write_pid_and_sleep
            from dlflow.training.parallel import worker_pool
            with worker_pool(2, 1) as run:
                list(run(_write_pid_and_sleep, [{str(pids)!r}] * 2))
        """)],
        stderr=(tmp_path / "stderr").open("w"),  # its resource tracker outlives it and reports the leak there
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [int(pid) for pid in pids.read_text().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _write_pid_and_sleep(path: str) -> None:
    with open(path, "a") as pids:
        pids.write(f"{os.getpid()}\n")
    time.sleep(300)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
