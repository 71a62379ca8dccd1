#!/usr/bin/env python3
"""The container image and a multi-node Ray cluster of containers on one host, with podman.

    python3 deploy/containers.py base      # Debian root filesystem (mmdebstrap) -> the local base image
    python3 deploy/containers.py image     # deploy/Dockerfile on that base -> localhost/emotionpipe:<version>
    python3 deploy/containers.py smoke     # inside the image: CLI, Serve entry points, one crop classified
    python3 deploy/containers.py up        # Redis + Ray head + 2 Ray workers, Serve apps from serve-cluster.yaml
    python3 deploy/containers.py status | down

`make image`, `make cluster-up` and `make cluster-down` call it. Standard library only, so the
system python3 runs it before any virtualenv exists.

Why these choices (measured on the build machines, ../shared/ENVIRONMENT.md "Containers"):

* podman always gets ``--runtime runc`` (crun refuses a hybrid cgroup layout) and ulimits no
  higher than nofile 20000 / nproc 32768, as command-line flags (set through the environment
  they do not reach conmon, and ``run --rm`` hangs).
* No image registry is reachable there, so the base image is made from Debian packages with
  mmdebstrap: Python 3.11 in a venv owned by uid 1000 "ray" in /home/ray, the layout of
  ``rayproject/ray`` that the Dockerfile (and KubeRay) expect. It also carries ``redis-server``
  so the cluster's Redis container needs no registry either. Real clusters build FROM
  ``rayproject/ray:2.60.0-py311`` with the same Dockerfile (``--base``).
* The package registries are reached through the host's pip configuration (local wheel folders,
  an HTTPS gateway whose CA only the host's bundle holds): the build gets that configuration,
  the folders it names and the CA bundle as read-only volumes, never baked into a layer.
* The cluster runs on a podman network of its own with fixed addresses (podman's CNI backend
  here has no DNS plugin): each node has its own network namespace, so every node's Serve proxy
  binds :8000 as on Kubernetes, and only the head's is published on the host (127.0.0.1).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PODMAN = ["podman", "--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
BASE_IMAGE = "localhost/emotionpipe-base:bookworm"
UPSTREAM_BASE = "rayproject/ray:2.60.0-py311"
BASE_PACKAGES = "python3,python3-venv,ca-certificates,procps,redis-server"


def version() -> str:
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise SystemExit("no version in pyproject.toml")


IMAGE = f"localhost/emotionpipe:{version()}"


def say(message: str) -> None:
    print(f"[containers] {message}", flush=True)


class PodmanError(RuntimeError):
    """A podman command failed (its stderr's tail is the message)."""


def podman(*args: str, check: bool = True, capture: bool = False, timeout: float | None = None) -> str:
    proc = subprocess.run([*PODMAN, *args], check=False, text=True, timeout=timeout,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    if check and proc.returncode != 0:
        detail = (proc.stderr or "").strip()[-2000:] if capture else ""
        raise PodmanError(f"podman {' '.join(args[:3])} ... failed ({proc.returncode}) {detail}")
    return proc.stdout or ""


def image_exists(name: str) -> bool:
    return subprocess.run([*PODMAN, "image", "exists", name], check=False).returncode == 0


def containers_refused() -> str | None:
    """Why this machine cannot run containers, or None when it can (tests skip with the reason).

    Builds the base image first if it is missing (Debian packages, ~30 s).
    """
    for tool in ("podman", "runc", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (the Makefile's system-deps installs it)"
    build_base()
    proc = subprocess.run([*PODMAN, "run", "--rm", *ULIMITS, "--network", "none", BASE_IMAGE, "true"],
                          capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        return f"podman cannot run a container here: {proc.stderr.strip()[-300:]}"
    return None


# ------------------------------------------------------------------------------------------ images
def build_base(rebuild: bool = False) -> None:
    """The Debian base image (rayproject/ray's user and layout), from Debian packages."""
    if image_exists(BASE_IMAGE) and not rebuild:
        say(f"{BASE_IMAGE} exists (--rebuild to remake it)")
        return
    hooks = [
        'chroot "$1" useradd --create-home --uid 1000 --gid 100 --shell /bin/bash ray',
        'chroot "$1" python3 -m venv /home/ray/venv',
        'chroot "$1" chown -R 1000:100 /home/ray',
    ]
    with tempfile.TemporaryDirectory(prefix="ep-base-") as tmp:
        tar = Path(tmp, "base.tar")
        say(f"mmdebstrap bookworm ({BASE_PACKAGES}) ...")
        cmd = ["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}"]
        cmd += [f"--customize-hook={h}" for h in hooks]
        subprocess.run([*cmd, "bookworm", str(tar)], check=True)
        changes = ["ENV PATH=/home/ray/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "ENV HOME=/home/ray", "USER ray", "WORKDIR /home/ray"]
        podman("import", *[a for c in changes for a in ("--change", c)], str(tar), BASE_IMAGE)
    say(f"built {BASE_IMAGE}")


def source_digest() -> str:
    """Hash of everything the image is built from (what the Dockerfile copies, and itself)."""
    digest = hashlib.sha256()
    files = [REPO / "deploy" / "Dockerfile", REPO / "pyproject.toml", REPO / "README.md"]
    files += sorted(p for p in (REPO / "pipeline").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def image_is_current() -> bool:
    """True when the image exists and was built from the files as they are now."""
    if not image_exists(IMAGE):
        return False
    label = podman("image", "inspect", IMAGE, "--format", '{{index .Labels "emotionpipe.source"}}', capture=True)
    return label.strip() == source_digest()


@dataclass
class PipSetup:
    """The host's pip configuration as one file, and the local paths it refers to."""

    config: str
    paths: list[str] = field(default_factory=list)


def host_pip_setup() -> PipSetup:
    """Every pip setting in effect here (config files and PIP_* variables) merged into one pip.conf.

    Local paths it names (wheel folders, ``file://`` indexes, the constraint file, the CA bundle)
    are listed so the build can mount each one read-only at the same path.
    """
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                         check=False).stdout
    settings: dict[str, str] = {}
    for line in out.splitlines():  # e.g. "global.find-links='/opt/wheels'" or ":env:.cert='...'"
        key, _, value = line.partition("=")
        name = key.split(".", 1)[-1]
        if name and value:
            settings[name] = value.strip().strip("'")
    for var, value in os.environ.items():
        if var.startswith("PIP_") and var != "PIP_CONFIG_FILE":
            settings[var[4:].lower().replace("_", "-")] = value
    paths = set()
    for name in ("find-links", "extra-index-url", "index-url", "constraint", "cert"):
        for item in settings.get(name, "").split():
            local = Path(item.removeprefix("file://"))
            if local.is_absolute() and local.exists():
                # A file index's pages (<root>/simple/...) link to files beside them (<root>/files/...).
                paths.add(str(local.parent if local.name == "simple" else local))
    config = "[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(settings.items()))
    return PipSetup(config=config, paths=sorted(paths))


def build_image(base: str, torch_index: str | None) -> None:
    """``deploy/Dockerfile`` on ``base``; the host's pip setup handed in read-only."""
    if base == BASE_IMAGE:
        build_base()
    pip = host_pip_setup()
    with tempfile.TemporaryDirectory(prefix="ep-pip-") as tmp:
        conf = Path(tmp, "pip.conf")
        conf.write_text(pip.config)
        volumes = [f"{conf}:/etc/pip.conf:ro"] + [f"{p}:{p}:ro" for p in pip.paths]
        cmd = ["build", "-f", "deploy/Dockerfile", "--ignorefile", "deploy/Dockerfile.dockerignore",
               "--build-arg", f"BASE_IMAGE={base}", "--label", f"emotionpipe.source={source_digest()}",
               *ULIMITS, "-t", IMAGE]
        if torch_index is not None:
            cmd += ["--build-arg", f"TORCH_INDEX_URL={torch_index}"]
        for v in volumes:
            cmd += ["-v", v]
        say(f"building {IMAGE} FROM {base} (pip configuration and {len(pip.paths)} local folders mounted) ...")
        started = time.monotonic()
        subprocess.run([*PODMAN, *cmd, "."], check=True, cwd=REPO)
    size = podman("image", "inspect", IMAGE, "--format", "{{.Size}}", capture=True).strip()
    say(f"built {IMAGE} in {time.monotonic() - started:.0f} s ({int(size) / 1e9:.2f} GB)")


SMOKE = (
    "import pipeline.serve_config, pipeline.classify.autoscale, pipeline.api.ingress, pipeline.detect.deployment, "
    "pipeline.classify.deployment; print('entry points ok')"
)


def smoke(photo: Path) -> dict:
    """Inside the image: ``emotionpipe --help``, the Serve entry points, and ``emotionpipe analyze`` of a photo
    (the shipped detector and classifier, offline: the container has no network).

    Returns:
        The analysis of the photo (``emotionpipe analyze --json``'s entry for it).
    """
    run = ["run", "--rm", *ULIMITS, "--network", "none"]
    help_text = podman(*run, IMAGE, "emotionpipe", "--help", capture=True)
    if "train" not in help_text or "cameras" not in help_text:
        raise SystemExit(f"unexpected `emotionpipe --help` in the image:\n{help_text}")
    podman(*run, IMAGE, "python", "-c", SMOKE, capture=True)
    out = podman(*run, "-v", f"{photo.resolve()}:/tmp/{photo.name}:ro", IMAGE,
                 "emotionpipe", "analyze", f"/tmp/{photo.name}", "--json", capture=True)
    (result,) = json.loads(out)
    labels = [face["label"] for face in result.get("faces", [])]
    say(f"smoke: --help ok, Serve entry points import, {photo.name}: {len(labels)} face(s) {labels}")
    return result


# ------------------------------------------------------------------------------------------ cluster
NETWORK = "emotionpipe-cluster"
SUBNET = ipaddress.ip_network("10.89.77.0/24")
REDIS_VOLUME = "emotionpipe-redis"
STATE = REPO / ".ep-data" / "cluster.json"


@dataclass(frozen=True)
class Node:
    """One container of the cluster."""

    name: str
    host: int  # last octet of its address on NETWORK
    cpus: float  # cgroup CPU limit (fraction of the host's cores)
    ray_cpus: int = 0  # logical CPUs it offers Ray (0 = not a Ray node)
    memory: str = "3g"

    @property
    def ip(self) -> str:
        return str(SUBNET.network_address + self.host)

    @property
    def mac(self) -> str:
        """A fixed, locally administered MAC derived from the address.

        A restarted container keeps its IP but podman would give it a new MAC; the other nodes'
        (and the host's) ARP caches then send to the old one for up to a minute, so every
        connection to the restarted node times out meanwhile (measured: ~40 s of Redis
        "Timeout connecting" after `podman restart ep-redis`, > 2 min for some clients).
        """
        return "02:65:70:" + ":".join(f"{octet:02x}" for octet in ipaddress.ip_address(self.ip).packed[1:])


REDIS = Node("ep-redis", 10, cpus=0.3, memory="512m")
HEAD = Node("ep-head", 11, cpus=0.6, ray_cpus=2)
WORKERS = (Node("ep-worker-1", 12, cpus=0.6, ray_cpus=3), Node("ep-worker-2", 13, cpus=0.6, ray_cpus=3))
GATEWAY = str(SUBNET.network_address + 1)  # the host, as containers see it (cameras on the host listen here)


def load_state() -> dict[str, str]:
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def _ray_env(state: dict[str, str]) -> list[str]:
    env = {
        "EP_REDIS__URL": f"redis://:{state['redis_password']}@{REDIS.ip}:6379/0",
        "EP_API__TOKENS": json.dumps([state["token"]]),
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        **json.loads(state.get("extra_env", "{}")),
    }
    return [a for k, v in env.items() for a in ("-e", f"{k}={v}")]


def _run_node(node: Node, state: dict[str, str], command: list[str], extra: tuple[str, ...] = (),
              image: str = IMAGE) -> None:
    podman("run", "-d", "--name", node.name, "--network", NETWORK, "--ip", node.ip, "--mac-address", node.mac,
           "--hostname", node.name, *ULIMITS, "--cpus", str(node.cpus), "--memory", node.memory, "--shm-size", "512m",
           *_ray_env(state), *extra, image, *command, capture=True)


def ray_node_command(node: Node) -> list[str]:
    """``ray start`` for a node, in the foreground (the container lives as long as the raylet)."""
    common = ["ray", "start", "--block", "--num-cpus", str(node.ray_cpus), "--node-ip-address", node.ip,
              "--object-store-memory", str(300 * 1024**2), "--disable-usage-stats"]
    if node is HEAD:
        return [*common, "--head", "--port", "6379", "--include-dashboard", "true", "--dashboard-host", "0.0.0.0"]
    return [*common, "--address", f"{HEAD.ip}:6379"]


def start_worker(node: Node) -> None:
    """(Re)start a worker container: a fresh raylet that joins the head."""
    podman("rm", "-f", node.name, check=False, capture=True)
    _run_node(node, load_state(), ray_node_command(node))


def _wait(what: str, check, timeout_s: float, interval_s: float = 1.0):  # noqa: ANN001 - tiny local helper
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (PodmanError, OSError, subprocess.SubprocessError, ValueError) as exc:
            last = exc
        time.sleep(interval_s)
    raise SystemExit(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


def alive_ray_nodes() -> list[dict]:
    """Alive Ray nodes as the head's GCS sees them."""
    out = podman("exec", HEAD.name, "python", "-c",
                 "import json, ray; ray.init(address='auto', logging_level='ERROR'); "
                 "print(json.dumps([n for n in ray.nodes() if n['Alive']]))", capture=True, timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def cluster_up(api_port: int, extra_env: dict[str, str] | None = None, timeout_s: float = 300) -> dict[str, str]:
    """Start Redis, the Ray head and two workers, deploy serve-cluster.yaml; returns the state."""
    for needed in (IMAGE, BASE_IMAGE):  # Redis runs from the base image, which carries redis-server
        if not image_exists(needed):
            raise SystemExit(f"{needed} is missing: run `make image` first")
    cluster_down(keep_volume=True)
    state = {"token": secrets.token_hex(16), "redis_password": secrets.token_hex(16), "api_port": str(api_port),
             "api_url": f"http://127.0.0.1:{api_port}", "extra_env": json.dumps(extra_env or {})}
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=1))
    STATE.chmod(0o600)  # holds the API token and the Redis password
    podman("network", "create", "--subnet", str(SUBNET), "--gateway", GATEWAY, NETWORK, capture=True)
    if subprocess.run([*PODMAN, "volume", "exists", REDIS_VOLUME], check=False).returncode != 0:
        podman("volume", "create", REDIS_VOLUME, capture=True)
    say(f"redis {REDIS.ip} (AOF on volume {REDIS_VOLUME}, password set)")
    _run_node(REDIS, state, ["redis-server", "--port", "6379", "--bind", "0.0.0.0", "--appendonly", "yes",
                             "--dir", "/data", "--requirepass", state["redis_password"]],
              ("-v", f"{REDIS_VOLUME}:/data:U"), image=BASE_IMAGE)
    say(f"ray head {HEAD.ip} (API published on 127.0.0.1:{api_port})")
    _run_node(HEAD, state, ray_node_command(HEAD),
              ("-p", f"127.0.0.1:{api_port}:8000", "-v", f"{REPO / 'deploy'}:/home/ray/deploy:ro"))
    _wait("the Ray head", lambda: alive_ray_nodes(), 120, 2)
    for node in WORKERS:
        say(f"ray worker {node.ip}")
        _run_node(node, state, ray_node_command(node))
    _wait("three Ray nodes", lambda: len(alive_ray_nodes()) == 3, 120, 2)
    say("serve deploy deploy/serve-cluster.yaml")
    podman("exec", HEAD.name, "serve", "deploy", "/home/ray/deploy/serve-cluster.yaml", capture=True, timeout=120)
    _wait("the API's /readyz", lambda: http_get(f"{state['api_url']}/readyz")[0] == 200, timeout_s, 3)
    say(f"up: API {state['api_url']} (token in {STATE.relative_to(REPO)})")
    return state


def cluster_down(keep_volume: bool = False) -> None:
    """Remove the cluster's containers and network (and the Redis volume unless kept)."""
    for node in (*WORKERS, HEAD, REDIS):
        podman("rm", "-f", "-t", "5", node.name, check=False, capture=True)
    podman("network", "rm", "-f", NETWORK, check=False, capture=True)
    if not keep_volume:
        podman("volume", "rm", "-f", REDIS_VOLUME, check=False, capture=True)


def cluster_status() -> str:
    rows = podman("ps", "-a", "--filter", "name=ep-", "--format", "{{.Names}}\t{{.Status}}", capture=True)
    return rows.strip() or "no cluster containers"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/containers.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    base = sub.add_parser("base", help="build the Debian base image")
    base.add_argument("--rebuild", action="store_true")
    image = sub.add_parser("image", help="build the application image")
    image.add_argument("--base", default=BASE_IMAGE, help=f"base image (real clusters: {UPSTREAM_BASE})")
    image.add_argument("--torch-index-url", default=None,
                       help="index for torch (default: the Dockerfile's; '' = the host's pip configuration)")
    smoke_p = sub.add_parser("smoke", help="check the built image")
    smoke_p.add_argument("--photo", type=Path, default=REPO.parent / "shared" / "media" / "images" / "single_face.jpg",
                         help="a photo with a face, analysed inside the image")
    up = sub.add_parser("up", help="start the cluster")
    up.add_argument("--api-port", type=int, default=8000)
    down = sub.add_parser("down", help="remove the cluster")
    down.add_argument("--keep-volume", action="store_true", help="keep Redis's data volume")
    sub.add_parser("status", help="list the cluster's containers")
    args = parser.parse_args(argv)
    try:
        _dispatch(args)
    except subprocess.CalledProcessError as exc:
        print(f"error: {exc.cmd[0]} {exc.cmd[1:4]}... exited with {exc.returncode} (its output is above)",
              file=sys.stderr)
        return 1
    except PodmanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _dispatch(args: argparse.Namespace) -> None:
    if args.command == "base":
        build_base(args.rebuild)
    elif args.command == "image":
        build_image(args.base, "" if args.base == BASE_IMAGE and args.torch_index_url is None
                    else args.torch_index_url)
    elif args.command == "smoke":
        smoke(args.photo)
    elif args.command == "up":
        cluster_up(args.api_port)
    elif args.command == "down":
        cluster_down(args.keep_volume)
    else:
        print(cluster_status())


if __name__ == "__main__":
    raise SystemExit(main())
