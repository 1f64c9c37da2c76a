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

A dead raylet does not end a driver: its calls just hang (``ray.wait`` never returns, a submitted
task never runs). So the driver watches the processes Ray cannot run without (its node's raylet,
and the GCS of a local Ray) every WATCH_S. When one dies it answers nothing more, hands over the
outcomes of the tasks that had already ended (their results are in this process's memory, and
survive the raylet) and tells its parent, which then answers every call with RayLost: seconds, not
the minute a hung call takes to time out.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

import psutil
import ray

from workers.db_retry import DatabaseUnreachable

PROBE_TIMEOUT_S = 20.0
WATCH_S = 0.5  # how often the driver checks that its raylet (and a local Ray's GCS) still runs
HARVEST_S = 2.0  # how long it may take, once Ray is lost, to collect the outcomes of tasks that had ended
LOST_NOTICE = -1  # the call id of the driver's own message: Ray was lost, and the outcomes it kept
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
        watched = _ray_processes(local=not config.address)
        conn.send(("ready", dict(ray.cluster_resources())))
    except BaseException as exc:
        conn.send(("error", error_text(exc)))
        return
    _Driver(conn, watched).serve()
    with contextlib.suppress(Exception):
        ray.shutdown()


def _ray_processes(local: bool) -> list[tuple[str, psutil.Process]]:
    """What this driver cannot work without, as (name, process): the raylet of its own node (the
    one whose socket ray.nodes() names, on this machine also when the cluster's head is elsewhere),
    and the GCS of a local Ray, which this process started."""
    node_id = ray.get_runtime_context().get_node_id()
    socket = next((n["RayletSocketName"] for n in ray.nodes() if n["NodeID"] == node_id), None)
    found: list[tuple[str, psutil.Process]] = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "raylet" and socket and any(socket in arg for arg in process.info["cmdline"] or []):
            found.append(("raylet", process))
    if local:
        found += [("GCS", p) for p in psutil.Process().children(recursive=True) if p.name() == "gcs_server"]
    if not any(name == "raylet" for name, _ in found):
        logger.warning("this node's raylet (socket %s) not found: only calls timing out will notice it dying", socket)
    return found


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class _Driver:
    def __init__(self, conn: Connection, watched: list[tuple[str, psutil.Process]]) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()
        self._refs: dict[str, Any] = {}
        self._refs_lock = threading.Lock()
        # Keys unique across drivers: a restarted driver's tasks are never taken for an earlier one's.
        self._prefix = uuid.uuid4().hex[:8]
        self._keys = itertools.count()
        self._tasks: dict[str, Any] = {}
        self._watched = watched
        self._closing = threading.Event()
        self._lost: str | None = None  # why Ray is gone, once the watch saw it

    def serve(self) -> None:
        threading.Thread(target=self._watch, name="ray-watch", daemon=True).start()
        with ThreadPoolExecutor(max_workers=64, thread_name_prefix="ray-call") as pool:
            while True:
                try:
                    call_id, op, args = self._conn.recv()
                except (EOFError, OSError):
                    break  # the API process is gone
                if op == "close":
                    break
                pool.submit(self._answer, call_id, op, args)
            self._closing.set()
            if self._lost is None:  # a lost Ray cancels nothing: the call would hang
                for ref in self._take(list(self._refs)):
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)

    def _answer(self, call_id: int, op: str, args: tuple[Any, ...]) -> None:
        if self._lost is not None:
            return  # the parent answers it with RayLost once the notice is there
        try:
            reply: tuple[str, Any] = ("ok", getattr(self, f"op_{op}")(*args))
        except Exception as exc:
            reply = ("raised", error_text(exc))
        with self._send_lock:
            if self._lost is not None:
                return  # too late: the notice answers it, and a wait's outcomes go with the notice
            if op == "wait" and reply[0] == "ok":
                # Forgotten only as they are handed over, so that each outcome is sent exactly once:
                # here, or in the notice's harvest.
                self._take([key for key, _ in reply[1]])
            with contextlib.suppress(OSError):
                self._conn.send((call_id, *reply))

    def _watch(self) -> None:
        """Every WATCH_S, check the watched processes; when one is gone, say so once (see the module)."""
        while not self._closing.wait(WATCH_S):
            dead = next(((name, p.pid) for name, p in self._watched if not _alive(p)), None)
            if dead is not None:
                with self._send_lock:  # from here on no answer goes out: see _answer
                    self._lost = f"Ray's {dead[0]} (pid {dead[1]}) exited"
                logger.warning("%s", self._lost)
                notice = (LOST_NOTICE, "lost", (self._lost, self._harvest()))
                with self._send_lock, contextlib.suppress(OSError):
                    self._conn.send(notice)
                return

    def _harvest(self) -> list[tuple[str, TaskOutcome]]:
        """The outcomes of the tasks that had ended and were not yet waited for, collected for at most
        HARVEST_S (a dead Ray may hang a call for good: a thread of its own, left behind if it does)."""
        harvested: list[tuple[str, TaskOutcome]] = []

        def collect() -> None:
            with self._refs_lock:
                by_ref = {ref: key for key, ref in self._refs.items()}
            ready, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0) if by_ref else ([], [])
            for ref in ready:
                harvested.append((by_ref[ref], _outcome(ref)))

        thread = threading.Thread(target=collect, name="ray-harvest", daemon=True)
        thread.start()
        thread.join(HARVEST_S)
        return list(harvested)

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
        key = f"{self._prefix}-{next(self._keys)}"
        with self._refs_lock:
            self._refs[key] = ref
        return key

    def op_wait(self, keys: list[str], timeout_s: float) -> list[tuple[str, TaskOutcome]]:
        with self._refs_lock:
            by_ref = {self._refs[key]: key for key in keys if key in self._refs}
        if not by_ref:
            return []
        ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=timeout_s)
        return [(by_ref[ref], _outcome(ref)) for ref in ready]  # forgotten as they are sent (_answer)

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
