"""The run grid as a task graph: each run of the plan (:func:`ltmpq.plan.grid`) is a task that
waits for the ones it builds on (stage 1 -> stage 2 -> the sweeps, chapter 4 and 5), run in
this process (``--jobs 1``), in worker processes on this machine (``--jobs N``: a Dask
``LocalCluster``, one torch thread per worker) or on an existing Dask scheduler (``--scheduler
ADDRESS``, e.g. one that ``dask-jobqueue`` started on SLURM or PBS). Dask schedules, retries a task
whose worker died and reports errors; this module only says what the tasks are.

A failed task is reported with its config and does not stop the others; the tasks that needed it
are reported as skipped. Every task stores its result when it finishes, so an interrupted grid
resumes: finished tasks return their stored result at once, and training resumes from the last
epoch. Used by ``make runs`` (chapters 1-4).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from . import plan
from .plan import Run

#: What local worker processes start with: one thread for OpenMP, MKL and OpenBLAS, and *not*
#: Dask's default MALLOC_TRIM_THRESHOLD_=65536, which makes glibc return memory after every
#: large free: torch's training steps then run 30% slower (measured here, 974 vs 678 img/s).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: Dask settings for local workers: the environment above, and no statistical profiler (it samples
#: the task thread's stack every 10 ms).
DASK_CONFIG = {"distributed.nanny.pre-spawn-environ": WORKER_ENV, "distributed.worker.profile.enabled": False}


class EngineError(RuntimeError):
    """The grid could not be run at all (e.g. no scheduler at the given address)."""


#: A task of the grid is a run of the plan (its ``key``, ``deps`` and ``describe`` are what Dask and
#: the reports need).
Task = Run


@dataclass
class Outcome:
    """What became of one task: ``done`` (with seconds), ``failed`` (with the error) or ``skipped``."""

    task: Task
    state: str
    seconds: float = 0.0
    error: str = ""
    worker: str = ""


@dataclass
class Report:
    """Every task's outcome, in the order they ended."""

    outcomes: list[Outcome] = field(default_factory=list)
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0  # starting the local cluster or reaching the scheduler

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.state != "done"]

    def summary(self) -> str:
        done = sum(o.state == "done" for o in self.outcomes)
        lines = [f"{done} of {len(self.outcomes)} tasks done in {self.wall_seconds:.0f} s"]
        lines += [f"  {o.state}: {o.task.describe()}: {o.error}" for o in self.failed]
        return "\n".join(lines)


def grid(profile: str, imbalance_factors=None, seeds=None, stages=None, variants=None,
         families=None) -> list[Run]:  # fmt: skip
    """The tasks of a profile's grid in dependency order: one per stored result
    (:func:`ltmpq.plan.grid`; unknown stages and requests with nothing to do are errors there)."""
    return plan.unique(
        plan.grid(profile, imbalance_factors, seeds, stages or plan.STAGES, variants, families)
    )


def run_task(task: Run, profile: str, retrain: bool = False, threads: int | None = 1,
             remake: bool = False) -> float:  # fmt: skip
    """Make (or find) one task's result; returns its seconds. Runs in a worker process."""
    import torch

    from . import runs

    if threads is not None:
        torch.set_num_threads(threads)  # two 2-thread trainings on 2 cores collapse (README)
    t0 = time.perf_counter()
    runs.make(task, profile, compute=True, progress=False, retrain=retrain and task.kind == "stage1",
              remake=remake or retrain)  # fmt: skip
    return time.perf_counter() - t0


