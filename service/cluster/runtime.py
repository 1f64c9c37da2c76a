"""The API process's link to Ray: a local Ray by default, an existing cluster when RAY_ADDRESS is set.

Ray can go away under the service: the kernel's OOM killer picks a raylet, a cluster's head
restarts. The API process never goes with it, and gets Ray back:

- Everything that talks to Ray runs in a child process, the driver (service.cluster.driver). Ray ends
  a driver that loses its cluster for good; in a child, that ends the child. RayLink sees the pipe
  close and answers every call in flight, and every later one, with RayLost. A raylet that dies
  hangs the driver's calls instead: the driver watches for it and says so within a second, with the
  outcomes of tasks that had ended by then (``harvested``: a finished training's result is kept).
- ``problem`` asks Ray to run a tiny task: the one test that covers the raylet, the GCS and the
  head alike, through public API only.
- ``restart`` ends the driver (a local Ray's processes with it), and the next ``connect`` starts a
  new one, which starts a new local Ray or joins the cluster again once its head is back. A
  generation number makes one restart serve every runner that saw the same loss.

Why a child process, supervised by the API process, rather than a service of its own: the runners
(study threads in the API process) stay where they are, one process is still all a user runs and
stops, and the child can never outlive the API (it exits when its pipe closes).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import ray

from service.cluster.driver import (
    LOST_NOTICE,
    PROBE_TIMEOUT_S,
    DriverConfig,
    DriverError,
    TaskOutcome,
    driver_main,
)
from service.settings import Settings
from workers.offline import OFFLINE_ENV

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 180.0  # starting a local Ray on a loaded machine takes a while; joining, less
CONNECT_SLICE_S = 0.25  # how often a connect that waits checks whether its caller still wants it
CALL_MARGIN_S = 60.0  # how much longer than its own timeout a call may take before the driver is judged hung
CLOSE_WAIT_S = 5.0  # a driver shuts its local Ray down in a second or two; one that hangs is killed

__all__ = ["DriverError", "RayLink", "RayLost", "TaskOutcome"]


class RayLost(Exception):
    """Ray itself is gone (its raylet, GCS or head, or the driver process), not one worker."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Driver:
    """One driver process and the calls in flight to it."""

    def __init__(self, config: DriverConfig, harvested: dict[str, TaskOutcome]) -> None:
        self._harvested = harvested
        context = multiprocessing.get_context("spawn")  # the API process has threads: never fork it
        self._conn, child_conn = context.Pipe()
        # daemon: multiprocessing ends it when the API process exits normally; the closed pipe ends it
        # when the API process is killed.
        self.process = context.Process(target=driver_main, args=(child_conn, config), name="ray-driver", daemon=True)
        self.process.start()
        child_conn.close()
        self.ready: Future[dict[str, float]] = Future()
        self.lost: str | None = None
        self._lock = threading.Lock()
        self._calls = itertools.count()
        self._pending: dict[int, Future[tuple[str, Any]]] = {}
        threading.Thread(target=self._read, name="ray-driver-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            kind, value = self._conn.recv()
            if kind == "ready":
                self.ready.set_result(value)
            else:
                self.ready.set_exception(RuntimeError(f"could not connect to Ray: {value}"))
            while True:
                call_id, status, value = self._conn.recv()
                if call_id == LOST_NOTICE:  # the driver saw Ray go: what had ended, then the loss
                    reason, outcomes = value
                    self._harvested.update(outcomes)
                    self._lose(reason)
                    continue
                with self._lock:
                    future = self._pending.pop(call_id, None)
                if future is not None:
                    future.set_result((status, value))
        except (EOFError, OSError):
            pass
        self.process.join(10)
        self._lose(f"the Ray driver process exited (exit code {self.process.exitcode})")

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self.lost is None:
                self.lost = reason
            pending, self._pending = self._pending, {}
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(f"could not connect to Ray: {reason}"))
        for future in pending.values():
            future.set_exception(RayLost(reason))

    def call(self, op: str, args: tuple[Any, ...], timeout_s: float) -> Any:
        future: Future[tuple[str, Any]] = Future()
        with self._lock:
            if self.lost is not None:
                raise RayLost(self.lost)
            call_id = next(self._calls)
            self._pending[call_id] = future
            try:
                self._conn.send((call_id, op, args))
            except (OSError, ValueError) as exc:
                self._pending.pop(call_id, None)
                raise RayLost(f"the Ray driver process is gone: {exc}") from exc
        try:
            status, value = future.result(timeout_s)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(call_id, None)
            raise RayLost(f"the Ray driver did not answer {op} within {timeout_s:g}s") from None
        if status == "raised":
            raise DriverError(value)
        return value

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._conn.send((-1, "close", ()))
        self.process.join(CLOSE_WAIT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)
        self._lose("the Ray driver was closed")
        with contextlib.suppress(OSError):
            self._conn.close()


