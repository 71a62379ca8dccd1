"""The optional deepface backend for real: DeepFace's own network, random weights, real crops.

DeepFace downloads its weights on first use and the backend must never let it. So each test
points DEEPFACE_HOME at a temporary folder, builds the emotion network of the engine DeepFace
runs on (pytorch and onnx here, both without tensorflow; the Keras network when tensorflow is
installed), saves random weights where the backend looks for them, and classifies faces that the
pipeline's detector cropped from a real photo through the classifier interface the consumer and
offline analysis use. Any download attempt fails the test.

Random weights cannot say whether a face is happy; what is checked is that the backend feeds
DeepFace's network exactly what DeepFace itself feeds it, and plugs into the pipeline.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip(
    "deepface", reason="the deepface extra is not installed (make venv installs it; see pyproject.toml)"
)

from deepface.commons import backend_utils, weight_utils  # noqa: E402
from deepface.modules import modeling  # noqa: E402

from pipeline.classify.backends import ClassifierBackend, create_backend  # noqa: E402
from pipeline.classify.deepface_backend import DeepFaceEngine, deepface_engine, weights_file  # noqa: E402
from pipeline.classify.deployment import ClassifierWorker  # noqa: E402
from pipeline.classify.exceptions import BackendLoadError  # noqa: E402
from pipeline.contracts import LABELS, FaceCrop  # noqa: E402
from pipeline.detect.analyze import analyze_paths  # noqa: E402
from pipeline.detect.detector import DetectionStage  # noqa: E402
from pipeline.settings import ClassifySettings, DetectSettings, Settings  # noqa: E402
from pipeline.store.redis_store import RedisStore  # noqa: E402

DEEPFACE = ClassifySettings(backend="deepface")
PHOTO = "images/multi_face.jpg"
ENGINES = ["pytorch", "onnx", "tensorflow"]


def _no_download(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"deepface tried to download at run time: {args} {kwargs}")


@pytest.fixture()
def deepface_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DEEPFACE_HOME, DeepFace's per-process caches emptied, downloads forbidden."""
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    # DeepFace picks its engine once per process and keeps every model it built: start afresh so
    # each test builds from its own weights (monkeypatch puts both back afterwards).
    monkeypatch.setattr(backend_utils, "_backend_engine", None)
    monkeypatch.setattr(modeling, "cached_models", {task: {} for task in modeling.AVAILABLE_MODELS}, raising=False)
    monkeypatch.setattr(weight_utils, "ensure_source_is_reachable", _no_download)
    monkeypatch.setattr(weight_utils.gdown, "download", _no_download)
    weights = tmp_path / ".deepface" / "weights"
    weights.mkdir(parents=True)
    return weights


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, deepface_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each DeepFace engine in turn, pinned with DeepFace's own variable."""
    name = str(request.param)
    if name == "tensorflow" and importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed: DeepFace's Keras engine is optional (pytorch and onnx run here)")
    monkeypatch.setenv(backend_utils.BACKEND_ENGINE_ENV_VAR, name)
    return name


@pytest.fixture(scope="module")
def detector() -> DetectionStage:
    return DetectionStage(DetectSettings())


@pytest.fixture(scope="module")
def photo_crops(shared_media: Path, detector: DetectionStage) -> np.ndarray:
    """Faces the pipeline's detector aligned and cropped from a real group photo."""
    frame = cv2.imread(str(shared_media / PHOTO), cv2.IMREAD_COLOR)
    crops = detector.crops(frame, detector.detect_frame(frame))
    assert len(crops) >= 2, "the group photo should hold several faces"
    return crops


def write_random_weights(engine: str, path: Path) -> None:
    """Build DeepFace's emotion network for ``engine`` and save it, randomly initialised, at ``path``.

    He-normal weights and zero biases: the frameworks' default initialisations give this network
    near-uniform outputs that barely depend on the face, which would hide a preprocessing error.
    """
    if engine == "tensorflow":
        from deepface import DeepFace  # noqa: F401 - selects legacy Keras before tensorflow loads
        from deepface.models.demography.tf import Emotion as tf_emotion

        # load_model() builds the Keras network and then fetches and loads its weights: skip both.
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(weight_utils, "download_weights_if_necessary", lambda **_: str(path))
            mp.setattr(weight_utils, "load_model_weights", lambda model, weight_file: model)
            model = tf_emotion.load_model()
        rng = np.random.default_rng(0)
        for layer in model.layers:
            if layer.get_weights():
                kernel, bias = layer.get_weights()
                fan_in = int(np.prod(kernel.shape[:-1]))
                layer.set_weights([rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape), np.zeros_like(bias)])
        model.save_weights(str(path))
        return

    import torch
    from deepface.models.demography.pytorch.Emotion import base_model

    torch.manual_seed(0)
    net = base_model().eval()
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight)
            torch.nn.init.zeros_(module.bias)
    if engine == "pytorch":
        torch.save(net.state_dict(), path)
        return

    class ChannelsLast(torch.nn.Module):
        # DeepFace's onnx graphs take channels-last faces, like its tensorflow models.
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.permute(0, 3, 1, 2))

    torch.onnx.export(
        ChannelsLast().eval(), (torch.zeros(1, 48, 48, 1),), str(path), input_names=["x"], output_names=["probs"],
        dynamic_axes={"x": {0: "n"}, "probs": {0: "n"}}, dynamo=False,
    )


