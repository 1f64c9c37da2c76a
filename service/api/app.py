"""The app factory: ``create_app(settings)`` builds the API on the storage those settings name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from service.api.errors import install_error_handlers
from service.api.limits import BodySizeLimitMiddleware
from service.api.security import APIKeyMiddleware
from service.api.studies import Controller, router
from service.ray_runtime import connect_ray, disconnect_ray
from service.settings import Settings
from service.studies.controller import StudyController


def create_app(settings: Settings | None = None) -> FastAPI:
    """A FastAPI app whose controller uses ``settings`` (default: read from the environment).

    Ray is connected when the first study runs, not at start, so the API answers at once.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        controller = StudyController(settings, connect_ray=partial(connect_ray, settings))
        app.state.controller = controller
        controller.resume_unfinished()
        try:
            yield
        finally:
            controller.shutdown()
            disconnect_ray()

    app = FastAPI(
        title="hypevolve",
        summary="Hyperparameter evolution for YOLOv5: Optuna studies, Ray workers, hyp.yaml out.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    # Added last, so it runs first: an unauthenticated request is refused before its body is read.
    app.add_middleware(BodySizeLimitMiddleware)
    if settings.API_KEY is not None and settings.API_KEY.get_secret_value():
        app.add_middleware(APIKeyMiddleware, api_key=settings.API_KEY.get_secret_value())

    @app.get("/healthz", tags=["health"])
    def healthz(controller: Controller) -> dict[str, str]:
        controller.ping()
        return {"status": "ok"}

    return app
