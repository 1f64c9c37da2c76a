"""Connecting the service to Ray: a local Ray by default, an existing cluster when RAY_ADDRESS is set.

Ray can go away under the service: the kernel's OOM killer picks a raylet, a cluster's head
restarts. The service process never goes with it, and gets Ray back:

- Ray's driver ends its own process when it cannot reach the GCS for
  ``gcs_rpc_server_reconnect_timeout_s`` (60 s by default); the service raises that limit, so
  losing Ray is an error a runner sees, never the end of the API.
- ``ray_problem`` asks Ray to run a tiny task: the one test that covers the raylet, the GCS and
  the head alike, through public API only.
- ``restart_ray`` drops the dead connection (a local Ray's processes with it), and the next
  ``connect_ray`` starts a new local Ray or joins the cluster again once its head is back. A
  generation number makes one restart serve every runner that saw the same loss.

Not covered: when a cluster's head goes down with its raylet and GCS together, Ray's driver ends
this process all the same (seen in a two-node test, whatever the limit); the next start of the
service resumes every unfinished study from the database.

Why in the API's own process, and not a separate one: everything a runner holds of Ray (the
connection, its task handles) can be dropped and made again in-process, and this keeps one
process to run, watch and stop; the API itself never waits on Ray.
"""

from __future__ import annotations

import logging
import os
import threading

import ray

from service.settings import Settings
from workers.offline import OFFLINE_ENV

logger = logging.getLogger(__name__)


class _RayOwner(threading.Thread):
    """The thread that starts Ray and outlives every user of it.

    A local Ray's GCS and raylet are started with a parent-death signal, which Linux sends when the
    *thread* that forked them exits: started from a study's runner thread, they were killed as soon
    as that study finished. This thread waits until disconnect_ray instead.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="ray-owner", daemon=True)
        self._settings = settings
        self.ready = threading.Event()
        self.release = threading.Event()
        self.resources: dict[str, float] = {}
        self.error: BaseException | None = None
        self.started_ray = False

    def run(self) -> None:
        try:
            self._connect()
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()
        self.release.wait()

    def _connect(self) -> None:
        settings = self._settings
        # Read by Ray's driver at ray.init: without it, a GCS out of reach for 60 s ends this process.
        os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(GCS_RECONNECT_TIMEOUT_S))
        runtime_env = {"env_vars": dict(OFFLINE_ENV)}
        if ray.is_initialized():
            pass  # connected by the embedding process (a test, a notebook): use that connection
        elif settings.RAY_ADDRESS:
            logger.info("joining the Ray cluster at %s", settings.RAY_ADDRESS)
            ray.init(address=settings.RAY_ADDRESS, runtime_env=runtime_env)
            self.started_ray = True
        else:
            # address="local": a new Ray of our own, even where `ray start` left a cluster on this
            # machine (a bare ray.init() would join that one). No dashboard: it serves a jobs API
            # that runs code for whoever reaches it.
            ray.init(address="local", num_cpus=settings.RAY_NUM_CPUS, include_dashboard=False, runtime_env=runtime_env)
            self.started_ray = True
        self.resources = dict(ray.cluster_resources())
        logger.info("Ray resources: %s", self.resources)


GCS_RECONNECT_TIMEOUT_S = 10 * 365 * 24 * 3600
PROBE_TIMEOUT_S = 20.0

_lock = threading.Lock()
_owner: _RayOwner | None = None
_generation = 0
_restarting: str | None = None  # why Ray is being restarted, until it is connected again


def ray_generation() -> int:
    """Which connection this is: restart_ray counts them."""
    return _generation


@ray.remote(num_cpus=0, max_retries=0)
def _probe() -> bool:
    return True


def ray_problem(timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when Ray runs a task (num_cpus=0: it need not wait for a trial's CPUs), else what is wrong."""
    if not ray.is_initialized():
        return "not connected"
    try:
        ray.get(_probe.remote(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        return f"Ray did not run a probe task within {timeout_s:g}s"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def restart_ray(generation: int, reason: str) -> None:
    """Drop the connection of ``generation`` (a local Ray's processes with it) so that the next
    connect_ray starts Ray again; nothing if that was done already for this generation. Refused for a
    Ray this module did not connect (a test's, a notebook's): it is theirs to restart."""
    global _owner, _generation, _restarting
    with _lock:
        if generation != _generation:
            return
        owner = _owner
        if owner is not None and owner.error is None and not owner.started_ray:
            raise RuntimeError("Ray was connected by the process embedding the service; restart it there")
        _owner, _generation, _restarting = None, _generation + 1, reason
    logger.warning("Ray lost (%s): restarting the connection", reason)
    if owner is not None:
        try:
            if ray.is_initialized():
                ray.shutdown()
        finally:
            owner.release.set()


def connect_ray(settings: Settings) -> dict[str, float]:
    """Connect once per process and return the cluster's resources as seen then (later calls return
    the same at once). Trials on every node get the offline environment, so no training reaches the
    network."""
    global _owner, _restarting
    with _lock:
        if _owner is None or _owner.error is not None:
            _owner = _RayOwner(settings)
            _owner.start()
        owner = _owner
    owner.ready.wait()
    if owner.error is not None:
        raise RuntimeError(f"could not connect to Ray: {owner.error}") from owner.error
    _restarting = None
    return dict(owner.resources)


def ray_status() -> str:
    """What this process knows of its Ray, without asking Ray (which may be gone): "not started"
    before the first study, "connecting", "connected: <resources>", or the error that stopped it."""
    owner = _owner
    if _restarting is not None:
        return f"restarting: {_restarting}"
    if owner is None:
        return "not started"
    if not owner.ready.is_set():
        return "connecting"
    if owner.error is not None:
        return f"unreachable: {owner.error}"
    if not ray.is_initialized():
        return "disconnected"
    return "connected: " + ", ".join(f"{k} {v:g}" for k, v in sorted(owner.resources.items()) if k in ("CPU", "GPU"))


def disconnect_ray() -> None:
    """Undo connect_ray: shut down the local Ray or leave the cluster, if this module connected."""
    global _owner
    with _lock:
        owner, _owner = _owner, None
    if owner is None:
        return
    if owner.started_ray and ray.is_initialized():
        ray.shutdown()
    owner.release.set()