def deepface_reference(client: object, crops: np.ndarray) -> np.ndarray:
    """What DeepFace's own predict() makes of the faces, given as the BGR [0, 1] images it expects."""
    bgr = np.repeat(crops.astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    return np.asarray(client.predict(bgr), dtype=np.float32)  # type: ignore[attr-defined]


def test_missing_weights_are_refused_not_downloaded(engine: str, deepface_home: Path) -> None:
    # Given an empty DEEPFACE_HOME
    # When the backend is built, then it refuses with the file it needs and where it must go
    with pytest.raises(BackendLoadError, match="never downloads") as info:
        create_backend(DEEPFACE)
    assert str(deepface_home / weights_file(engine).name) in str(info.value)
    # and nothing was fetched
    assert list(deepface_home.iterdir()) == []


def test_real_crops_are_classified_as_deepface_does(
    engine: str, deepface_home: Path, photo_crops: np.ndarray, detector: DetectionStage, shared_media: Path
) -> None:
    # Given DeepFace's network for this engine with random weights where the backend looks
    assert deepface_engine() == engine
    write_random_weights(engine, weights_file(engine))
    # When the registry builds the backend settings name
    backend = create_backend(DEEPFACE)
    assert isinstance(backend, DeepFaceEngine) and isinstance(backend, ClassifierBackend)
    assert (backend.name, backend.runtime) == ("deepface-emotion@1", f"deepface/{engine}")
    probs = backend.predict(photo_crops)

    # Then each face gets a distribution over the pipeline's labels,
    assert probs.shape == (len(photo_crops), len(LABELS)) and np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # the one DeepFace's own predict() gives for the same faces (same scaling, layout and order),
    np.testing.assert_allclose(probs, deepface_reference(backend._client, photo_crops), rtol=1e-4, atol=1e-6)
    # random weights still tell these faces apart (the crops reach the network),
    assert np.ptp(probs, axis=0).max() > 0.01
    # batches of one and of none keep their shape,
    np.testing.assert_allclose(backend.predict(photo_crops[:1]), probs[:1], rtol=1e-4, atol=1e-6)
    assert backend.predict(photo_crops[:0]).shape == (0, len(LABELS))
    # and the offline analysis path labels every detected face with it.
    (result,) = analyze_paths([shared_media / PHOTO], detector, backend)
    assert result.error is None and result.model == "deepface-emotion@1"
    assert [f.label for f in result.faces] == [LABELS[i] for i in probs.argmax(axis=1)]


@pytest.fixture()
def store(redis_url: str) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_url, prefix="df:")
    yield s
    s.close()


def test_classifier_replica_serves_deepface_from_settings(
    deepface_home: Path, photo_crops: np.ndarray, redis_url: str, store: RedisStore
) -> None:
    # Given weights for the engine DeepFace picks here, and a worker whose settings name the backend
    engine = deepface_engine()
    write_random_weights(engine, weights_file(engine))
    settings = Settings(redis={"url": redis_url, "prefix": "df:"}, classify={"backend": "deepface", "block_ms": 10})
    worker = ClassifierWorker(settings, consumer_name="df-1")
    try:
        store.ensure_group()
        store.publish_faces([
            FaceCrop(camera_id="cam1", frame_id=i, ts=time.time(), face_idx=0, bbox=(0, 0, 48, 48), det_score=0.9,
                     crop=face.tobytes(), crop_shape=(48, 48), track_id=i)
            for i, face in enumerate(photo_crops)
        ])
        # When its consumer runs one batch off the faces stream
        assert worker.consumer.run_once() == len(photo_crops)
        # Then DeepFace's results are recorded under its model tag, and the replica says what serves
        results = store.recent_results("cam1", 50)
        assert len(results) == len(photo_crops) and {r.model for r in results} == {"deepface-emotion@1"}
        assert worker.stats()["runtime"] == f"deepface/{engine}"
    finally:
        worker.store.close()
