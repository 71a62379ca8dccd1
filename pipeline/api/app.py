"""The FastAPI application factory. Routers stay thin; the store does the work."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

import pipeline
from pipeline.aggregate.windows import InvalidDuration
from pipeline.alerts.exceptions import AlertExists, AlertNotFound, InvalidWebhook
from pipeline.api.auth import ReadAuth, TokenVerifier
from pipeline.api.limits import install_body_limit
from pipeline.api.metrics import build_registry
from pipeline.api.routers import alerts, cameras, dashboard, export, groups, health, metrics, overview, summary
from pipeline.exceptions import CameraExists, CameraNotFound
from pipeline.ingest.exceptions import InvalidSource
from pipeline.settings import Settings
from pipeline.store.exceptions import StoreUnavailable
from pipeline.store.redis_store import RedisStore


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    # FastAPI echoes the offending input (and the error object) by default; an input can be
    # a whole body holding a camera URL with its password, so only location and message go out.
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]


def _install_error_handlers(app: FastAPI) -> None:
    # Domain errors become HTTP statuses here, once, instead of try/except in every route.
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _error(404, str(exc) or "camera not found")

    async def exists(_: Request, exc: Exception) -> JSONResponse:
        return _error(409, str(exc) or "camera already exists")

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        # InvalidSource messages are already redacted by the ingest stage.
        return _error(422, str(exc))

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        return _error(503, "Redis unavailable")

    async def request_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _error(422, _validation_details(exc.errors()))

    async def model_invalid(_: Request, exc: Exception) -> JSONResponse:
        # A model re-validated inside a route (e.g. a patched alert rule): body-relative locations.
        assert isinstance(exc, ValidationError)
        return _error(422, _validation_details([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]))

    app.add_exception_handler(CameraNotFound, not_found)
    app.add_exception_handler(CameraExists, exists)
    app.add_exception_handler(InvalidSource, invalid)
    app.add_exception_handler(InvalidDuration, invalid)
    app.add_exception_handler(InvalidWebhook, invalid)
    app.add_exception_handler(AlertNotFound, not_found)
    app.add_exception_handler(AlertExists, exists)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(ValidationError, model_invalid)
    app.add_exception_handler(StoreUnavailable, unavailable)


def create_app(settings: Settings, store: RedisStore) -> FastAPI:
    """Build the HTTP API.

    Args:
        settings: The settings tree (ingest rules for validating camera sources, defaults).
        store: The Redis store the routes read and write.

    Returns:
        A FastAPI app; serve it with Serve (``ApiIngress``) or any ASGI server.
    """
    app = FastAPI(
        title="emotion-pipeline",
        version=pipeline.__version__,
        description="Register camera streams and query facial-expression aggregates.",
    )
    app.state.settings = settings
    app.state.store = store
    app.state.token_verifier = TokenVerifier(settings.api)
    app.state.metrics_registry = build_registry(store)
    _install_error_handlers(app)
    install_body_limit(app)  # 413 for bodies > 64 KB (issue 6)
    # Liveness/readiness stay open for probes; everything else reads behind api.auth_reads.
    app.include_router(health.probes)
    app.include_router(health.router, dependencies=[ReadAuth])
    app.include_router(cameras.router, dependencies=[ReadAuth])
    app.include_router(summary.router, dependencies=[ReadAuth])
    app.include_router(export.router, dependencies=[ReadAuth])
    app.include_router(groups.router, dependencies=[ReadAuth])
    app.include_router(overview.router, dependencies=[ReadAuth])
    app.include_router(alerts.router, dependencies=[ReadAuth])
    app.include_router(metrics.router, dependencies=[ReadAuth])
    app.include_router(dashboard.router)  # static page + assets, no data: open
    return app
