"""The run grid as a task graph: each (stage-1 run, stage[, quantizer variant]) is a task that
waits for the ones it builds on (stage 1 -> stage 2 -> chapter 3's sweeps and chapter 4), run in
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

from .config import QUANT_ABLATIONS, QUANT_HYPOTHESES, Stage1Config, get_profile

#: What local worker processes start with: one thread for OpenMP, MKL and OpenBLAS, and *not*
#: Dask's default MALLOC_TRIM_THRESHOLD_=65536, which makes glibc return memory after every
#: large free: torch's training steps then run 30% slower (measured here, 974 vs 678 img/s).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: Dask settings for local workers: the environment above, and no statistical profiler (it samples
#: the task thread's stack every 10 ms).
DASK_CONFIG = {"distributed.nanny.pre-spawn-environ": WORKER_ENV, "distributed.worker.profile.enabled": False}


class EngineError(RuntimeError):
    """The grid could not be run at all (e.g. no scheduler at the given address)."""


@dataclass(frozen=True)
class Task:
    """One unit of the grid: ``stage`` of the stage-1 run ``cfg`` (and a chapter-3 ``variant``)."""

    stage: str
    cfg: Stage1Config
    variant: str | None = None
    deps: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.stage}-{self.cfg.tag}" + (f"-{self.variant}" if self.variant else "")

    def describe(self) -> str:
        """The task and its config, as a failure report names it."""
        what = f"{self.stage}{f' ({self.variant})' if self.variant else ''} of {self.cfg.tag}"
        return f"{what} [Stage1Config {self.cfg.key}: IF {self.cfg.imbalance_factor:g}, seed {self.cfg.seed}]"


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


def grid(profile: str, imbalance_factors=None, seeds=None, stages=None, variants=None) -> list[Task]:
    """The tasks of a profile's grid in dependency order (:func:`ltmpq.runs.plan` says which stages
    each run gets; unknown stages and requests with nothing to do are errors there)."""
    from .runs import STAGES, plan, quant_variants_for

    variant_names = list(quant_variants_for(profile, variants))  # unknown names fail here
    configs = get_profile(profile).quant_configs([*QUANT_ABLATIONS, *QUANT_HYPOTHESES])
    tasks: list[Task] = []
    for cfg, stages_here in plan(profile, imbalance_factors, seeds, stages or STAGES):
        before: tuple[str, ...] = ()
        for stage in stages_here:
            if stage == "quantized":
                tasks += [Task(stage, cfg, v, before) for v in variant_names]
                continue
            if stage == "hypotheses":  # chapter 5's quantizers: chapter 3's sweep, other configs
                # one task per distinct quantizer: a hypothesis equal to a variant already listed
                # (e.g. chapter 3's per-tensor run) shares its result
                done = {configs[t.variant] for t in tasks if t.cfg == cfg and t.stage == "quantized"}
                for h in QUANT_HYPOTHESES:
                    if configs[h] not in done and (variants is None or h in variants):
                        done.add(configs[h])
                        tasks.append(Task("quantized", cfg, h, before))
                continue
            if stage == "ladder":  # chapter 5's scale ladder: this run's model and the wider ones
                tasks += _ladder_tasks(profile, cfg, tasks, before)
                continue
            task = Task(stage, cfg, None, before)  # chapter 4 needs stage 2, not chapter 3's sweeps
            tasks.append(task)
            if stage in ("stage1", "decoupled"):
                before = (task.key,)
    if not tasks:  # e.g. --stage hypotheses --variant default: none of the names is a hypothesis
        raise ValueError(
            f"nothing to do: no task for stages {list(stages or STAGES)} and variants {variants}"
        )
    return tasks


def _ladder_tasks(profile: str, cfg: Stage1Config, listed: list[Task], before: tuple[str, ...]) -> list[Task]:
    """The scale ladder at one (IF, seed): the profile's model quantized with the ladder's variants
    (where not listed already), then each rung's model trained, decoupled and quantized alike."""
    prof = get_profile(profile)
    keys = {t.key for t in listed}
    tasks = [t for v in prof.ladder_variants if (t := Task("quantized", cfg, v, before)).key not in keys]
    for rung in prof.ladder:
        rcfg = prof.rung_config(cfg, rung)
        train = Task("stage1", rcfg, None, ())
        stage2 = Task("decoupled", rcfg, None, (train.key,))
        tasks += [train, stage2, *(Task("quantized", rcfg, v, (stage2.key,)) for v in prof.ladder_variants)]
    return tasks


def run_task(task: Task, profile: str, retrain: bool = False, threads: int | None = 1) -> float:
    """Make (or find) one task's result; returns its seconds. Runs in a worker process."""
    import torch

    from . import runs

    if threads is not None:
        torch.set_num_threads(threads)  # two 2-thread trainings on 2 cores collapse (README)
    t0 = time.perf_counter()
    prof = get_profile(profile)
    if task.stage == "stage1":
        runs.stage1(task.cfg, profile, compute=True, progress=False, retrain=retrain)
    elif task.stage == "decoupled":
        runs.decoupled(task.cfg, prof.decouple, profile, compute=True, progress=False)
    elif task.stage == "quantized":
        ((qcfg, keep),) = runs.quant_variants_for(profile, [task.variant]).values()
        runs.quantized(task.cfg, prof.decouple, qcfg, prof.quant_bits, profile, keep_predictions=keep,
                       compute=True, progress=False)  # fmt: skip
    elif task.stage == "mpq":
        runs.mixed_precision(
            task.cfg, prof.decouple, prof.quant, prof.mpq, profile, compute=True, progress=False
        )
    elif task.stage == "explain":
        runs.explain(task.cfg, prof.decouple, prof.quant, prof.explain, profile, compute=True, progress=False)
    else:
        raise ValueError(f"unknown stage {task.stage!r}")
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
            if bad := [d for d in task.deps if d in failed]:
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
                deps = [futures[d] for d in task.deps]
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
                upstream = [d for d in task.deps if d not in done]
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
    retrain: bool = False,
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

    tasks = grid(profile, imbalance_factors, seeds, stages, variants)
    if jobs > 1 or scheduler is not None:
        from . import artifacts

        artifacts.data_digest()  # decode the data once here, before the workers would all do it
        threads = 1 if threads is None else threads
    fn = functools.partial(run_task, profile=profile, retrain=retrain, threads=threads)
    return execute(tasks, fn, jobs=jobs, scheduler=scheduler, progress=progress, stop_on_error=stop_on_error)
