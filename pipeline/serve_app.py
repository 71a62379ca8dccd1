"""Build the ``emotionpipe`` Ray Serve application from the settings tree.

Three deployments: ``FaceDetector`` (autoscaled on ongoing requests, Serve's default),
``EmotionClassifier`` (autoscaled on the faces stream's lag, see
:mod:`pipeline.classify.autoscale`) and ``ApiIngress`` (FastAPI). Every replica reserves a
*fractional* CPU: Serve's default of 1 CPU per replica fits only two replicas on a 2-core laptop.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from pipeline.contracts import APP_NAME as APP_NAME  # re-exported: the name this app is deployed under
from pipeline.exceptions import ConfigError
from pipeline.classify.autoscale import POLICY_PATH
from pipeline.settings import Settings

INGRESS_NUM_CPUS = 0.1
# Detector replicas are added when more than this many frames wait per replica.
DETECT_TARGET_ONGOING = 2.0


def detector_options(settings: Settings) -> dict[str, Any]:
    d = settings.detect
    return {
        "autoscaling_config": {
            "min_replicas": d.min_replicas,
            "initial_replicas": max(1, d.min_replicas),
            "max_replicas": max(d.max_replicas, d.min_replicas),
            "target_ongoing_requests": DETECT_TARGET_ONGOING,
            "upscale_delay_s": d.upscale_delay_s,
            "downscale_delay_s": d.downscale_delay_s,
        },
        "ray_actor_options": {"num_cpus": d.num_cpus},
        "max_ongoing_requests": d.max_ongoing_requests,
        "graceful_shutdown_timeout_s": 5.0,
        # One access-log line per frame (80/s at 16 cameras) was 10 % of a replica's Python time;
        # per-camera rates and errors are in the cameras' health and the metrics instead.
        "logging_config": {"enable_access_log": False},
    }


def classifier_deployment_options(settings: Settings) -> dict[str, Any]:
    from pipeline.classify.deployment import classifier_options

    c = settings.classify
    options = dict(classifier_options(settings))
    options["autoscaling_config"] = {
        "min_replicas": c.min_replicas,
        # Start with one replica: a backlog left from before a restart must be drained.
        "initial_replicas": max(1, c.min_replicas),
        "max_replicas": max(c.max_replicas, c.min_replicas),
        "upscale_delay_s": c.upscale_delay_s,
        "downscale_delay_s": c.downscale_delay_s,
        "policy": {
            "policy_function": POLICY_PATH,
            "policy_kwargs": {"target_lag_per_replica": c.target_lag_per_replica},
        },
    }
    return options


def ingress_options(_settings: Settings) -> dict[str, Any]:
    return {"num_replicas": 1, "ray_actor_options": {"num_cpus": INGRESS_NUM_CPUS}, "max_ongoing_requests": 64}


def build_app(settings: Settings) -> Application:
    """Bind the three deployments into one application.

    Args:
        settings: The settings tree with ``redis.url`` resolved (the stack starts the
            embedded Redis first and fills it in).

    Raises:
        ConfigError: ``redis.url`` is unset.
    """
    if not settings.redis.url:
        raise ConfigError("build_app needs settings.redis.url; start or configure Redis first")
    # Imported here: these pull in onnxruntime/torch, which `emotionpipe --help` must not pay for.
    from pipeline.api.ingress import ApiIngress
    from pipeline.classify.deployment import EmotionClassifier
    from pipeline.detect.deployment import FaceDetector

    # @serve.deployment turns the classes into Deployment objects; mypy only sees the classes.
    detector = FaceDetector.options(**detector_options(settings)).bind(settings)  # type: ignore[attr-defined]
    classifier = EmotionClassifier.options(  # type: ignore[attr-defined]
        **classifier_deployment_options(settings)
    ).bind(settings)
    # The ingress receives both handles: that is what makes them part of the application.
    app: Application = ApiIngress.options(  # type: ignore[attr-defined]
        **ingress_options(settings)
    ).bind(settings, detector, classifier)
    return app
