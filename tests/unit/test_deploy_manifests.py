"""deploy/ and k8s/ manifests: schemas, consistency with the code, and the app builder.

Offline and fast: Kubernetes built-in kinds against kubernetes-validate's bundled schemas,
KubeRay custom resources against the CRDs in ../shared/k8s-schemas (made strict, because the
API server silently prunes unknown fields of a CRD), Serve configs against Ray's own schema.
Building an application only binds deployments; no Ray cluster is started.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = REPO / "k8s"
CRD_DIR = REPO.parent / "shared" / "k8s-schemas"
K8S_VERSION = "1.32"
SERVE_CONFIGS = ("serve-local.yaml", "serve-cluster.yaml")
CRD_FILES = {"RayService": "ray.io_rayservices.yaml", "RayCluster": "ray.io_rayclusters.yaml"}


# --------------------------------------------------------------------------- helpers
def load_docs(path: Path) -> list[Any]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_objects(path: Path) -> list[dict[str, Any]]:
    """Kubernetes objects of a file; kustomizations and JSON-patch lists are not objects."""
    return [
        d for d in load_docs(path)
        if isinstance(d, dict) and "kind" in d and not d.get("apiVersion", "").startswith("kustomize.config.k8s.io")
    ]


def all_k8s_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(str(p.relative_to(REPO)), o) for p in sorted(K8S.rglob("*.yaml")) for o in k8s_objects(p)]


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema that rejects unknown properties (what pruning drops)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


_CRD_CACHE: dict[str, Any] = {}


def crd_validator(kind: str) -> Any:
    import jsonschema

    if kind not in _CRD_CACHE:
        path = CRD_DIR / CRD_FILES[kind]
        if not path.is_file():
            pytest.skip(f"KubeRay CRD schema not found at {path}")
        # The CRDs are ~1 MB each: the C loader parses them in a fraction of the pure-Python time.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        crd = yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schema = strict(version["schema"]["openAPIV3Schema"])
        _CRD_CACHE[kind] = jsonschema.Draft7Validator(schema)
    return _CRD_CACHE[kind]


def validate_builtin(obj: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def validate_custom(obj: dict[str, Any]) -> None:
    """CRD schema (strict) + every embedded pod template as a strict built-in PodTemplate."""
    errors = sorted(crd_validator(obj["kind"]).iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
    for where, template in pod_templates(obj):
        try:
            validate_builtin({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template})
        except Exception as exc:
            raise AssertionError(f"{where}: {exc}") from exc


def pod_templates(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    cluster = obj["spec"]["rayClusterConfig"] if obj["kind"] == "RayService" else obj["spec"]
    out = [("head", cluster["headGroupSpec"]["template"])]
    out += [(f"worker {g['groupName']}", g["template"]) for g in cluster.get("workerGroupSpecs", [])]
    return out


def validate_object(obj: dict[str, Any]) -> None:
    if obj["kind"] in CRD_FILES:
        validate_custom(obj)
    else:
        validate_builtin(obj)


def apply_json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """Minimal RFC 6902 (add/replace/remove), enough to render the overlays without kustomize."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            index = len(target) if last == "-" else int(last)
            if op["op"] == "add":
                target.insert(index, op["value"])
            elif op["op"] == "replace":
                target[index] = op["value"]
            else:
                del target[index]
        else:
            if op["op"] == "replace":
                assert last in target, f"replace of a missing path {op['path']}"
            if op["op"] == "remove":
                del target[last]
            else:
                target[last] = op["value"]
    return doc


def base_rayservice() -> dict[str, Any]:
    (obj,) = [o for o in k8s_objects(K8S / "base" / "rayservice.yaml") if o["kind"] == "RayService"]
    return obj


def overlay_rayservice(overlay: str) -> dict[str, Any]:
    """The overlay's RayService: the base with the overlay's JSON patch files applied."""
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    obj = base_rayservice()
    for patch in kustomization.get("patches", []):
        if patch.get("target", {}).get("kind") == "RayService":
            obj = apply_json_patch(obj, yaml.safe_load((K8S / "overlays" / overlay / patch["path"]).read_text()))
    return obj


