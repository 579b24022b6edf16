"""spikebus as a HELICS federate (``spikebus run --helics CONFIG``, docs/helics.md), tested with
the real thing: a ``helics_broker`` process (the binary of the ``helics`` Python package,
tests/py/requirements.txt), the node, and a Python federate in its own process, on loopback
over HELICS's zmq core. The node's outputs are compared with NEURON 9.0.2's golden runs of
the same callback programs, bit for bit (never with spikebus's own output).

- the seed document's program (tests/golden/seed_interval.json), driven by
  examples-py/helics_seed_interval.py: traces, spikes, the spikes the federate received as
  HELICS messages, and the final ns.interval;
- the golden program ``sg_event`` (tests/golden/prog_sg_event.json), driven by
  tests/py/helics_programs.py through an event endpoint, an event input and a parameter
  input, and ``sg_every_3`` (a sync every third step); the federate saw every callback's
  h.t (and the values it read) as NEURON's callbacks did;
- start-up errors: no HELICS library, a bad config (exit 2, one line, before anything runs);
- the broker killed mid-run: the node ends the run with its outputs (NEURON's up to there), exit 6.

Skipped only where the ``helics`` package is not installed (it says so); under CI
(``$CI`` set) a missing package fails instead, so that the skip cannot hide a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXAMPLES, REPO_ROOT, assert_matches_golden, assert_same_doubles, load_golden

sys.path.insert(0, str(REPO_ROOT / "bench"))
from common import free_port_block  # noqa: E402  (the HELICS bench probes ports the same way)
from test_programs import golden_log

TIMEOUT = 600  # s; a whole seed run is 20,000 synchronized steps (~7 s on an idle machine)


def helics_package():
    try:
        import helics
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"the helics package is not installed under CI: {e}", pytrace=False)
        pytest.skip(
            "the HELICS Python package is not installed here (helics==3.6.1 in tests/py/requirements.txt; "
            f"`pip install -r tests/py/requirements.txt`): {e}"
        )
    return Path(helics.__file__).parent


@pytest.fixture(scope="module")
def helics_install() -> Path:
    """The wheel's install tree: bin/helics_broker and lib64/libhelics.so.3."""
    install = helics_package() / "install"
    for p in (install / "bin" / "helics_broker", install / "lib64" / "libhelics.so.3"):
        assert p.is_file(), f"the helics package has no {p}"
    return install


class Federation:
    """A broker, the node and a federate, each a process; everything is killed at the end."""

    def __init__(self, install: Path, tmp: Path):
        self.install = install
        self.tmp = tmp
        self.port = free_port_block()
        self.broker_address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "HELICS_LIBRARY": str(install / "lib64" / "libhelics.so.3")}

    def start(self, name: str, cmd: list, pipe: bool = False) -> subprocess.Popen:
        """Starts a process, its stderr (and stdout, unless `pipe`) to files in tmp."""
        out = subprocess.PIPE if pipe else open(self.tmp / f"{name}.out", "w")
        err = open(self.tmp / f"{name}.err", "w")
        p = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, cwd=REPO_ROOT, env=self.env, text=True)
        p.name = name  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def broker(self, federates: int = 2) -> subprocess.Popen:
        return self.start(
            "broker",
            [self.install / "bin" / "helics_broker", f"--federates={federates}", "--core_type=zmq", f"--port={self.port}",
             "--loglevel=warning"],
        )

    def text(self, name: str, stream: str = "err") -> str:
        return (self.tmp / f"{name}.{stream}").read_text()

    def wait(self, p: subprocess.Popen) -> int:
        try:
            return p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for q in self.procs:
                q.kill()
            logs = {q.name: self.text(q.name) for q in self.procs}  # type: ignore[attr-defined]
            raise AssertionError(f"{p.name} did not finish in {TIMEOUT} s; stderr: {logs}")  # type: ignore[attr-defined]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def federation(helics_install: Path, tmp_path: Path):
    f = Federation(helics_install, tmp_path)
    yield f
    f.close()


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(json.dumps(cfg, indent=2))
    return path


