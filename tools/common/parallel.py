"""Work spread over processes and machines with Ray: routes, episodes and DAgger rollouts are independent
tasks. With one worker and no cluster named, tasks run in this process; otherwise on a local Ray that the
command starts (and stops) itself, or on the cluster that ``ray.address`` or ``RAY_ADDRESS`` names. A
task whose worker dies (``kill -9``, a lost node) is run again up to ``max_retries`` times; a task that
raises is not (the caller records its failure)."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from drivestack.common.errors import InputError


@dataclass
class RayConfig:
    """``ray:`` settings of the commands that spread work over workers."""

    address: str = ""  # (str) Ray cluster to run on, e.g. auto or ray://head:10001; empty: RAY_ADDRESS, else a local Ray started by the command
    max_retries: int = 3  # (int) times a task is run again when its worker process dies
    num_gpus: float = 0.0  # (float) GPU share per task, e.g. 0.25 to run four learned agents' networks on one GPU; 0 = none

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.num_gpus < 0:
            raise ValueError(f"max_retries and num_gpus must be >= 0, got {self.max_retries}, {self.num_gpus}")

    def cluster(self) -> str:
        return self.address or os.environ.get("RAY_ADDRESS", "")


class TaskError(InputError):
    """A task that could not be completed on Ray (its worker died more than ``max_retries`` times)."""


def in_ray_task() -> bool:
    """Whether this code runs in a Ray worker (a task), not in the process that started the work."""
    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE


def _start(workers: int, config: RayConfig) -> bool:
    """Connect to Ray; True when this call started a local Ray (to be shut down after). Keeps this process's
    SIGTERM handler (``ray.init`` installs its own, which would exit without the caller's clean-up)."""
    import ray

    if ray.is_initialized():
        return False
    # log_to_driver: the workers' progress bars (ray.experimental.tqdm_ray) and warnings reach this process
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": True, "logging_level": "ERROR"}
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if config.cluster():
            ray.init(address=config.cluster(), **kwargs)
            return False
        # a local Ray's workers import what this process can (a script's or a test's own modules too)
        path = os.pathsep.join(p for p in sys.path if p and Path(p).is_dir())
        ray.init(num_cpus=workers, object_store_memory=128 * 1024**2, runtime_env={"env_vars": {"PYTHONPATH": path}}, **kwargs)
        return True
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)


def run_tasks(fn: Callable[..., Any], jobs: Iterable[tuple], workers: int, config: RayConfig | None = None,
              name: Callable[[tuple], str] = str) -> Iterator[tuple[tuple, Any]]:  # fmt: skip
    """``fn(*job)`` for each job, at most ``workers`` at a time; yields ``(job, result)`` in the order they
    finish, with a :class:`TaskError` as the result of a job whose worker died more than ``max_retries``
    times. An exception ``fn`` raises is raised here. ``name(job)`` names a job in errors. Closing the
    iterator (or Ctrl-C) cancels the tasks still running, and stops the local Ray this call started."""
    config = config or RayConfig()
    if workers <= 1 and not config.cluster():
        for job in jobs:
            yield job, fn(*job)
        return
    import ray

    started = _start(workers, config)
    task = ray.remote(num_cpus=1, num_gpus=config.num_gpus, max_retries=config.max_retries)(fn)
    pending: dict[Any, tuple] = {}
    todo = iter(jobs)
    try:
        for job in itertools.islice(todo, workers):
            pending[task.remote(*job)] = job
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                raise e.as_instanceof_cause() from None
            except ray.exceptions.RayError as e:  # the worker process or its node is gone, every try
                result = TaskError(f"{name(job)}: its worker died on each of {config.max_retries + 1} tries ({type(e).__name__})")
            for job_next in itertools.islice(todo, 1):
                pending[task.remote(*job_next)] = job_next
            yield job, result
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
