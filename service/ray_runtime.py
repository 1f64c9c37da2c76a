"""Connecting the service to Ray: a local Ray by default, an existing cluster when RAY_ADDRESS is set."""

from __future__ import annotations

import logging
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


_lock = threading.Lock()
_owner: _RayOwner | None = None


def connect_ray(settings: Settings) -> dict[str, float]:
    """Connect once per process and return the cluster's resources as seen then (later calls return
    the same at once). Trials on every node get the offline environment, so no training reaches the
    network."""
    global _owner
    with _lock:
        if _owner is None or _owner.error is not None:
            _owner = _RayOwner(settings)
            _owner.start()
        owner = _owner
    owner.ready.wait()
    if owner.error is not None:
        raise RuntimeError(f"could not connect to Ray: {owner.error}") from owner.error
    return dict(owner.resources)


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
