"""The Dask executor: each worker process becomes one task on a ``dask.distributed`` cluster.

A ``LocalCluster`` on this machine by default (``MAX_CONCURRENT_PROCESSES`` workers of one thread
each, listening on 127.0.0.1 only), or an existing scheduler (``DASK_SCHEDULER_ADDRESS``: an
address such as ``tcp://10.1.2.3:8786`` or a scheduler file), e.g. one whose workers
dask-jobqueue started on Slurm. A task runs :func:`conus404.launch.executors.subprocess.run_worker_process` on a
Dask worker, so the Dask workers need this checkout at the same path (a shared filesystem) and
``src/`` importable; the data folder must be shared too, as every worker publishes into it.
"""

from __future__ import annotations

import logging
import uuid

from conus404.core.exceptions import ConfigurationError
from conus404.launch.executors.base import WorkerExit, WorkerLaunch
from conus404.launch.executors.subprocess import run_worker_process, stop_worker_processes

log = logging.getLogger("conus404.dask_executor")
CONNECT_TIMEOUT_S = 10


def connect(address: str):
    """A Client of the scheduler at ``address`` (or described by the scheduler file ``address``)."""
    from distributed import Client

    try:
        if "://" in address:
            return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        return Client(scheduler_file=address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot reach the Dask scheduler {address} ({type(exc).__name__}: {exc}); "
            "is it running, and is DASK_SCHEDULER_ADDRESS right?"
        ) from None


def check_scheduler(address: str) -> None:
    """Raise ConfigurationError unless a scheduler answers at ``address`` (the driver's preflight)."""
    client = connect(address)
    client.close()


class DaskJob:
    def __init__(self, future, executor: DaskExecutor) -> None:
        self.future = future
        self.executor = executor

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> WorkerExit:
        try:
            return self.future.result()
        except Exception as exc:  # the task never produced an exit: worker lost, task cancelled, ...
            return WorkerExit(None, "", lost=f"the Dask task failed ({type(exc).__name__}: {exc})")

    def stop(self) -> None:
        self.future.cancel()
        self.executor.stopped_any = True


class DaskExecutor:
    def __init__(self, scheduler_address: str | None, local_workers: int) -> None:
        from distributed import Client, LocalCluster

        self.cluster = None
        self.stopped_any = False  # a run was interrupted with tasks in flight
        if scheduler_address:
            self.client = connect(scheduler_address)
            self.on_this_machine = False
            where = f"the Dask scheduler at {self.client.scheduler.address}"
        else:
            # One single-threaded worker per day slot; loopback only, no dashboard. The scheduler's
            # HTTP server starts even without a dashboard, on the fixed port 8787 unless told otherwise.
            self.cluster = LocalCluster(
                n_workers=local_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                scheduler_port=0, dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.WARNING,
            )
            self.client = Client(self.cluster, set_as_default=False)
            self.on_this_machine = True
            where = f"a LocalCluster of {local_workers} worker(s) at {self.cluster.scheduler_address}"
        workers = len(self.client.scheduler_info().get("workers", {}))
        log.info("executor: dask, %s (%d worker(s) now)", where, workers)
        if workers == 0:
            log.warning("the Dask cluster has no workers yet: days wait until workers join")

    def submit(self, launch: WorkerLaunch) -> tuple[DaskJob, str]:
        key = f"conus404-{launch.log_path.stem}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(run_worker_process, launch, key=key, pure=False)
        return DaskJob(future, self), f"Dask task {key}"

    def close(self) -> None:
        try:
            if self.stopped_any:
                # Cancelling a task does not stop the process it started: stop those by PID on every worker.
                self.client.run(stop_worker_processes)
        except Exception as exc:  # a gone scheduler: nothing left to stop through it
            log.warning("could not ask the Dask workers to stop their day processes: %s", exc)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