def test_seed_program_from_a_helics_federate_is_neurons(federation: Federation, spikebus_bin: Path, tmp_path: Path) -> None:
    """The acceptance test: the seed program replayed by a separate Python federate through a
    real broker gives NEURON's traces and spikes, bit for bit."""
    g = load_golden("seed_interval")
    cfg = json.loads((EXAMPLES / "helics" / "seed_interval.json").read_text())
    cfg["broker"] = federation.broker_address
    config = write_config(tmp_path / "node.json", cfg)
    out = tmp_path / "out"
    log = tmp_path / "federate.json"
    broker = federation.broker()
    node = federation.start("node", [spikebus_bin, "run", "--helics", config, "--set", "soma.threshold=0", "--out", out])
    fed = federation.start(
        "federate",
        [sys.executable, EXAMPLES / "helics_seed_interval.py", "--broker", federation.broker_address, "--log", log],
    )
    assert federation.wait(fed) == 0, federation.text("federate")
    assert federation.wait(node) == 0, federation.text("node")
    assert federation.wait(broker) == 0, federation.text("broker")
    assert "HELICS federate `spikebus` executing" in federation.text("node", "out")
    assert_matches_golden(out, g)
    seen = json.loads(log.read_text())
    assert seen["syncs"] == 20_000  # one scatter_gather callback per step, as in NEURON
    assert seen["final_interval"] == g.final["ns.interval"]
    for source, want in g.spikes.items():
        assert_same_doubles(seen["spikes"].get(source, []), want, f"spikes of {source} received over HELICS")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["reason"] == "end"


def run_program(federation: Federation, spikebus_bin: Path, tmp_path: Path, program: str, cfg: dict):
    """A golden program's variant run with the node as a federate and
    tests/py/helics_programs.py PROGRAM as the other; -> (golden, the federate's log)."""
    g = load_golden(f"prog_{program}")
    config = write_config(tmp_path / "node.json", {"federate": "node", "broker": federation.broker_address, **cfg})
    out = tmp_path / "out"
    log = tmp_path / "federate.json"
    sets = [a for k, v in g.set.items() for a in ("--set", f"{k}={v!r}")]
    broker = federation.broker()
    node = federation.start("node", [spikebus_bin, "run", "--helics", config, *sets, "--out", out])
    script = Path(__file__).parent / "helics_programs.py"
    fed = federation.start("federate", [sys.executable, script, program, federation.broker_address, 25_000, log])
    assert federation.wait(fed) == 0, federation.text("federate")
    assert federation.wait(node) == 0, federation.text("node")
    federation.wait(broker)
    assert "refused" not in federation.text("node"), federation.text("node")
    assert_matches_golden(out, g)
    return g, json.loads(log.read_text())


def test_events_and_inputs_from_a_helics_federate_are_neurons(federation: Federation, spikebus_bin: Path, tmp_path: Path) -> None:
    """The golden program sg_event, its events and parameter changes sent by a HELICS
    federate: as an event message (with and without a weight), an event input and a
    parameter input, each applied at the scatter_gather point it answers."""
    cfg = {
        "publications": [{"key": "node/t", "value": "t"}, {"key": "node/end", "value": "end"}],
        "inputs": [
            {"key": "ctl/delay", "event": "syn", "weight": 0.02, "time": "delay"},
            {"key": "ctl/weight", "set": "nc.weight"},
        ],
        "events": {"endpoint": "node/events"},
    }
    _, seen = run_program(federation, spikebus_bin, tmp_path, "sg_event", cfg)
    want_t = [entry[2] for entry in golden_log("prog_sg_event")]
    assert_same_doubles(seen["t"], want_t, "h.t of every callback, as the federate saw it")