@pytest.fixture()
def no_ep_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read EP_* variables: take the developer's out of the picture."""
    import os

    for name in list(os.environ):
        if name.startswith("EP_"):
            monkeypatch.delenv(name)


# --------------------------------------------------------------------------- (a)+(b) schemas
@pytest.mark.parametrize("where,obj", all_k8s_objects(), ids=lambda v: v if isinstance(v, str) else v.get("kind"))
def test_every_manifest_validates(where: str, obj: dict[str, Any]) -> None:
    # Given one Kubernetes object from a file under k8s/
    # Then it validates strictly against its schema (built-in kind or KubeRay CRD)
    validate_object(obj)


def test_manifest_set_is_complete() -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for _, o in all_k8s_objects()}
    assert {("RayService", "emotionpipe"), ("StatefulSet", "redis"), ("Service", "redis"),
            ("ConfigMap", "redis-config"), ("ConfigMap", "emotionpipe-config"),
            ("Secret", "emotionpipe-secrets"), ("Ingress", "emotionpipe-api")} <= kinds


def test_validators_reject_broken_manifests() -> None:
    # Given manifests with a typo'd field / a wrong type
    rs = base_rayservice()
    rs["spec"]["rayClusterConfig"]["enableInTreeAutoScaling"] = True  # wrong case: pruned by the API server
    with pytest.raises(AssertionError):
        validate_custom(rs)
    rs = base_rayservice()
    rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(AssertionError):
        validate_custom(rs)
    (sts,) = [o for o in k8s_objects(K8S / "base" / "redis.yaml") if o["kind"] == "StatefulSet"]
    sts["spec"]["replica"] = 1
    with pytest.raises(Exception):
        validate_builtin(sts)


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_overlay_rayservice_validates(overlay: str) -> None:
    obj = overlay_rayservice(overlay)
    validate_custom(obj)
    assert obj["apiVersion"] == "ray.io/v1"
    assert obj["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True


def test_gpu_overlay_has_gpu_group_and_settings() -> None:
    obj = overlay_rayservice("gpu")
    groups = {g["groupName"]: g for g in obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    container = groups["gpu"]["template"]["spec"]["containers"][0]
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    kustomization = yaml.safe_load((K8S / "overlays" / "gpu" / "kustomization.yaml").read_text())
    (cm_patch,) = [yaml.safe_load(p["patch"]) for p in kustomization["patches"] if "patch" in p]
    assert cm_patch["data"] == {"EP_CLASSIFY__NUM_GPUS": "1", "EP_CLASSIFY__BATCH_SIZE": "512"}


def test_dev_overlay_has_one_small_cpu_worker() -> None:
    obj = overlay_rayservice("dev")
    (group,) = obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 1


def test_ray_pods_get_settings_and_redis_url_from_secret() -> None:
    for overlay in ("dev", "gpu"):
        for where, template in pod_templates(overlay_rayservice(overlay)):
            container = template["spec"]["containers"][0]
            env = {e["name"]: e for e in container["env"]}
            assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "emotionpipe-secrets", where
            assert "$(REDIS_PASSWORD)" in env["EP_REDIS__URL"]["value"], where
            # $(VAR) expands only for variables defined earlier in the list.
            names = [e["name"] for e in container["env"]]
            assert names.index("REDIS_PASSWORD") < names.index("EP_REDIS__URL"), where
            assert container["envFrom"] == [{"configMapRef": {"name": "emotionpipe-config"}}], where
            # every pod may host the API ingress replica, so every pod gets the token file
            token_file = env["EP_API__TOKEN_FILE"]["value"]
            mounts = {m["name"]: m for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            assert token_file.startswith(mounts["api-tokens"]["mountPath"] + "/"), where
            assert mounts["api-tokens"]["readOnly"] is True, where
            assert volumes["api-tokens"]["secret"]["secretName"] == "emotionpipe-api-tokens", where


def test_configmap_keys_are_known_settings(no_ep_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the EP_* ConfigMap of the base with the gpu overlay's changes
    from pipeline.settings import load_settings

    (cm,) = [o for o in k8s_objects(K8S / "base" / "configmap.yaml")]
    data = dict(cm["data"])
    data.update({"EP_CLASSIFY__NUM_GPUS": "1", "EP_CLASSIFY__BATCH_SIZE": "512"})
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    # Then the settings tree accepts every key (extra="forbid" would reject a typo)
    settings = load_settings()
    assert settings.classify.num_gpus == 1 and settings.classify.batch_size == 512


def test_redis_is_persistent_and_password_protected() -> None:
    objs = {o["kind"]: o for o in k8s_objects(K8S / "base" / "redis.yaml")}
    conf = objs["ConfigMap"]["data"]["redis.conf"].splitlines()
    assert "appendonly yes" in conf
    sts = objs["StatefulSet"]
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data", "/etc/redis"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_kustomize_renders_valid_manifests(overlay: str) -> None:
    # Given the overlay rendered by kustomize (kubectl's built-in copy)
    out = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    objs = [d for d in yaml.safe_load_all(out) if d]
    # Then every object validates and lands in the emotionpipe namespace
    for obj in objs:
        validate_object(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "emotionpipe"
    (rs,) = [o for o in objs if o["kind"] == "RayService"]
    assert rs == {**overlay_rayservice(overlay), "metadata": rs["metadata"]}


# --------------------------------------------------------------------------- (c)+(d) Serve configs
def serve_config(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text())
    return loaded


def test_rayservice_embeds_the_cluster_serve_config() -> None:
    embedded = yaml.safe_load(base_rayservice()["spec"]["serveConfigV2"])
    assert embedded == serve_config("serve-cluster.yaml")


@pytest.mark.parametrize("name", SERVE_CONFIGS)
def test_serve_config_matches_ray_schema(name: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(serve_config(name))
    assert [a.name for a in schema.applications] == ["emotionpipe", "emotionpipe-cameras"]
    app = schema.applications[0]
    assert app.route_prefix == "/" and app.import_path == "pipeline.serve_config:app_builder"
    assert schema.applications[1].route_prefix is None


def test_ray_schema_rejects_external_scaler_with_autoscaling() -> None:
    # The alternative to the custom policy (deploy/README.md) cannot keep autoscaling_config.
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    config = serve_config("serve-cluster.yaml")
    config["applications"][0]["external_scaler_enabled"] = True
    with pytest.raises(ValidationError, match="external_scaler_enabled"):
        ServeDeploySchema.model_validate(config)


def _code_options(settings: Any) -> dict[str, dict[str, Any]]:
    from pipeline.serve_app import classifier_deployment_options, detector_options, ingress_options

    return {
        "FaceDetector": detector_options(settings),
        "EmotionClassifier": classifier_deployment_options(settings),
        "ApiIngress": ingress_options(settings),
    }


@pytest.mark.parametrize("name", SERVE_CONFIGS)
def test_serve_config_deployments_equal_code_options(name: str, no_ep_env: None) -> None:
    # Given a profile's args turned into settings the way app_builder does
    from pipeline.serve_config import settings_from_args

    app, cameras = serve_config(name)["applications"]
    args = {"redis": {"url": "redis://test:6379/0"}, **app["args"]}
    settings = settings_from_args(args)
    code = _code_options(settings)
    # Then every option the config sets equals what the code derives (the config overrides code)
    assert {d["name"] for d in app["deployments"]} == set(code)
    for deployment in app["deployments"]:
        expected = code[deployment["name"]]
        for key, value in deployment.items():
            if key != "name":
                assert value == expected[key], f"{name} {deployment['name']}.{key}"
    # And the classifier's resources are left to the settings in the cluster profile only (GPU overlay)
    classifier = next(d for d in app["deployments"] if d["name"] == "EmotionClassifier")
    assert ("ray_actor_options" in classifier) == (name == "serve-local.yaml")
    # And both applications see the same settings
    assert {k: v for k, v in cameras["args"].items() if k != "loop_files"} == app["args"]


@pytest.mark.parametrize("name", SERVE_CONFIGS)
def test_serve_config_queue_limits_are_consistent(name: str) -> None:
    for d in serve_config(name)["applications"][0]["deployments"]:
        auto = d.get("autoscaling_config", {})
        assert d["max_ongoing_requests"] >= auto.get("target_ongoing_requests", 1), d["name"]
        if auto:
            assert auto["min_replicas"] <= auto["initial_replicas"] <= auto["max_replicas"], d["name"]


def test_cluster_classifier_gets_gpus_from_env(no_ep_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the gpu overlay's environment and the cluster profile's args
    from pipeline.serve_config import settings_from_args

    monkeypatch.setenv("EP_REDIS__URL", "redis://:pw@redis:6379/0")
    monkeypatch.setenv("EP_CLASSIFY__NUM_GPUS", "1")
    monkeypatch.setenv("EP_CLASSIFY__BATCH_SIZE", "512")
    settings = settings_from_args(serve_config("serve-cluster.yaml")["applications"][0]["args"])
    # Then the classifier replicas reserve a GPU (and the args still shape the CPUs)
    options = _code_options(settings)["EmotionClassifier"]
    assert options["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert settings.classify.batch_size == 512


# --------------------------------------------------------------------------- (e) app builder
def test_app_builder_builds_from_local_profile_args(no_ep_env: None) -> None:
    from ray.serve import Application

    from pipeline.serve_config import app_builder, cameras_builder

    local = serve_config("serve-local.yaml")["applications"]
    # When the builders get the local profile's args (they carry a Redis URL)
    app = app_builder(local[0]["args"])
    cameras = cameras_builder(local[1]["args"])
    # Then they bind applications (no Ray cluster involved)
    assert isinstance(app, Application) and isinstance(cameras, Application)
    assert app._bound_deployment.name == "ApiIngress"
    assert cameras._bound_deployment.name == "CameraSupervisor"
    init_args: tuple[Any, ...] = tuple(cameras._bound_deployment.init_args)
    assert init_args[1] is True  # loop_files from the args


def test_app_builder_takes_redis_url_from_env(no_ep_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.serve import Application

    from pipeline.serve_config import app_builder

    monkeypatch.setenv("EP_REDIS__URL", "redis://:pw@redis:6379/0")
    app = app_builder(serve_config("serve-cluster.yaml")["applications"][0]["args"])
    assert isinstance(app, Application)
    settings = app._bound_deployment.init_args[0]
    assert settings.redis.url == "redis://:pw@redis:6379/0" and settings.detect.max_replicas == 8


@pytest.mark.parametrize("builder", ["app_builder", "cameras_builder"])
def test_builders_reject_missing_redis_url(builder: str, no_ep_env: None) -> None:
    import pipeline.serve_config as sc
    from pipeline.exceptions import ConfigError

    with pytest.raises(ConfigError, match="EP_REDIS__URL"):
        getattr(sc, builder)(serve_config("serve-cluster.yaml")["applications"][0]["args"])


def test_builder_rejects_unknown_args(no_ep_env: None) -> None:
    from pipeline.exceptions import ConfigError
    from pipeline.serve_config import app_builder

    with pytest.raises(ConfigError, match="invalid application args"):
        app_builder({"redis": {"url": "redis://x:1/0"}, "detect": {"max_replica": 3}})


def test_autoscaling_policy_path_is_importable_without_ray_cluster() -> None:
    # The Serve controller imports the policy by the path written in the configs.
    from ray._common.utils import import_attr

    for name in SERVE_CONFIGS:
        for d in serve_config(name)["applications"][0]["deployments"]:
            policy = d.get("autoscaling_config", {}).get("policy")
            if policy:
                cls = import_attr(policy["policy_function"])
                assert callable(cls(**policy["policy_kwargs"]))


def test_readme_documents_the_choice() -> None:
    text = (DEPLOY / "README.md").read_text()
    for needle in ("QueueLagPolicy", "external_scaler_enabled", "serve-cluster.yaml", "docker build"):
        assert needle in text
