"""The `spikebus` wheel (issue 9): built with maturin from pyproject.toml, installed into a
fresh venv outside the checkout, it gives the `spikebus` command and a `spikebus_client` that
finds it, with no Rust toolchain on PATH; the seed controller there gives NEURON's numbers.
The same venv runs a user's own test with the pytest plugin's `spikebus_node` fixture.

The wheel is built into target/wheel (its own cargo target directory: maturin strips the
binary, which must not replace the checkout's target/release/spikebus); cargo's incremental
build makes a rebuild of unchanged sources take about a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from helpers import EXAMPLES, REPO_ROOT, assert_matches_golden, load_golden
from spikebus_client import parse_listening
from test_docker import build_args  # noqa: F401 (the fixture: a Docker daemon and the local base images)

# The seed program's final NetStim spikes (tests/golden/seed_interval.json).
SEED_NS_SPIKES = [0.0, 20.0, 450.0]


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "maturin", "build", "--release", "--locked", "--target-dir",
         str(REPO_ROOT / "target" / "wheel"), "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=3000,
    )
    assert p.returncode == 0, f"maturin build failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    wheels = list(out.glob("spikebus-*.whl"))
    assert len(wheels) == 1, wheels
    print(f"\nwheel {wheels[0].name}: {wheels[0].stat().st_size} bytes, built in {time.monotonic() - t0:.1f} s")
    return wheels[0]


def no_rust_env(venv: Path) -> dict[str, str]:
    """The environment of a user without Rust: the venv's bin and the system's, no cargo,
    no $SPIKEBUS, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPIKEBUS", "PYTHONPATH", "VIRTUAL_ENV", "CARGO_HOME", "RUSTUP_HOME")}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    return env


def make_venv(python: str | Path, where: Path) -> Path:
    subprocess.run([str(python), "-m", "venv", str(where)], check=True, timeout=300)
    return where


def pip_install(venv: Path, *what: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *what], check=True, timeout=900)


