"""The classifier backend registry, its fake backend and the classify settings that pick one."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import get_args

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.classify.backends import ClassifierBackend, FakeBackend, available_backends, create_backend
from pipeline.classify.deployment import ClassifierWorker
from pipeline.classify.engine import RUNTIMES, EmotionEngine
from pipeline.classify.exceptions import (
    BackendLoadError,
    ClassifyError,
    StaleInt8Model,
    UnknownBackend,
    UnknownModel,
    WeightsError,
)
from pipeline.contracts import LABELS, FaceCrop
from pipeline.exceptions import ConfigError, ModelError, PipelineError
from pipeline.settings import ClassifierBackendType, ClassifierRuntime, ClassifySettings, Settings, load_settings
from pipeline.store.redis_store import RedisStore

FAKE = ClassifySettings(backend="fake")


def test_settings_name_exactly_the_registered_backends_and_runtimes() -> None:
    # Given the Literal types settings validate against, then they match what the code serves
    assert sorted(get_args(ClassifierBackendType)) == available_backends()
    assert RUNTIMES == get_args(ClassifierRuntime)


def test_unknown_names_are_refused_when_settings_are_read() -> None:
    # When a backend or runtime is misspelt, then the settings tree refuses it at start-up
    with pytest.raises(ValidationError, match="backend"):
        ClassifySettings(backend="emonett")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="runtime"):
        ClassifySettings(runtime="onnx-int4")  # type: ignore[arg-type]
    # and a name that bypassed validation is still refused by the registry, as a config error
    with pytest.raises(UnknownBackend, match="known: deepface, emonet, fake") as info:
        create_backend(ClassifySettings.model_construct(backend="nope"))  # type: ignore[arg-type]
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ClassifyError)


def test_every_load_failure_is_a_model_error() -> None:
    # Commands that load a classifier or a detector catch ModelError for all of them.
    for cls in (UnknownModel, WeightsError, StaleInt8Model, BackendLoadError):
        assert issubclass(cls, ModelError) and issubclass(cls, ClassifyError) and issubclass(cls, PipelineError)


def test_fake_backend_is_deterministic_and_checks_its_input() -> None:
    # Given the fake backend built through the registry
    fake = create_backend(FAKE)
    assert isinstance(fake, FakeBackend) and isinstance(fake, ClassifierBackend)
    # When it classifies a bright, a dark and no face
    probs = fake.predict(np.stack([np.full((48, 48), 200, np.uint8), np.full((48, 48), 30, np.uint8)]))
    # Then bright is happy, dark is sad, rows are distributions, and an empty batch is (0, 7)
    assert [LABELS[i] for i in probs.argmax(axis=1)] == ["happy", "sad"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert fake.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, len(LABELS))
    # and crops of the wrong size fail as they would on a real backend
    with pytest.raises(ValueError, match="48, 48"):
        fake.predict(np.zeros((1, 64, 64), np.uint8))


def test_emonet_is_the_default_backend() -> None:
    # Given default settings, when the registry builds the backend, then it is the shipped emonet model
    engine = create_backend(ClassifySettings())
    assert isinstance(engine, EmotionEngine) and isinstance(engine, ClassifierBackend)
    assert (engine.name, engine.runtime) == ("emonet-m@1", "onnx-int8/cpu")


def test_importing_the_registry_loads_no_inference_library() -> None:
    # The API process and the fake backend's tests must not pay for torch or onnxruntime.
    code = (
        "import sys; import pipeline.classify.backends as b; b.create_backend(b.ClassifySettings(backend='fake')); "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'deepface', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_force_cuda_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the variable that replaced EP_FORCE_CUDA
    monkeypatch.setenv("EP_CLASSIFY__FORCE_CUDA", "true")
    settings = load_settings().classify
    assert settings.force_cuda is True
    # When the engine loads where no GPU is visible, then it still serves on CPU
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the CPU fallback cannot be observed here")
    assert EmotionEngine.load(settings.model_copy(update={"model": "emonet-t"})).runtime == "onnx-int8/cpu"


def test_worker_serves_the_backend_settings_name(redis_url: str) -> None:
    # Given a classifier worker whose settings pick the fake backend (no engine injected)
    settings = Settings(redis={"url": redis_url, "prefix": "cb:"}, classify={"backend": "fake", "block_ms": 10})
    worker = ClassifierWorker(settings, consumer_name="fake-1")
    store = RedisStore.from_url(redis_url, prefix="cb:")
    try:
        store.ensure_group()
        crop = FaceCrop(camera_id="cam1", frame_id=1, ts=time.time(), face_idx=0, bbox=(0, 0, 48, 48),
                        det_score=0.9, crop=bytes([220]) * 48 * 48, crop_shape=(48, 48), track_id=1)
        store.publish_faces([crop])
        # When its consumer runs one batch
        assert worker.consumer.run_once() == 1
        # Then the result is the fake backend's, and the worker reports its model and runtime
        (result,) = store.recent_results("cam1", 5)
        assert result.model == "fake@1" and LABELS[int(np.argmax(result.probs))] == "happy"
        assert (worker.stats()["model"], worker.stats()["runtime"]) == ("fake@1", "fake/cpu")
    finally:
        store.close()
        worker.store.close()
