"""The app factory: ``create_app(settings)`` builds the API on the storage those settings name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api.datasets import router as datasets_router
from service.api.deps import Controller
from service.api.errors import install_error_handlers
from service.api.limits import BodySizeLimitMiddleware
from service.api.models import router as models_router
from service.api.security import APIKeyMiddleware
from service.api.studies import router
from service.cluster.runtime import RayLink
from service.schemas import HealthOut
from service.settings import Settings
from service.studies.controller import StudyController
from workers.db_retry import first_line


def create_app(settings: Settings | None = None) -> FastAPI:
    """A FastAPI app whose controller uses ``settings`` (default: read from the environment).

    Ray is connected when the first study runs, not at start, so the API answers at once.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        controller = StudyController(settings, RayLink(settings))
        app.state.controller = controller
        app.state.settings = settings
        controller.resume_unfinished()
        try:
            yield
        finally:
            controller.shutdown()
            controller.ray.close()

    app = FastAPI(
        title="hypevolve",
        summary="Hyperparameter evolution for YOLOv5: Optuna studies, Ray workers, hyp.yaml out.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(models_router)
    app.include_router(datasets_router)
    # Added last, so it runs first: an unauthenticated request is refused before its body is read.
    app.add_middleware(BodySizeLimitMiddleware)
    if settings.API_KEY is not None and settings.API_KEY.get_secret_value():
        app.add_middleware(APIKeyMiddleware, api_key=settings.API_KEY.get_secret_value())

    @app.get("/healthz", tags=["health"], response_model=HealthOut)
    def healthz(controller: Controller) -> HealthOut:
        """Whether the API answers (it does, if this does), and what it knows of its database and Ray;
        a database that does not answer makes the status "degraded", never this route fail."""
        try:
            controller.ping()
            database = "ok"
        except Exception as exc:
            database = f"unreachable: {first_line(exc)[:300]}"
        status = "ok" if database == "ok" else "degraded"
        return HealthOut(status=status, database=database, ray=controller.ray.status())

    return app