def run_seed_program_outside_the_checkout(venv: Path, work: Path) -> None:
    """`spikebus run --control ...` from the venv's bin, examples-py/seed_interval.py copied
    out of the checkout (so it imports the installed package), NEURON's numbers."""
    env = no_rust_env(venv)
    assert shutil.which("cargo", path=env["PATH"]) is None, "cargo is on the PATH of the no-Rust environment"
    spikebus = venv / "bin" / "spikebus"
    assert spikebus.is_file()
    ctl = work / "seed_interval.py"
    shutil.copy(EXAMPLES / "seed_interval.py", ctl)
    out = work / "out"
    node = subprocess.Popen(
        ["spikebus", "run", "--control", "tcp://127.0.0.1:0", "--set", "soma.threshold=0", "--out", str(out)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert node.stdout is not None
        control = parse_listening(node.stdout.readline().strip())["control"]
        p = subprocess.run([str(venv / "bin" / "python"), str(ctl), "--control", control], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert f"NetStim spikes: 3 {SEED_NS_SPIKES}" in p.stdout, p.stdout
        assert node.wait(60) == 0, node.stderr.read() if node.stderr else ""
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert_matches_golden(out, load_golden("seed_interval"))


def test_wheel_contents(built_wheel: Path) -> None:
    names = zipfile.ZipFile(built_wheel).namelist()
    assert "spikebus-0.1.0.data/scripts/spikebus" in names, names
    for mod in ("__init__", "controller", "node", "stream", "messages", "actions", "aio", "data", "pytest_plugin",
                "ros2_bridge"):
        assert f"spikebus_client/{mod}.py" in names, (mod, names)
    assert "spikebus_client/py.typed" in names
    meta = zipfile.ZipFile(built_wheel).read("spikebus-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Python: >=3.10" in meta, meta[:500]
    # A Linux wheel old enough for Ubuntu 22.04 (glibc 2.35), ROS 2 Humble's platform.
    tag = built_wheel.name.rsplit("-", 1)[1]
    glibc = tuple(int(x) for x in tag.split("_")[1:3])
    assert tag.startswith("manylinux_") and glibc <= (2, 35), tag


def test_wheel_in_a_fresh_venv_runs_the_seed_controller_without_rust(built_wheel: Path, tmp_path: Path) -> None:
    assert REPO_ROOT not in tmp_path.parents
    venv = make_venv(sys.executable, tmp_path / "venv")
    pip_install(venv, str(built_wheel))
    env = no_rust_env(venv)
    # The client finds the installed command (not a checkout's), from anywhere.
    code = ("import spikebus_client as c, sys; print(c.find_binary()); "
            "from spikebus_client import Node; n = Node(['--set', 'tstop=1', '--out', 'o']); "
            "n.start(); print(n.wait(60)); print(n.binary)")
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    found, rc, used = p.stdout.split()
    assert Path(found) == venv / "bin" / "spikebus" and Path(used) == Path(found), p.stdout
    assert rc == "0" and (tmp_path / "o" / "manifest.json").is_file()
    v = subprocess.run(["spikebus", "--version"], env=env, capture_output=True, text=True, timeout=30)
    assert v.stdout.strip() == "spikebus 0.1.0", v
    run_seed_program_outside_the_checkout(venv, tmp_path)


USER_TEST = '''
import pytest
from spikebus_client import Controller, set_

@pytest.mark.spikebus_node(set={"soma.threshold": 0})
def test_seed_program(spikebus_node):
    with Controller(spikebus_node.control) as c:
        for sync in c.run(every_ms=0.025, kind="scatter_gather", watch_values=["ns.interval"]):
            if int(sync.t) % 50 == 0:
                c.act(set_("ns.interval", sync.values["ns.interval"] + 10))
    assert spikebus_node.wait(60) == 0
    with open(spikebus_node.out_dir / "spikes.csv") as f:
        ns = [float(line.split(",")[1]) for line in f if line.startswith("ns,")]
    assert ns == [0.0, 20.0, 450.0]

def test_two_nodes(spikebus_node_factory):
    a = spikebus_node_factory(set={"tstop": 1}, pub=False)
    b = spikebus_node_factory(set={"tstop": 2}, pub=False)
    assert a.control != b.control and a.out_dir != b.out_dir
    for node, steps in ((a, 40), (b, 80)):
        with Controller(node.control) as c:
            assert [s.step for s in c.run()] == [steps]
        assert node.wait(60) == 0
'''


def test_pytest_plugin_from_the_wheel(built_wheel: Path, tmp_path: Path) -> None:
    """A user's own integration test with the `spikebus_node` fixture, in a venv with the
    wheel and pytest (the plugin comes in through its pytest11 entry point)."""
    venv = make_venv(sys.executable, tmp_path / "venv")
    pip_install(venv, str(built_wheel), "pytest>=7.4")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "test_mine.py").write_text(USER_TEST)
    p = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                       cwd=tmp_path / "proj", env=no_rust_env(venv), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "2 passed" in p.stdout, p.stdout


def test_wheel_on_python_310(built_wheel: Path, tmp_path: Path) -> None:
    """ROS 2 Humble's and Ubuntu 22.04's Python: the same wheel installs and runs there."""
    from test_python310 import require_python310

    venv = make_venv(require_python310(), tmp_path / "venv310")
    pip_install(venv, str(built_wheel))
    run_seed_program_outside_the_checkout(venv, tmp_path)


CONTAINER_CHECK = r'''
set -eu
for tool in cargo rustc rustup gcc cc; do
    if command -v "$tool" >/dev/null; then echo "found $tool"; exit 3; fi
done
python3 -m venv /tmp/v
/tmp/v/bin/pip install --quiet --no-index --find-links /deps /wheel/*.whl
cd /tmp
/tmp/v/bin/python - <<'PY'
import sys
from spikebus_client import Controller, Node, find_binary, set_
print("binary", find_binary())
with Node(["--control", "tcp://127.0.0.1:0", "--set", "soma.threshold=0", "--out", "/out"]) as node:
    with Controller(node.control) as c:
        for sync in c.run(every_ms=0.025, kind="scatter_gather", watch_values=["ns.interval"]):
            if int(sync.t) % 50 == 0:
                c.act(set_("ns.interval", sync.values["ns.interval"] + 10))
    print("exit", node.wait(60))
PY
'''


def test_wheel_in_a_container_without_rust(built_wheel: Path, tmp_path: Path, build_args: dict[str, str]) -> None:
    """A machine without Rust or a C compiler: Debian with python3 and nothing else (the
    Docker test's python base image), no network: pip installs the wheel (its dependencies
    downloaded beforehand), and the seed program runs against the installed node."""
    image = build_args.get("PYTHON_IMAGE")
    if not image:
        pytest.skip("no local python base image (scripts/docker-setup makes it as root)")
    deps = tmp_path / "deps"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--only-binary=:all:", "-d", str(deps), "pyzmq>=25.0", "msgpack>=1.0.5"], check=True, timeout=600)
    wheel_dir = tmp_path / "wheel"
    wheel_dir.mkdir()
    shutil.copy(built_wheel, wheel_dir)
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{wheel_dir}:/wheel:ro", "-v", f"{deps}:/deps:ro",
         "-v", f"{out}:/out", image, "sh", "-c", CONTAINER_CHECK],
        capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "binary /tmp/v/bin/spikebus" in p.stdout and "exit 0" in p.stdout, p.stdout
    assert_matches_golden(out, load_golden("seed_interval"))
