"""Connecting the service to Ray: a local Ray by default, an existing cluster when RAY_ADDRESS is set."""

from __future__ import annotations

import logging
import threading

import ray

from service.settings import Settings
from workers.offline import OFFLINE_ENV

logger = logging.getLogger(__name__)
_lock = threading.Lock()


def connect_ray(settings: Settings) -> None:
    """Connect once per process (later calls return at once). Trials on every node get the offline
    environment, so no training reaches the network."""
    with _lock:
        if ray.is_initialized():
            return
        runtime_env = {"env_vars": dict(OFFLINE_ENV)}
        if settings.RAY_ADDRESS:
            logger.info("joining the Ray cluster at %s", settings.RAY_ADDRESS)
            ray.init(address=settings.RAY_ADDRESS, runtime_env=runtime_env)
        else:
            # No dashboard: it serves a jobs API that runs code for whoever reaches it.
            ray.init(num_cpus=settings.RAY_NUM_CPUS, include_dashboard=False, runtime_env=runtime_env)
        logger.info("Ray resources: %s", ray.cluster_resources())


def disconnect_ray() -> None:
    with _lock:
        if ray.is_initialized():
            ray.shutdown()