def execute(
    tasks: Sequence[Task],
    fn: Callable[[Task], float],
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    connect_timeout_s: float = 10.0,
    stop_on_error: bool = False,
) -> Report:
    """Run ``fn(task)`` for every task after its dependencies, reporting each as it ends.

    ``jobs == 1`` and no ``scheduler``: in this process, in order (``stop_on_error``: let the first
    error propagate, with its traceback). Otherwise Dask: a ``LocalCluster`` of ``jobs``
    single-threaded worker processes, or the scheduler at ``scheduler``.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    t0 = time.perf_counter()
    report = Report()
    bar = tqdm(total=len(tasks), desc="runs", disable=not progress, unit="task")

    def ended(o: Outcome) -> None:
        report.outcomes.append(o)
        bar.update()
        if progress:
            where = f" on {o.worker}" if o.worker else ""
            note = f"{o.seconds:.0f} s{where}" if o.state == "done" else o.error
            tqdm.write(f"[{len(report.outcomes)}/{len(tasks)}] {o.task.key}: {o.state} ({note})")

    if jobs == 1 and scheduler is None:
        failed: set[str] = set()
        for task in tasks:
            if bad := [d for d in task.deps if d in failed]:  # deps outside the grid are made on demand
                failed.add(task.key)
                ended(Outcome(task, "skipped", error=f"needs {', '.join(bad)}, which did not finish"))
                continue
            try:
                ended(Outcome(task, "done", fn(task)))
            except Exception as exc:  # a failed task is reported; the others still run
                if stop_on_error:
                    raise
                failed.add(task.key)
                ended(Outcome(task, "failed", error=f"{type(exc).__name__}: {exc}"))
    else:
        report.startup_seconds = _execute_dask(tasks, fn, jobs, scheduler, ended, connect_timeout_s)
    bar.close()
    report.wall_seconds = time.perf_counter() - t0
    return report


def _execute_dask(tasks, fn, jobs, scheduler, ended, connect_timeout_s) -> float:
    """Run the tasks on Dask; returns the seconds it took to have workers to run them on."""
    from distributed import Client, LocalCluster, as_completed

    cluster, t0 = None, time.perf_counter()
    try:
        if scheduler is None:
            # one thread per worker process; OMP_NUM_THREADS keeps BLAS pools to that thread too
            import dask

            with dask.config.set(DASK_CONFIG):  # the nanny hands these to the worker processes
                cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=connect_timeout_s)
            except (OSError, TimeoutError) as exc:
                raise EngineError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from exc
        started = time.perf_counter() - t0
        with client:
            futures, by_key, run_id = {}, {t.key: t for t in tasks}, uuid.uuid4().hex[:8]
            for task in tasks:
                deps = [futures[d] for d in task.deps if d in futures]
                # the dependencies as arguments: Dask runs the task only after they finished
                key = f"ltmpq-{task.key}-{run_id}"
                futures[task.key] = client.submit(_call, fn, task, *deps, key=key, pure=False)
            keys = {f.key: k for k, f in futures.items()}
            done: set[str] = set()
            for future in as_completed(list(futures.values())):
                task = by_key[keys[future.key]]
                if future.status == "finished":
                    seconds, worker = future.result()
                    done.add(task.key)
                    ended(Outcome(task, "done", seconds, worker=worker))
                    continue
                exc = future.exception()
                upstream = [d for d in task.deps if d in futures and d not in done]
                if upstream and futures[upstream[0]].status == "error":
                    ended(
                        Outcome(task, "skipped", error=f"needs {', '.join(upstream)}, which did not finish")
                    )
                else:
                    ended(Outcome(task, "failed", error=f"{type(exc).__name__}: {exc}"))
    finally:
        if cluster is not None:
            cluster.close()
    return started


def _call(fn: Callable[[Task], float], task: Task, *_deps) -> tuple[float, str]:
    """What a worker runs: the task, and which worker it was (for the progress line)."""
    from distributed import get_worker

    return fn(task), get_worker().name


def run_grid(
    profile: str,
    imbalance_factors=None,
    seeds=None,
    *,
    stages=None,
    variants=None,
    families=None,
    retrain: bool = False,
    remake: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    threads: int | None = None,
    stop_on_error: bool = False,
) -> Report:
    """Every result of a profile's grid (:func:`grid`), each task by :func:`run_task`.

    ``threads``: torch threads per task (default: 1 in worker processes, torch's own in this one).
    """
    import functools

    tasks = grid(profile, imbalance_factors, seeds, stages, variants, families)
    if jobs > 1 or scheduler is not None:
        from . import artifacts

        artifacts.data_digest()  # decode the data once here, before the workers would all do it
        threads = 1 if threads is None else threads
    fn = functools.partial(run_task, profile=profile, retrain=retrain, threads=threads, remake=remake)
    return execute(tasks, fn, jobs=jobs, scheduler=scheduler, progress=progress, stop_on_error=stop_on_error)
