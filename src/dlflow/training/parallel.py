"""Independent training jobs (cross-validation folds) side by side in worker processes on one machine.

On a CPU, one small recurrent network does not keep every core busy: its
steps are short, sequential matrix products. Two folds trained at once, one
thread each, get through more work than one fold on two threads (about
1.3x on 2 cores, ``benchmarks/rnn_benchmark.py``). The jobs must not depend
on each other, and each must seed itself, so the results do not depend on
how many workers ran them or in which order.

Workers are spawned (never forked: a forked copy of a process with torch's
thread pools and an MLflow client is not safe), each limited to its share of
the cores, and on Linux they die with the parent process, so a killed run
leaves no orphan training behind. A worker's exception is raised in the
parent and the other workers are stopped.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dlflow.training.runtime import configure_threads, usable_cores

logger = logging.getLogger(__name__)


def plan_workers(requested: int | None, jobs: int, threads: int | None = None) -> tuple[int, int]:
    """How many worker processes to run ``jobs`` jobs with, and the threads each.

    ``requested`` ``None``: one worker per usable core, at most one per job.
    ``threads`` ``None``: the cores shared out among the workers (at least one each).
    One worker means: run the jobs in this process, one after the other.
    """
    if requested is not None and requested < 1:
        raise ValueError(f"workers must be >= 1 or None, got {requested}")
    cores = usable_cores()
    workers = max(1, min(jobs, requested if requested is not None else cores))
    return workers, threads or max(1, cores // workers)


def _init_worker(threads: int, state: Any, setup: Callable[[Any], None] | None) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        force=True,  # over whatever logging the parent's main module set up on import here
    )
    configure_threads(threads)
    if setup is not None:
        setup(state)


class WorkerDied(RuntimeError):
    """A worker process ended without returning (killed, out of memory, or failed to start)."""


@contextlib.contextmanager
def worker_pool(
    workers: int, threads: int, setup: Callable[[Any], None] | None = None, state: Any = None
) -> Iterator[Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]]:
    """``with worker_pool(n, threads, setup, state) as run: for result in run(job, items): ...``

    Yields ``run(job, items)``, which calls ``job(item)`` for every item in
    ``workers`` spawned processes and yields the results as they finish (not
    in order). ``setup(state)`` runs once in each worker first: hand large,
    shared inputs over there, not with every item. ``job`` and ``setup`` must
    be importable module-level functions. A job's exception is raised here;
    a worker that dies raises ``WorkerDied``. Either way, and whenever the
    block is left early, the other workers are stopped at once.
    """
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads, state, setup))
    logger.info("%d worker processes, %d thread(s) each", workers, threads)

    def run(job: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        pending = [executor.submit(job, item) for item in items]
        try:
            for future in as_completed(pending):
                yield future.result()
        except BrokenProcessPool as error:
            raise WorkerDied(
                "a worker process ended without returning a result (killed, out of memory, or it could not start: "
                'a script that runs the pipeline must guard its entry point with `if __name__ == "__main__":`, '
                "as multiprocessing's spawn method requires); run it in one process with workers=1 to see the error there"
            ) from error

    finished = False
    try:
        yield run
        finished = True
    finally:
        if finished:
            executor.shutdown(wait=True)
        else:  # an error or an interruption: no worker goes on training
            executor.shutdown(wait=False, cancel_futures=True)
            _stop_workers(executor)


def _stop_workers(executor: ProcessPoolExecutor) -> None:
    if hasattr(executor, "terminate_workers"):  # Python 3.14
        executor.terminate_workers()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()
