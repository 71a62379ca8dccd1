"""The FastAPI application factory. Routers stay thin; the store does the work."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import pipeline
from pipeline.api.auth import ReadAuth, TokenVerifier
from pipeline.api.routers import cameras, health, summary
from pipeline.exceptions import CameraExists, CameraNotFound
from pipeline.ingest.exceptions import InvalidSource
from pipeline.settings import Settings
from pipeline.store.exceptions import StoreUnavailable
from pipeline.store.redis_store import RedisStore


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


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
        return _error(503, f"Redis unavailable: {type(exc).__name__}")

    app.add_exception_handler(CameraNotFound, not_found)
    app.add_exception_handler(CameraExists, exists)
    app.add_exception_handler(InvalidSource, invalid)
    for exc_type in (StoreUnavailable, RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(exc_type, unavailable)


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
    _install_error_handlers(app)
    # Liveness/readiness stay open for probes; everything else reads behind api.auth_reads.
    app.include_router(health.probes)
    app.include_router(health.router, dependencies=[ReadAuth])
    app.include_router(cameras.router, dependencies=[ReadAuth])
    app.include_router(summary.router, dependencies=[ReadAuth])
    return app
