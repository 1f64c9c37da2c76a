"""The Ray driver: the one process of the service that talks to Ray, a child of the API process.

Why a process of its own: Ray's driver ends the process it runs in when it loses its cluster for
good (a head that goes down with its raylet and GCS; "Failed to connect to GCS ... The program will
terminate"), whatever its settings say. In a child, that ends the child, never the API: the API
process (service.cluster.runtime.RayLink) sees the pipe close, tells the runners that Ray was lost, and
starts a new driver that joins the cluster again once its head is back, or starts a new local Ray.

The child serves requests from its parent over a pipe, each in a thread of its own (a ``wait``
blocks): submit a trial's task, wait for tasks to end, cancel them, probe Ray. Task handles
(ObjectRefs) stay here, keyed by a string; what goes back is a TaskOutcome, never a Ray object. It
exits when the pipe closes (its parent ended, however), and a local Ray it started goes with it.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

import ray

from workers.db_retry import DatabaseUnreachable

PROBE_TIMEOUT_S = 20.0
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

logger = logging.getLogger(__name__)


def error_text(exc: BaseException) -> str:
    """``Type: message`` of the exception, or of the worker's own exception a RayTaskError carries,
    without the terminal colour codes ultralytics puts in its messages."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    return _ANSI_ESCAPE.sub("", f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class DriverConfig:
    """How the driver reaches Ray: join ``address`` when set, else start a local Ray of ``num_cpus``."""

    address: str | None
    num_cpus: int | None
    env_vars: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskOutcome:
    """How one task ended: ``result`` (its return value), ``cancelled``, ``raised`` (the task's own
    code raised: ``error``, and whether that was the database staying away), or ``lost`` (its worker
    process or node died, or Ray itself: ``error``)."""

    kind: Literal["result", "cancelled", "raised", "lost"]
    result: Any = None
    error: str = ""
    database_unreachable: bool = False


class DriverError(Exception):
    """A Ray call in the driver raised (Ray answered, with an error); the text says what."""


def driver_main(conn: Connection, config: DriverConfig) -> None:
    """The child's whole life: connect, say so (``("ready", resources)`` or ``("error", text)``),
    then serve ``(call_id, op, args)`` requests until the pipe closes or ``close`` comes."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s ray-driver: %(message)s")
    try:
        runtime_env = {"env_vars": dict(config.env_vars)}
        if config.address:
            ray.init(address=config.address, runtime_env=runtime_env)
        else:
            # address="local": a new Ray of our own, even where `ray start` left a cluster on this
            # machine (a bare ray.init() would join that one). No dashboard: it serves a jobs API
            # that runs code for whoever reaches it.
            ray.init(address="local", num_cpus=config.num_cpus, include_dashboard=False, runtime_env=runtime_env)
        conn.send(("ready", dict(ray.cluster_resources())))
    except BaseException as exc:
        conn.send(("error", error_text(exc)))
        return
    _Driver(conn).serve()
    with contextlib.suppress(Exception):
        ray.shutdown()


class _Driver:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()
        self._refs: dict[str, Any] = {}
        self._refs_lock = threading.Lock()
        self._keys = itertools.count()
        self._tasks: dict[str, Any] = {}

    def serve(self) -> None:
        with ThreadPoolExecutor(max_workers=64, thread_name_prefix="ray-call") as pool:
            while True:
                try:
                    call_id, op, args = self._conn.recv()
                except (EOFError, OSError):
                    break  # the API process is gone
                if op == "close":
                    break
                pool.submit(self._answer, call_id, op, args)
            for ref in self._take(list(self._refs)):
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def _answer(self, call_id: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            reply: tuple[str, Any] = ("ok", getattr(self, f"op_{op}")(*args))
        except Exception as exc:
            reply = ("raised", error_text(exc))
        with self._send_lock, contextlib.suppress(OSError):
            self._conn.send((call_id, *reply))

    def _take(self, keys: list[str]) -> list[Any]:
        with self._refs_lock:
            return [ref for key in keys if (ref := self._refs.pop(key, None)) is not None]

    # -- what the parent may ask ------------------------------------------------------------------

    def op_submit(self, task: str, options: dict[str, Any], args: tuple[Any, ...]) -> str:
        remote = self._tasks.get(task)
        if remote is None:
            module, _, name = task.partition(":")
            remote = self._tasks[task] = getattr(importlib.import_module(module), name)
        ref = remote.options(**options).remote(*args)
        key = str(next(self._keys))
        with self._refs_lock:
            self._refs[key] = ref
        return key

    def op_wait(self, keys: list[str], timeout_s: float) -> list[tuple[str, TaskOutcome]]:
        with self._refs_lock:
            by_ref = {self._refs[key]: key for key in keys if key in self._refs}
        if not by_ref:
            return []
        ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=timeout_s)
        done = [by_ref[ref] for ref in ready]
        return [(key, _outcome(ref)) for key, ref in zip(done, self._take(done), strict=True)]

    def op_cancel(self, keys: list[str]) -> None:
        for ref in self._take(keys):
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)

    def op_problem(self, timeout_s: float) -> str | None:
        try:
            ray.get(_probe.remote(), timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            return f"Ray did not run a probe task within {timeout_s:g}s"
        except Exception as exc:
            return error_text(exc).splitlines()[0]
        return None


def _outcome(ref: Any) -> TaskOutcome:
    try:
        return TaskOutcome("result", result=ray.get(ref))
    except ray.exceptions.TaskCancelledError:
        return TaskOutcome("cancelled")
    except ray.exceptions.RayTaskError as exc:
        unreachable = isinstance(exc.cause, DatabaseUnreachable)
        return TaskOutcome("raised", error=error_text(exc), database_unreachable=unreachable)
    except ray.exceptions.RayError as exc:  # its worker process or node was lost, or Ray itself
        return TaskOutcome("lost", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


@ray.remote(num_cpus=0, max_retries=0)
def _probe() -> bool:
    """Needs no CPU (it must not wait behind a trial): whether Ray runs tasks at all."""
    return True
