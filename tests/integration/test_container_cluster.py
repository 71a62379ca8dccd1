"""The cluster profile for real: the image built with podman and checked inside (CLI, Serve entry
points, the shipped model on a photo), then Redis + a Ray head + two Ray workers in
containers (``deploy/containers.py``, what ``make cluster-up`` runs), serve-cluster.yaml deployed.

One scenario, in order, on one cluster: RTSP cameras on the host give faces with the right dominant
emotion; readers and replicas run on several nodes; a worker container is killed mid-stream (its
readers are re-adopted elsewhere, classification resumes, and every accepted face is accounted
for); the killed node rejoins and gets readers again; Redis is restarted and the registry and the
aggregates survive. Skipped, with the reason, where podman cannot run containers.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.bench.camera_sim import RtspServer
from pipeline.store.redis_store import RedisStore
from tests.support.net import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("containers", REPO / "deploy" / "containers.py")
assert _spec is not None and _spec.loader is not None
containers = importlib.util.module_from_spec(_spec)
sys.modules["containers"] = containers
_spec.loader.exec_module(containers)

# Clips every shipped model reads as their intended emotion (the model card's CREMA-D table).
CAMERAS = {"happy-1": "1001_DFA_HAP_XX.mp4", "happy-2": "1001_DFA_HAP_XX.mp4", "neutral": "1001_DFA_NEU_XX.mp4"}


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, containers.PodmanError, OSError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def image() -> str:
    reason = containers.containers_refused()
    if reason:
        print(f"SKIP container tests: {reason}")
        pytest.skip(reason)
    if not containers.image_is_current():
        # Progress shows in the CI log: the first build takes a couple of minutes.
        subprocess.run([sys.executable, str(REPO / "deploy" / "containers.py"), "image"], check=True)
    return str(containers.IMAGE)


def test_image_runs_the_cli_the_serve_entry_points_and_the_shipped_model(image: str, shared_media: Path) -> None:
    # Inside the image, offline: --help, the Serve entry points import, and a photo goes through
    # the shipped detector and classifier.
    result = containers.smoke(shared_media / "images" / "single_face.jpg")
    assert result["model"] == "emonet-m@1"
    assert [face["label"] for face in result["faces"]] == ["happy"]


@pytest.fixture(scope="module")
def cluster(image: str, shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = containers.cluster_up(free_port())
    log = tmp_path_factory.mktemp("cluster") / "rtsp.log"
    clips = shared_media / "video" / "cremad"
    # Cameras live on the host; containers reach it at the network's gateway (not loopback).
    rtsp = RtspServer(free_port(), {name: clips / clip for name, clip in CAMERAS.items()}, log,
                      host=containers.GATEWAY)
    rtsp.start()
    store = RedisStore.from_url(f"redis://:{state['redis_password']}@{containers.REDIS.ip}:6379/0")
    try:
        yield {"state": state, "rtsp": rtsp, "store": store,
               "api": httpx.Client(base_url=state["api_url"], timeout=10,
                                   headers={"Authorization": f"Bearer {state['token']}"})}
    finally:
        store.close()
        rtsp.stop()
        containers.cluster_down()


def actors_by_node() -> dict[str, list[str]]:
    """Alive actors' class names per node IP, as the head's state API lists them (`ray list actors`)."""
    code = (
        "import json, ray; from ray.util.state import list_actors, list_nodes; ray.init(address='auto', "
        "logging_level='ERROR'); ips = {n.node_id: n.node_ip for n in list_nodes()}; out = {}\n"
        "for a in list_actors(filters=[('state', '=', 'ALIVE')], limit=1000):\n"
        "    out.setdefault(ips.get(a.node_id, '?'), []).append(a.class_name)\n"
        "print(json.dumps(out))"
    )
    out = containers.podman("exec", containers.HEAD.name, "python", "-c", code, capture=True, timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def readers_on(node_ip: str) -> int:
    return actors_by_node().get(node_ip, []).count("StreamReader")


def summary(api: httpx.Client, camera: str, window: str = "60") -> dict[str, Any]:
    return api.get(f"/cameras/{camera}/summary", params={"window": window}).raise_for_status().json()


def totals(store: RedisStore) -> dict[str, int]:
    counters = [store.get_counters(c) for c in CAMERAS]
    return {k: sum(c.get(k, 0) for c in counters) for k in ("published", "classified", "dead_letter")}


def test_cluster_of_containers_survives_a_lost_node_and_a_redis_restart(cluster: dict[str, Any]) -> None:
    api, rtsp, store = cluster["api"], cluster["rtsp"], cluster["store"]
    workers = {w.ip: w for w in containers.WORKERS}

    # Given RTSP cameras registered through the API of the container cluster
    for name in CAMERAS:
        api.post("/cameras", json={"id": name, "url": rtsp.url(name), "fps": 5}).raise_for_status()
    # then faces arrive with the dominant emotion of each clip,
    wait_for("happy faces", lambda: all(summary(api, c)["dominant"] == "happy" and summary(api, c)["faces"] >= 10
                                        for c in ("happy-1", "happy-2")), 180)
    wait_for("a neutral camera read as neutral", lambda: summary(api, "neutral")["dominant"] == "neutral", 120)
    # and readers and Serve replicas run on more than one node.
    placement = actors_by_node()
    reader_nodes = {ip for ip, names in placement.items() if "StreamReader" in names}
    replica_nodes = {ip for ip, names in placement.items() if any(n.startswith("ServeReplica") for n in names)}
    assert len(reader_nodes) >= 2 and len(replica_nodes) >= 2, placement

    # When the worker with the most readers is killed mid-stream
    victim_ip = max(workers, key=lambda ip: placement.get(ip, []).count("StreamReader"))
    assert readers_on(victim_ip) >= 1
    before_kill = {c: summary(api, c, "3600")["faces"] for c in CAMERAS}
    containers.podman("kill", workers[victim_ip].name, capture=True)
    killed_at = time.time()
    # then its readers are re-adopted on the surviving nodes: every camera is live again, its
    # health written by a reader that is not on the dead node,
    wait_for("every camera read again", lambda: all(
        (h := store.get_health(c)).get("state") == "live" and float(h.get("updated_at", 0)) > killed_at + 5
        for c in CAMERAS), 180)
    assert readers_on(victim_ip) == 0
    # classification resumes on every camera,
    wait_for("faces after the kill", lambda: all(summary(api, c, "3600")["faces"] > before_kill[c] + 10
                                                 for c in CAMERAS), 180)
    # and nothing accepted was lost: once the cameras are paused and the queue drained, every
    # published face was classified (counted once) or dead-lettered.
    for name in CAMERAS:
        api.post(f"/cameras/{name}/pause").raise_for_status()
    wait_for("the faces queue to drain", lambda: store.queue_lag() == 0, 120)
    time.sleep(3)  # a reader's last in-flight frame may still publish after the pause is seen
    wait_for("the faces queue to drain", lambda: store.queue_lag() == 0, 60)
    counted = totals(store)
    assert counted["published"] > 0
    assert counted["published"] == counted["classified"] + counted["dead_letter"], counted

    # When the killed node comes back (a fresh container, a new raylet joining the head)
    containers.start_worker(workers[victim_ip])
    wait_for("three alive Ray nodes", lambda: len(containers.alive_ray_nodes()) == 3, 120)
    # then it gets work again: resumed and new cameras spread their readers onto it.
    for name in CAMERAS:
        api.post(f"/cameras/{name}/resume").raise_for_status()
    for i in range(3):
        api.post("/cameras", json={"id": f"extra-{i}", "url": rtsp.url("neutral"), "fps": 2}).raise_for_status()
    wait_for("a reader on the rejoined node", lambda: readers_on(victim_ip) >= 1, 120)

    # When Redis restarts (AOF on its volume)
    faces_before = {c: summary(api, c, "3600")["faces"] for c in CAMERAS}
    registered = {c["id"] for c in api.get("/cameras").raise_for_status().json()}
    containers.podman("restart", "-t", "5", containers.REDIS.name, capture=True)
    # then the registry and the aggregates are still there, and counting goes on.
    wait_for("the API ready again", lambda: api.get("/readyz").status_code == 200, 120)
    assert {c["id"] for c in api.get("/cameras").raise_for_status().json()} == registered
    after = {c: summary(api, c, "3600")["faces"] for c in CAMERAS}
    assert all(after[c] >= faces_before[c] for c in CAMERAS), (faces_before, after)
    # Within seconds: with a new MAC behind Redis's fixed IP (podman's default on restart), stale
    # ARP entries made every client time out for ~40 s, > 2 min for some.
    wait_for("faces after the Redis restart",
             lambda: summary(api, "happy-1", "3600")["faces"] > faces_before["happy-1"] + 5, 30)
