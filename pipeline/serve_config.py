"""Entry points for Serve config files (``serve run`` / ``serve deploy`` / KubeRay ``serveConfigV2``).

A Serve config names an *application builder* by import path and passes it ``args``::

    applications:
      - name: emotionpipe
        import_path: pipeline.serve_config:app_builder
        args: {detect: {max_replicas: 8}}          # a partial settings tree
      - name: emotionpipe-cameras
        import_path: pipeline.serve_config:cameras_builder
        route_prefix: null                          # no HTTP route
        args: {detect: {max_replicas: 8}}           # the same tree (+ optional loop_files)

``args`` is validated into :class:`~pipeline.settings.Settings` together with the ``EP_*``
environment of the process that runs Serve's build task (on Kubernetes: the ConfigMap and
Secret wired into every Ray pod); ``args`` wins where both set a field. Unlike ``emotionpipe
up`` nothing here starts an embedded Redis: the Redis URL must come from ``EP_REDIS__URL`` or
``args.redis.url``, otherwise :class:`~pipeline.exceptions.ConfigError`.

The second application, :class:`CameraSupervisor`, makes the camera manager automatic in
cluster mode: its single replica gets-or-creates the detached ``camera-manager`` actor (the
same named actor ``emotionpipe up`` starts, so both paths can never run two) and recreates
it from its health check if it is ever gone for good. Building binds deployments only; it
neither needs nor touches a Ray cluster.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from ray import serve
from ray.serve import Application

from pipeline.exceptions import ConfigError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

CAMERAS_APP_NAME = "emotionpipe-cameras"
SUPERVISOR_NUM_CPUS = 0.01
_STATUS_TIMEOUT_S = 5.0
# Keys of the cameras builder's args that are not part of the settings tree.
_CAMERAS_ONLY_ARGS = ("loop_files",)


def settings_from_args(args: dict[str, Any] | None) -> Settings:
    """Validate a Serve config's ``args`` (a partial settings tree) plus the ``EP_*`` environment.

    Raises:
        ConfigError: ``args`` does not validate, or no Redis URL is configured.
    """
    try:
        settings = Settings(**dict(args or {}))
    except ValidationError as exc:
        raise ConfigError(f"invalid application args: {exc}") from exc
    if not settings.redis.url:
        raise ConfigError(
            "Serve config deployments need an existing Redis: set EP_REDIS__URL (or args.redis.url); "
            "only `emotionpipe up` starts an embedded one"
        )
    return settings


def app_builder(args: dict[str, Any]) -> Application:
    """``import_path: pipeline.serve_config:app_builder``: the ``emotionpipe`` application.

    The deployment options come from :func:`pipeline.serve_app.build_app`; a Serve config's
    ``deployments:`` section overrides them field by field (``deploy/`` keeps both equal).
    """
    from pipeline.serve_app import build_app

    return build_app(settings_from_args(args))


def cameras_builder(args: dict[str, Any]) -> Application:
    """``import_path: pipeline.serve_config:cameras_builder``: keeps the camera manager running.

    Args:
        args: The settings tree as for :func:`app_builder`, plus ``loop_files`` (bool, default
            false): loop file sources, for replays and demo cameras.
    """
    args = dict(args or {})
    loop_files = bool(args.pop("loop_files", False))
    settings = settings_from_args(args)
    app: Application = CameraSupervisor.bind(settings, loop_files)  # type: ignore[attr-defined]
    return app


@serve.deployment(
    name="CameraSupervisor",
    num_replicas=1,
    ray_actor_options={"num_cpus": SUPERVISOR_NUM_CPUS},
    max_ongoing_requests=4,
    health_check_period_s=10.0,
    health_check_timeout_s=30.0,
)
class CameraSupervisor:
    """Makes sure the detached ``camera-manager`` actor exists while the application runs.

    The manager (and its readers) is deliberately *not* stopped when this replica stops: a
    rolling update starts the new replica before the old one goes, and both point at the same
    named actor. ``emotionpipe down`` or deleting the Ray cluster stops it.
    """

    def __init__(self, settings: Settings, loop_files: bool = False) -> None:
        self._settings = settings
        self._loop_files = loop_files
        self._manager = self._ensure()

    def _ensure(self) -> Any:
        from pipeline.ingest.manager import start_camera_manager

        return start_camera_manager(self._settings, loop_files=self._loop_files)

    async def status(self) -> dict[str, Any]:
        """The manager's running cameras and last reconcile error."""
        result: dict[str, Any] = await self._manager.status.remote()
        return result

    async def check_health(self) -> None:
        """Serve's probe. The manager restarts itself (``max_restarts=-1``); if it was killed
        for good (``ray.kill``), recreate it. Raises only if that fails too."""
        import asyncio

        from ray.exceptions import RayActorError

        try:
            await asyncio.wait_for(self._manager.status.remote(), _STATUS_TIMEOUT_S)
        except (RayActorError, asyncio.TimeoutError) as exc:
            log.warning("camera manager unreachable (%s); recreating it", type(exc).__name__)
            self._manager = self._ensure()