class RayLink:
    """What runners use of Ray: connect, submit a trial's task, wait for and cancel tasks, probe.

    Every call but ``connect`` raises RayLost when the driver is gone or does not answer, and
    DriverError when Ray answered with an error."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._driver: _Driver | None = None
        self._generation = 0
        self._restarting: str | None = None  # why Ray is being restarted, until it is connected again
        # Outcomes of tasks that had ended when a driver saw its Ray go, until their runner takes them.
        self._harvested: dict[str, TaskOutcome] = {}

    @property
    def generation(self) -> int:
        """Which driver this is: restart counts them."""
        return self._generation

    def _config(self) -> DriverConfig:
        address = self._settings.RAY_ADDRESS
        if not address and ray.is_initialized():
            # Ray was connected by the process embedding the service (a test, a notebook): join it.
            address = ray.get_runtime_context().gcs_address
        return DriverConfig(address=address, num_cpus=self._settings.RAY_NUM_CPUS, env_vars=dict(OFFLINE_ENV))

    def connect(self, until: threading.Event | None = None) -> dict[str, float]:
        """Start the driver if none runs and return the cluster's resources as seen when it
        connected. Trials on every node get the offline environment, so no training reaches the
        network. Raises RuntimeError when Ray could not be started or joined, and RayLost as soon as
        ``until`` is set before it was (a study stopped while its Ray does not answer)."""
        with self._lock:
            if self._driver is None or self._driver.lost is not None:
                if self._driver is not None:
                    self._driver.close()
                config = self._config()
                logger.info("starting the Ray driver: %s", config.address or "a local Ray")
                self._driver = _Driver(config, self._harvested)
            driver = self._driver
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            try:
                resources = driver.ready.result(CONNECT_SLICE_S)
                break
            except FutureTimeout:
                if until is not None and until.is_set():
                    raise RayLost("stopped while connecting to Ray") from None
                if time.monotonic() > deadline:
                    driver.close()
                    raise RuntimeError(f"could not connect to Ray within {CONNECT_TIMEOUT_S:g}s") from None
        self._restarting = None
        return dict(resources)

    def _call(self, op: str, *args: Any, timeout_s: float) -> Any:
        driver = self._driver
        if driver is None:
            raise RayLost("not connected")
        return driver.call(op, args, timeout_s)

    def submit(self, task: str, options: dict[str, Any], *args: Any) -> str:
        """Run ``task`` ("module:name" of a Ray remote function) with ``options``; returns its key."""
        key: str = self._call("submit", task, options, args, timeout_s=CALL_MARGIN_S)
        return key

    def wait(self, keys: list[str], timeout_s: float) -> list[tuple[str, TaskOutcome]]:
        """The tasks among ``keys`` that ended within ``timeout_s`` (one at least, unless none did),
        with how; they are forgotten once returned."""
        ended: list[tuple[str, TaskOutcome]] = self._call("wait", keys, timeout_s, timeout_s=timeout_s + CALL_MARGIN_S)
        return ended

    def harvested(self, keys: list[str]) -> list[tuple[str, TaskOutcome]]:
        """The outcomes among ``keys`` of tasks that had ended when their driver lost Ray (and that no
        ``wait`` returned): each once. Keys are unique across drivers, so this holds across restarts."""
        return [(key, outcome) for key in keys if (outcome := self._harvested.pop(key, None)) is not None]

    def cancel(self, keys: list[str]) -> None:
        """Cancel these tasks and forget them; a Ray that is gone cannot, and they end all the same."""
        with contextlib.suppress(RayLost, DriverError):
            self._call("cancel", keys, timeout_s=CALL_MARGIN_S)

    def problem(self, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
        """None when Ray runs a task (one that needs no CPU: it must not wait behind a trial), else
        what is wrong."""
        try:
            answer: str | None = self._call("problem", timeout_s, timeout_s=timeout_s + CALL_MARGIN_S)
        except (RayLost, DriverError) as exc:
            return str(exc)
        return answer

    def restart(self, generation: int, reason: str) -> None:
        """End the driver of ``generation`` (a local Ray's processes with it) so that the next connect
        starts a new one; nothing if that was done already for this generation."""
        with self._lock:
            if generation != self._generation:
                return
            driver, self._driver = self._driver, None
            self._generation += 1
            self._restarting = reason
        logger.warning("Ray lost (%s): restarting the driver", reason)
        if driver is not None:
            driver.close()

    def status(self) -> str:
        """What the API process knows of Ray, without asking Ray (which may be gone): "not started"
        before the first study, "connecting", "connected: <resources>", or what went wrong."""
        if self._restarting is not None:
            return f"restarting: {self._restarting}"
        driver = self._driver
        if driver is None:
            return "not started"
        if not driver.ready.done():
            return "connecting"
        if driver.ready.exception() is not None:
            return f"unreachable: {driver.ready.exception()}"
        if driver.lost is not None:
            return f"lost: {driver.lost}"
        resources = driver.ready.result()
        return "connected: " + ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU"))

    def close(self) -> None:
        """End the driver: a local Ray shuts down, a cluster is left."""
        with self._lock:
            driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()
