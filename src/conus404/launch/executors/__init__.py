"""The executors family: where a day's worker process runs.

``base`` holds what every executor shares (the launch, the exit, the interfaces); ``subprocess``
runs workers as children of the driver on this machine; ``dask`` runs each as a task on a
``dask.distributed`` cluster. :func:`open_executor` picks the one the settings name.
"""

from __future__ import annotations

from conus404.config.parts import Execution
from conus404.config.setting_values import DASK, SUBPROCESS
from conus404.launch.executors.base import Executor, Job, WorkerExit, WorkerLaunch
from conus404.launch.executors.subprocess import (
    SubprocessExecutor,
    WorkerProcess,
    run_worker_process,
    stop_worker_processes,
)

__all__ = ["Executor", "Job", "SubprocessExecutor", "WorkerExit", "WorkerLaunch", "WorkerProcess",
           "open_executor", "run_worker_process", "stop_worker_processes", "uses_launch_template"]


def uses_launch_template(execution: Execution) -> bool:
    """Whether a run forks its processes from this machine's launch template (Dask workers have their own)."""
    return execution.launch == "prewarmed" and execution.executor == SUBPROCESS


def open_executor(execution: Execution) -> Executor:
    """The executor ``execution.executor`` names (the Dask one connects or starts its cluster here)."""
    if execution.executor == DASK:
        from conus404.core.exceptions import ConfigurationError
        from conus404.launch.executors.dask import DaskExecutor

        try:
            return DaskExecutor(execution.dask_scheduler, execution.max_processes)
        except ConfigurationError:
            raise
        except Exception as exc:  # a LocalCluster that cannot start (ports, memory, ...)
            raise ConfigurationError(f"cannot start the Dask executor ({type(exc).__name__}: {exc})") from None
    return SubprocessExecutor()