def test_a_sync_every_third_step_is_neurons(federation: Federation, spikebus_bin: Path, tmp_path: Path) -> None:
    """`steps: 3`: the golden program sg_every_3 (an extra_scatter_gather callback every third
    step multiplying soma.gl_hh by 1.001); the federate saw NEURON's h.t and gl_hh at each."""
    cfg = {
        "steps": 3,
        "publications": [{"key": "node/t", "value": "t"}, {"key": "node/end", "value": "end"},
                         {"key": "node/gl", "value": "soma.gl_hh"}],
        "inputs": [{"key": "ctl/gl", "set": "soma.gl_hh"}],
    }
    _, seen = run_program(federation, spikebus_bin, tmp_path, "sg_every_3", cfg)
    log = golden_log("prog_sg_every_3")
    want_t = [e[2] for e in log if e[:2] == ["cb", "scatter_gather"]]
    want_gl = [e[2] for e in log if e[:2] == ["get", "soma.gl_hh"]]
    assert len(want_t) == 267  # steps 0, 3, ..., 798 of 800
    assert_same_doubles(seen["t"], want_t, "h.t of every callback, as the federate saw it")
    assert_same_doubles(seen["reads"], want_gl, "soma.gl_hh read by every callback")


def test_without_the_library_the_node_says_what_to_install(spikebus_bin: Path, tmp_path: Path) -> None:
    import ctypes.util

    if ctypes.util.find_library("helics"):
        pytest.skip("a libhelics is on this system's library path: the node would find it")
    config = write_config(tmp_path / "node.json", {"federate": "n", "library": str(tmp_path / "nope.so")})
    env = {k: v for k, v in os.environ.items() if k not in ("HELICS_LIBRARY", "VIRTUAL_ENV")}
    r = subprocess.run(
        [spikebus_bin, "run", "--helics", config, "--out", tmp_path / "out"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot load the HELICS library" in lines[0] and "pip install helics" in lines[0], r.stderr
    assert str(tmp_path / "nope.so") in lines[0]
    assert r.stdout == ""
    assert not (tmp_path / "out").exists(), "a start-up error wrote outputs"


@pytest.mark.parametrize(
    "cfg, key",
    [
        ({"federate": "n", "inputs": [{"key": "a", "set": "soma.nseg"}]}, "inputs[0].set"),
        ({"federate": "n", "publications": [{"key": "a", "value": "soma.vv"}]}, "publications[0].value"),
        ({"federate": "n", "spikes": {"endpoint": "e", "destination": "d", "sources": ["axon"]}}, "spikes.sources[0]"),
        ({"federate": "n", "inputs": [{"key": "a", "set": "dt"}]}, "inputs[0].set"),
    ],
)
def test_a_bad_config_is_a_one_line_startup_error(cfg: dict, key: str, spikebus_bin: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "node.json", cfg)
    r = subprocess.run(
        [spikebus_bin, "run", "--helics", config, "--out", tmp_path / "out"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"key `{key}`" in lines[0], r.stderr
    assert not (tmp_path / "out").exists(), "a start-up error wrote outputs"


def test_a_federation_that_breaks_mid_run_ends_the_run_with_its_outputs(
    federation: Federation, spikebus_bin: Path, tmp_path: Path
) -> None:
    """The broker is killed while the node runs: the node's time request fails (HELICS
    notices the lost broker after its own timeout), the node raises a global error, writes
    what it simulated (still NEURON's numbers) with the error in its manifest, and exits 6."""
    g = load_golden("seed_interval")
    cfg = json.loads((EXAMPLES / "helics" / "seed_interval.json").read_text())
    cfg["broker"] = federation.broker_address
    config = write_config(tmp_path / "node.json", cfg)
    out = tmp_path / "out"
    broker = federation.broker()
    node = federation.start("node", [spikebus_bin, "run", "--helics", config, "--set", "soma.threshold=0", "--out", out], pipe=True)
    federation.start("federate", [sys.executable, EXAMPLES / "helics_seed_interval.py", "--broker", federation.broker_address])
    # Handshake: the node says when it is executing (every federate has joined).
    line = node.stdout.readline()
    assert "executing" in line, (line, federation.text("node"))
    broker.kill()
    assert federation.wait(node) == 6, federation.text("node")
    err = federation.text("node")
    assert "HELICS: time request failed" in err, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["reason"] == "stop" and "HELICS" in manifest["error"], manifest
    from helpers import read_traces

    header, cols = read_traces(out / "traces.csv")
    n = len(cols["t"])
    assert 1 <= n < len(g.traces["t"]), n
    for name in header:
        assert_same_doubles(cols[name], g.traces[name][:n], f"traces.csv column {name} (the run up to the failure)")
