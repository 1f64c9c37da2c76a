"""Connecting the service to Ray: a local Ray by default, an existing cluster when RAY_ADDRESS is set."""

from __future__ import annotations

import logging
import threading

import ray

from service.settings import Settings
from workers.offline import OFFLINE_ENV

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_resources: dict[str, float] = {}
_started_here = False


def connect_ray(settings: Settings) -> dict[str, float]:
    """Connect once per process and return the cluster's resources as seen then (later calls return
    the same at once). Trials on every node get the offline environment, so no training reaches the
    network."""
    global _started_here
    with _lock:
        if _resources:
            return dict(_resources)
        runtime_env = {"env_vars": dict(OFFLINE_ENV)}
        if ray.is_initialized():
            pass  # connected by the embedding process (a test, a notebook): use that connection
        elif settings.RAY_ADDRESS:
            logger.info("joining the Ray cluster at %s", settings.RAY_ADDRESS)
            ray.init(address=settings.RAY_ADDRESS, runtime_env=runtime_env)
            _started_here = True
        else:
            # No dashboard: it serves a jobs API that runs code for whoever reaches it.
            ray.init(num_cpus=settings.RAY_NUM_CPUS, include_dashboard=False, runtime_env=runtime_env)
            _started_here = True
        # Read once: Ray's global-state client hung when a second thread queried it (Ray 2.60).
        _resources.update(ray.cluster_resources())
        logger.info("Ray resources: %s", _resources)
        return dict(_resources)


def disconnect_ray() -> None:
    """Undo connect_ray: shut down the local Ray or leave the cluster, if this module connected."""
    global _started_here
    with _lock:
        if _started_here and ray.is_initialized():
            ray.shutdown()
        _started_here = False
        _resources.clear()
