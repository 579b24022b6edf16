"""Multi-process tests of the spikebus bus: real node processes, real sockets, and the example
controllers run as subprocesses the way a user runs them (``python3 examples-py/X.py``).

The wire protocol is ``schemas/README.md``; the reference results are NEURON 9.0.2's
(``tests/golden/*.json``, format in ``tests/golden/README.md``).  Nothing here sleeps to
wait for a socket: the node's ``listening`` line, ``hello`` and ``--wait-subscribers`` are
the handshakes, and every wait is bounded so that a hung node fails the test.
"""

from __future__ import annotations

import json
import math
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import msgpack
import pytest
import zmq

from helpers import (  # also puts examples-py/ on sys.path, for spikebus_client
    EXAMPLES,
    REPO_ROOT,
    assert_matches_golden,
    assert_same_doubles,
    bits,
    load_golden,
    read_spikes,
    read_traces,
    spikes_by_source,
)
from spikebus_client import (
    Controller,
    Done,
    Hello,
    Node,
    Observer,
    Schedule,
    SpikebusError,
    SpikebusTimeout,
    StreamMessage,
    Sync,
    event,
    schedule,
    set_,
    stop,
    watch,
)
from spikebus_client.controller import pack
from spikebus_client.unix import frame

# Bounds on every wait (seconds).  Generous: a loaded CI machine is slow, a hung node is not.
SCRIPT_TIMEOUT = 300.0
NODE_EXIT_TIMEOUT = 60.0
REPLY_TIMEOUT_MS = 30_000
STREAM_TIMEOUT_MS = 30_000

# The acceptance numbers (tests/golden/seed_interval.json).
SEED_SAMPLES = 20_001
SEED_NS_SPIKES = [0.0, 20.0, 450.0]
SEED_SOMA_SPIKES = [3.850000000100021, 23.400000000099205, 453.8749999998241]
SUMMARY = re.compile(r"^spikebus: (\d+) steps to t=(\S+) .*spikes: .*; wrote (.+)/traces\.csv and (.+)/spikes\.csv$")


# ---------------------------------------------------------------------------------------
# Output files (the golden data: helpers.py)


def output_bytes(out: Path) -> tuple[bytes, bytes]:
    return (out / "traces.csv").read_bytes(), (out / "spikes.csv").read_bytes()


def check_summary(node: Node, out: Path, steps: int | None = None) -> None:
    line = node.summary
    assert line is not None, f"no summary line; stdout: {node.stdout!r}"
    m = SUMMARY.match(line)
    assert m, f"summary line not as specified: {line!r}"
    if steps is not None:
        assert int(m.group(1)) == steps, line
    assert Path(m.group(3)) == out and Path(m.group(4)) == out, line


# ---------------------------------------------------------------------------------------
# Processes


def script(name: str) -> str:
    return str(EXAMPLES / name)


def run_script(name: str, *args: str, timeout: float = SCRIPT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``python3 examples-py/NAME ARGS`` from the repository root; fail on non-zero."""
    p = subprocess.run(
        [sys.executable, script(name), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, (
        f"{name} {args} exited {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
    )
    return p


class Lines:
    """Lines of a subprocess's stdout, read by a thread, awaited with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        self.all: list[str] = []
        assert proc.stdout is not None
        self.t = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.t.start()

    def _read(self, f: Any) -> None:
        for line in f:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def wait_for(self, pred: Callable[[str], bool], timeout: float) -> str:
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching line within {timeout} s; got {self.all[-20:]!r}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the process ended without a matching line; got {self.all[-20:]!r}")
            self.all.append(line)
            if pred(line):
                return line


def _drain(q: "queue.Queue[str | None]") -> Iterable[str]:
    while True:
        try:
            x = q.get_nowait()
        except queue.Empty:
            return
        if x is not None:
            yield x


def collect(obs: Observer) -> list[StreamMessage]:
    return obs.collect(timeout_ms=STREAM_TIMEOUT_MS, deadline_s=SCRIPT_TIMEOUT)


# ---------------------------------------------------------------------------------------
# The acceptance check: the seed document's program over the bus, bit for bit NEURON's

_seed_outputs: dict[str, tuple[bytes, bytes]] = {}


def run_seed_interval(
    start_node: Callable[..., Node], endpoint: Callable[..., str], kind: str, out: Path
) -> subprocess.CompletedProcess[str]:
    node = start_node(["--control", endpoint(kind), "--set", "soma.threshold=0", "--out", str(out)])
    assert node.control.startswith(f"{kind}://"), node.endpoints
    if kind == "tcp":
        assert not node.control.endswith(":0"), f"the listening line must give the bound port: {node.control}"
    p = run_script("seed_interval.py", "--control", node.control)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    check_summary(node, out, steps=SEED_SAMPLES - 1)
    _seed_outputs[kind] = output_bytes(out)
    return p


@pytest.mark.parametrize("kind", ["ipc", "tcp", "unix"])
def test_seed_interval_over_the_bus_matches_neuron(kind: str, start_node, endpoint, tmp_path: Path) -> None:
    """`spikebus run --control EP --set soma.threshold=0 --out d` + `seed_interval.py
    --control EP`: traces.csv and spikes.csv are NEURON's run of the seed program."""
    g = load_golden("seed_interval")
    out = tmp_path / "d"
    p = run_seed_interval(start_node, endpoint, kind, out)
    assert_matches_golden(out, g)
    header, cols = read_traces(out / "traces.csv")
    assert all(len(cols[s]) == SEED_SAMPLES for s in g.signals)
    got = spikes_by_source(read_spikes(out / "spikes.csv"))
    assert got["ns"] == SEED_NS_SPIKES
    assert got["soma"] == SEED_SOMA_SPIKES
    # The controller's summary: the callback's final interval, as NEURON's run left it.
    assert f"final ns.interval={g.final['ns.interval']!r}" in p.stdout, p.stdout
    assert f"NetStim spikes: 3 {SEED_NS_SPIKES}" in p.stdout, p.stdout


def test_seed_interval_ipc_tcp_and_unix_outputs_are_byte_identical(start_node, endpoint, tmp_path: Path) -> None:
    for kind in ("ipc", "tcp", "unix"):
        if kind not in _seed_outputs:  # run alone (e.g. with -k)
            run_seed_interval(start_node, endpoint, kind, tmp_path / kind)
    for kind in ("tcp", "unix"):
        assert _seed_outputs["ipc"][0] == _seed_outputs[kind][0], f"traces.csv differs between ipc and {kind}"
        assert _seed_outputs["ipc"][1] == _seed_outputs[kind][1], f"spikes.csv differs between ipc and {kind}"


def test_seed_interval_controller_killed_and_restarted(start_node, control, tmp_path: Path) -> None:
    """SIGKILL the controller several times mid-run; each new one takes the run over (hello
    with `takeover`: its predecessor still owns it) and resumes from hello's `pending`; the
    files are still NEURON's bit for bit."""
    out = tmp_path / "d"
    node = start_node(["--control", control("ipc"), "--set", "soma.threshold=0", "--out", str(out)])
    resumed: list[int] = []
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, script("seed_interval.py"), "--control", node.control, "--progress-every", "500"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            lines = Lines(proc)
            first = lines.wait_for(lambda s: "starting the run" in s or "resuming at step" in s, 60)
            if round_ == 0:
                assert "starting the run" in first, first
                # Killed early: right after its first continue came back (step 0).
                lines.wait_for(lambda s: s.startswith("seed_interval: step 0 "), 60)
            else:
                assert "resuming at step" in first, first
                m0 = re.search(r"resuming at step (\d+)", first)
                assert m0, first
                at = int(m0.group(1))
                resumed.append(at)
                # Killed after it has made progress of its own (a progress line past `at`).
                lines.wait_for(
                    lambda s, at=at: (
                        (m := re.match(r"seed_interval: step (\d+) ", s)) is not None and int(m.group(1)) > at
                    ),
                    60,
                )
            assert proc.poll() is None, "the controller finished before it could be killed"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    p = run_script("seed_interval.py", "--control", node.control)
    m = re.search(r"resuming at step (\d+)", p.stdout)
    assert m, p.stdout
    resumed.append(int(m.group(1)))
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    # The first restart may find the run still at step 0 (its predecessor was killed there);
    # every later one resumes further on.
    assert resumed == sorted(resumed) and len(set(resumed)) == len(resumed) and 0 < resumed[1], resumed
    assert resumed[-1] < SEED_SAMPLES - 1, resumed
    assert "final ns.interval=4040.0" in p.stdout, p.stdout
    assert_matches_golden(out, load_golden("seed_interval"))


# ---------------------------------------------------------------------------------------
# The state stream


def check_stream(
    msgs: list[StreamMessage], out: Path, signals: list[str], every: int = 1, batch: int = 1
) -> dict[str, Any]:
    """The stream equals the output files: state samples, spikes; one started, one done."""
    topics = [m.topic for m in msgs]
    assert topics[0] == "started" and topics.count("started") == 1, topics[:3]
    assert topics[-1] == "done" and topics.count("done") == 1, topics[-3:]
    seqs = [m.seq for m in msgs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or disorder in seq"
    started, done = msgs[0].data, msgs[-1].data
    assert started["signals"] == signals, started
    assert done["reason"] == "end" and done["error"] is None, done

    header, cols = read_traces(out / "traces.csv")
    states = [m.data for m in msgs if m.topic == "state"]
    steps: list[int] = []
    ts: list[float] = []
    values: dict[str, list[float]] = {s: [] for s in signals}
    for k, d in enumerate(states):
        n = len(d["step"])
        assert n == batch or (k == len(states) - 1 and 0 < n <= batch), f"state message {k} has {n} samples"
        assert len(d["t"]) == n and all(len(d[s]) == n for s in signals), d
        steps += d["step"]
        ts += d["t"]
        for s in signals:
            values[s] += d[s]
    n_samples = len(cols["t"])
    want_steps = list(range(0, n_samples, every))
    assert steps == want_steps, (
        f"state steps {steps[:5]}...{steps[-5:]} (of {len(steps)}), expected every {every}th of {n_samples}"
    )
    assert_same_doubles(ts, cols["t"][::every], "stream t vs traces.csv")
    for s in signals:
        if s in cols:
            assert_same_doubles(values[s], cols[s][::every], f"stream {s} vs traces.csv")

    spikes = [(m.data["source"], float(m.data["t"])) for m in msgs if m.topic == "spike"]
    assert spikes == read_spikes(out / "spikes.csv"), "spike topic differs from spikes.csv"
    return done


def test_stream_every_step_equals_the_output_files(start_node, endpoint, tmp_path: Path) -> None:
    """A free-running node (no controller): one `state` message per step, 20,001 in order,
    equal to traces.csv; `spike` equal to spikes.csv; one started, one done, nothing
    dropped."""
    out = tmp_path / "d"
    node = start_node(
        ["--pub", endpoint("ipc", "pub"), "--wait-subscribers", "1", "--set", "soma.threshold=0", "--out", str(out)]
    )
    with Observer(node.pub) as obs:
        msgs = collect(obs)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    header, _ = read_traces(out / "traces.csv")
    # --pub-signals defaults to the recorded signals.
    done = check_stream(msgs, out, header[1:])
    assert sum(1 for m in msgs if m.topic == "state") == SEED_SAMPLES
    assert done["step"] == SEED_SAMPLES - 1
    assert_matches_golden(out, load_golden("seed"))


@pytest.mark.parametrize("kind,batch,every", [("tcp", 10, 1), ("ipc", 7, 25)])
def test_stream_batched(kind: str, batch: int, every: int, start_node, endpoint, tmp_path: Path) -> None:
    """--pub-batch K (and --pub-every N): K samples per message, the same samples."""
    out = tmp_path / "d"
    signals = ["soma.v", "syn.g", "soma.ina"]
    node = start_node([
        "--pub", endpoint(kind, "pub"), "--wait-subscribers", "1", "--pub-batch", str(batch),
        "--pub-every", str(every), "--pub-signals", ",".join(signals), "--record", "soma.v,syn.g,soma.ina",
        "--set", "soma.threshold=0", "--out", str(out),
    ])  # fmt: skip
    with Observer(node.pub) as obs:
        msgs = collect(obs)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    check_stream(msgs, out, signals, every=every, batch=batch)
    n_states = sum(1 for m in msgs if m.topic == "state")
    assert n_states == math.ceil(math.ceil(SEED_SAMPLES / every) / batch)


def test_stream_beside_a_controller(start_node, endpoint, control, tmp_path: Path) -> None:
    """The seed program steering over control, two subscribers (this test and
    observer.py): the stream still equals the NEURON-exact output; a `sync` per sync point."""
    out = tmp_path / "d"
    node = start_node([
        "--control", control("ipc"), "--pub", endpoint("tcp"), "--wait-subscribers", "2",
        "--set", "soma.threshold=0", "--out", str(out),
    ])  # fmt: skip
    with Observer(node.pub) as obs:
        watcher = subprocess.Popen(
            [sys.executable, script("observer.py"), "--pub", node.pub, "--every", "5000", "--idle-timeout", "120"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            lines = Lines(watcher)
            lines.wait_for(lambda s: s.startswith("observer: subscribed"), 60)
            # Both subscribers are in (each subscribed to everything, b""): the node must now
            # take its controller.
            with Controller(node.control, timeout_ms=10_000, retries=0) as c:
                try:
                    c.hello()
                except SpikebusTimeout:
                    pytest.fail(
                        'two subscribers (this test and observer.py, each subscribed to b"") are '
                        "connected, but a node run with --wait-subscribers 2 does not answer hello "
                        "within 10 s: it does not count the second subscriber"
                    )
            run_script("seed_interval.py", "--control", node.control)
            msgs = collect(obs)
            watcher.wait(timeout=SCRIPT_TIMEOUT)
            lines.t.join(10)
            w_out = "\n".join(lines.all + list(_drain(lines.q)))
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait(10)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    assert watcher.returncode == 0, w_out
    assert_matches_golden(out, load_golden("seed_interval"))
    header, _ = read_traces(out / "traces.csv")
    check_stream(msgs, out, header[1:])

    syncs = [m.data for m in msgs if m.topic == "sync"]
    # The `start` point, as the controller saw it, is published when the run leaves it
    # (after `started`, "once, before initialization"): if it is there, it comes first.
    if "start" in syncs[0]["reasons"]:
        assert syncs[0]["reasons"] == ["start"] and syncs[0]["step"] == 0
        syncs = syncs[1:]
    assert not any("start" in d["reasons"] for d in syncs)
    assert syncs[-1]["reasons"] == ["end"] and syncs[-1]["step"] == SEED_SAMPLES - 1
    # seed_interval.py schedules scatter_gather=1: a sync inside every step (steps 0 to
    # 19999, t = t_n), none after the last one, then the end point; nothing else.
    sg = syncs[:-1]
    assert all(d["reasons"] == ["scatter_gather"] for d in sg), {tuple(d["reasons"]) for d in sg}
    assert [d["step"] for d in sg] == list(range(SEED_SAMPLES - 1)), "a `scatter_gather` sync per step"
    assert all("id" not in d for d in syncs), "stream syncs carry no id"
    assert all(d["at"] == [] and d["spike"] is None for d in syncs), "no `at` time or spike is answered"
    assert syncs[-1]["values"]["ns.interval"] == 4040.0

    # observer.py: saw everything, counted no gaps.
    summary = w_out.strip().splitlines()[-1]
    assert "seq gaps 0" in summary, w_out
    assert f"received {len(msgs)} messages" in summary, (summary, len(msgs))


# ---------------------------------------------------------------------------------------
# The other controllers


def test_closed_loop_rate_holds_the_target(start_node, control, tmp_path: Path) -> None:
    """closed_loop_rate.py adjusts nc.weight every window; once settled, the soma's rate is
    near the target (the NetStim is noisy so the rate is graded in the weight)."""
    out = tmp_path / "d"
    target, window, tstop = 20.0, 500.0, 30_000.0
    node = start_node([
        "--control", control("tcp"), "--set", "ns.noise=1", "--set", f"tstop={tstop}",
        "--record", "soma.v", "--out", str(out),
    ])  # fmt: skip
    p = run_script(
        "closed_loop_rate.py", "--control", node.control, "--target-hz", str(target), "--window", str(window)
    )
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    rates = [float(x) for x in re.findall(r"rate=\s*([0-9.]+) Hz", p.stdout)]
    weights = [float(x) for x in re.findall(r"nc\.weight=([0-9.]+)\n", p.stdout + "\n")]
    assert len(rates) == int(tstop / window), p.stdout
    assert len(set(weights)) > 3, "the controller never moved the weight"
    # Settled: the mean over the last 20 windows (10 s) within 2.5 Hz of the target, by the
    # controller's count and by spikes.csv.
    last = rates[-20:]
    assert abs(sum(last) / len(last) - target) < 2.5, last
    soma = [t for s, t in read_spikes(out / "spikes.csv") if s == "soma"]
    late = [t for t in soma if t >= tstop - 20 * window]
    assert abs(len(late) / (20 * window / 1000.0) - target) < 2.5
    # The first window ran with the model's weight (0.1): well above the target.
    assert rates[0] > target + 5


def test_spike_steering_drives_the_cell_by_injected_events(start_node, control, tmp_path: Path) -> None:
    """spike_steering.py silences the NetStim and injects events: each shows up as a jump of
    syn.g at the step that delivers it, nowhere else, and the soma spikes after them."""
    out = tmp_path / "d"
    log = tmp_path / "events.json"
    node = start_node(["--control", control("ipc"), "--set", "soma.threshold=0", "--out", str(out)])
    p = run_script("spike_steering.py", "--control", node.control, "--events-out", str(log))
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    with open(log) as f:
        steered = json.load(f)
    events = steered["events"]
    assert len(events) >= 10, p.stdout
    assert f"{len(events)} events injected" in p.stdout

    header, cols = read_traces(out / "traces.csv")
    t, g = cols["t"], cols["syn.g"]
    dt, tau = 0.025, 20.0
    spikes = read_spikes(out / "spikes.csv")
    assert not [s for s in spikes if s[0] == "ns"], "ns.number=0 at start: the NetStim must not fire"
    soma = [x for s, x in spikes if s == "soma"]
    assert soma == steered["spikes"]["soma"], "the controller saw every soma spike"

    # An event at te is delivered at the first step point n with t_n + dt/2 >= te; the
    # sample after it holds (g_n + w) decayed by one step.
    delivered: dict[int, float] = {}
    for e in events:
        n = next(k for k in range(len(t)) if t[k] + dt / 2 >= e["t"])
        delivered[n] = delivered.get(n, 0.0) + e["weight"]
    decay = math.exp(-dt / tau)
    rises = [k for k in range(len(g) - 1) if g[k + 1] > g[k]]
    assert rises == sorted(delivered), f"syn.g rises at {rises[:8]}..., events delivered at {sorted(delivered)[:8]}..."
    for n, w in delivered.items():
        assert math.isclose(g[n + 1], (g[n] + w) * decay, rel_tol=1e-12), (n, g[n], g[n + 1], w)

    # The soma spikes, and each spike follows an injected event within a few ms.
    assert len(soma) >= 10
    times = sorted(e["t"] for e in events)
    for s in soma:
        before = [te for te in times if te <= s]
        assert before and s - before[-1] < 10.0, f"soma spike at {s} follows no recent event"


# ---------------------------------------------------------------------------------------
# Protocol behaviour (schemas/README.md)


def test_hello_fields(start_node, control, tmp_path: Path) -> None:
    node = start_node(["--control", control("tcp"), "--set", "soma.threshold=0", "--out", str(tmp_path / "d")])
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0, client="hello-test") as c:
        raw = c.request_map({"op": "hello", "id": 17, "protocol": 2})
        assert raw["op"] == "hello" and raw["id"] == 17
        for key in (
            "protocol",
            "node",
            "client",
            "owner",
            "model",
            "dt",
            "tstop",
            "t",
            "step",
            "params",
            "signals",
            "sources",
            "targets",
            "schedule",
            "watch",
            "pending",
        ):
            assert key in raw, f"hello lacks `{key}`: {sorted(raw)}"
        h = c.hello()
        assert isinstance(h, Hello)
        assert h.protocol == 2 and h.node.startswith("spikebus")
        # The name the node knows the sender by; nobody owns the run before a continue.
        assert h.client == "hello-test" and h.owner is None
        assert (h.dt, h.tstop, h.t, h.step) == (0.025, 500.0, 0.0, 0)
        p = h.params
        assert p["dt"].unit == "ms" and p["dt"].writable and p["dt"].value == 0.025
        assert (
            p["soma.gnabar_hh"].unit == "S/cm2" and p["soma.gnabar_hh"].writable and p["soma.gnabar_hh"].value == 0.12
        )
        assert p["soma.nseg"].writable is False and p["soma.nseg"].value == 1.0
        assert p["soma.threshold"].value == 0.0, "--set is reflected"
        assert p["ns.interval"].value == 20.0 and p["nc.weight"].value == 0.1 and p["syn.tau"].value == 20.0
        for name in (
            "tstop",
            "celsius",
            "usetable_hh",
            "v_init",
            "soma.L",
            "soma.diam",
            "syn.e",
            "ns.number",
            "ns.start",
            "nc.delay",
        ):
            assert name in p, name
        for s in ("soma.v", "soma.m_hh", "soma.h_hh", "soma.n_hh", "syn.g", "syn.i"):
            assert s in h.signals, s
        assert set(h.sources) == {"soma", "ns"}
        assert set(h.targets) == {"syn", "ns", "nc"}
        assert h.schedule == Schedule(init=(), every=0, scatter_gather=0, at=(), on_spike=())
        assert raw["schedule"]["init"] == [], "init is a list of FInitializeHandler types"
        assert h.watch.values == () and h.watch.spikes is True
        assert h.pending.reasons == ("start",) and h.pending.t == 0.0 and h.pending.step == 0 and h.pending.id is None
        assert h.pending.at == () and h.pending.spike is None
        # Settings outlive a request: hello shows them.  FInitializeHandler type 2 ends
        # initialization at a step boundary (t = 0), where `every` (step 0 included)
        # coincides with it, in NEURON's order.
        r = c.cont([
            schedule(every=100, scatter_gather=250, init=[2], add_at=[7.5], on_spike=["soma"]),
            watch(values=["soma.v"], spikes=False),
        ])  # fmt: skip
        assert isinstance(r, Sync) and r.step == 0 and r.t == 0.0 and r.reasons == ("init_2", "every"), r
        h2 = c.hello()
        assert h2.owner == "hello-test", "the first continue makes its sender the owner"
        assert h2.schedule == Schedule(init=(2,), every=100, scatter_gather=250, at=(7.5,), on_spike=("soma",))
        assert h2.watch.values == ("soma.v",) and h2.watch.spikes is False
        assert h2.pending.step == 0 and h2.pending.t == 0.0 and h2.step == 0
        assert h2.pending.reasons == r.reasons and h2.pending.id is None
        d = c.cont([stop()])
        assert isinstance(d, Done) and d.reason == "stop"
    assert node.wait(NODE_EXIT_TIMEOUT) == 0
    check_summary(node, tmp_path / "d", steps=0)
    # `pending` is a sync report as the spec shows it: {"op": "sync", "id": null, ...}.
    assert raw["pending"].get("op") == "sync", f"hello's pending lacks op=sync: {raw['pending']!r}"
    assert raw["pending"]["id"] is None and raw["pending"]["at"] == [] and raw["pending"]["spike"] is None


def test_get_reads_without_advancing(start_node, control, tmp_path: Path) -> None:
    out = tmp_path / "d"
    node = start_node(["--control", control("ipc"), "--set", "soma.threshold=0", "--out", str(out)])
    seen: list[tuple[int, float, float]] = []
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        v = c.get(["ns.interval", "dt", "syn.tau"])
        assert (v.t, v.step) == (0.0, 0) and v.values == {"ns.interval": 20.0, "dt": 0.025, "syn.tau": 20.0}
        r = c.cont([schedule(every=1000), watch(values=["soma.v", "syn.g"])])
        while isinstance(r, Sync) and not r.is_end:
            v1 = c.get(["soma.v", "soma(0.5).v", "syn.g"])
            v2 = c.get("soma.v")
            assert (v1.t, v1.step) == (r.t, r.step) and (v2.t, v2.step) == (r.t, r.step), "get does not advance"
            assert bits([v1["soma.v"], v1["soma(0.5).v"], v1["syn.g"], v2["soma.v"]]) == bits(
                [r.values["soma.v"]] * 2 + [r.values["syn.g"], r.values["soma.v"]]
            )
            seen.append((r.step, r.values["soma.v"], r.values["syn.g"]))
            r = c.cont()
        assert isinstance(r, Sync) and r.is_end
        assert isinstance(c.cont(), Done)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0
    # The voltage read at step n is the sample at t_n in traces.csv.  (Not syn.g: an `every`
    # point is the step boundary after the events due by t_n, which the sample precedes.)
    _, cols = read_traces(out / "traces.csv")
    assert [s for s, _, _ in seen] == list(range(0, SEED_SAMPLES - 1, 1000))
    assert_same_doubles([v for _, v, _ in seen], [cols["soma.v"][s] for s, _, _ in seen], "soma.v at syncs")
    # syn.g at the sync, plus the NetStim events of the next step's first half (t_n, t_n +
    # dt/2] (nc: delay 0, weight 0.1), decayed one step, is the next sample: the sync saw
    # every event due by t_n and none after.
    dt, decay = 0.025, math.exp(-0.025 / 20.0)
    ns = [t for src, t in read_spikes(out / "spikes.csv") if src == "ns"]
    first_half = 0
    for s, _, g in seen:
        t = cols["t"][s]
        w = 0.1 * sum(1 for x in ns if t < x <= t + dt / 2)
        first_half += w > 0
        assert math.isclose(cols["syn.g"][s + 1], (g + w) * decay, rel_tol=1e-12), (s, g, w, cols["syn.g"][s + 1])
    # Both cases occur: a NetStim spike falls just after some sync points (t = 100, 200...).
    assert 0 < first_half < len(seen), first_half


# A scripted run used by the error, resend and retry tests: sync points at 100 and 250 ms,
# a parameter change and two injected events at the first, a weight change at the second.
Point = Callable[[str, Sync, Controller], None]


def scripted_run(
    c: Controller, at_point: Point | None = None, cont: Callable[[list], Sync | Done] | None = None
) -> list[Sync]:
    cont = cont or c.cont
    h = c.hello()
    reports = [h.pending]
    if at_point:
        at_point("start", h.pending, c)
    r = cont([schedule(add_at=[100.0, 250.0]), watch(values=["ns.interval", "nc.weight", "soma.v"])])
    assert isinstance(r, Sync) and r.has("at") and r.step == 4000, r
    reports.append(r)
    if at_point:
        at_point("t100", r, c)
    r = cont([set_("ns.interval", 7.5), event("syn", r.t + 3.0, 0.05), event("nc", r.t + 10.0)])
    assert isinstance(r, Sync) and r.has("at") and r.step == 10000, r
    reports.append(r)
    if at_point:
        at_point("t250", r, c)
    r = cont([set_("nc.weight", 0.2)])
    assert isinstance(r, Sync) and r.is_end, r
    reports.append(r)
    if at_point:
        at_point("end", r, c)
    d = cont([])
    assert isinstance(d, Done) and d.reason == "end", d
    return reports


def scripted_node(start_node: Callable[..., Node], control: Callable[..., str], out: Path, kind: str = "ipc") -> Node:
    """A node for the scripted run, its control endpoint from the `control` fixture (`kind`:
    the ZeroMQ kind, on the ZeroMQ transport)."""
    return start_node(["--control", control(kind), "--set", "soma.threshold=0", "--out", str(out)])


@pytest.fixture(scope="module")
def reference_run(spikebus_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, list[Sync]]:
    """The scripted run, undisturbed: output bytes and reports."""
    out = tmp_path_factory.mktemp("reference") / "d"
    with Node(
        ["--control", "tcp://127.0.0.1:0", "--set", "soma.threshold=0", "--out", str(out)],
        binary=spikebus_bin,
        cwd=REPO_ROOT,
    ) as node:
        with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
            reports = scripted_run(c)
        assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    traces, spikes = output_bytes(out)
    # Sanity: the script's actions changed the run (the checks below would be vacuous otherwise).
    seed = load_golden("seed")
    _, cols = read_traces(out / "traces.csv")
    assert bits(cols["soma.v"]) != bits(seed.traces["soma.v"])
    return traces, spikes, reports


def expect_error(
    c: Controller, request: dict | bytes, code: str, field: str | None = None, id_echoed: bool = True
) -> dict:
    """Send a bad request; the reply is an `error` with this code (and field), and the node
    is still paused at the same point with the same values."""
    before = c.hello()
    probe = ["ns.interval", "nc.weight", "syn.tau", "soma.v", "syn.g"]
    values = c.get(probe)
    if isinstance(request, bytes):
        reply = c.decode(c.send_bytes(request))
        assert reply.get("id") is None
    else:
        request = {"id": c.new_id(), **request}
        reply = c.request_map(request)
        if id_echoed:
            assert reply.get("id") == request["id"], reply
    assert reply.get("op") == "error", f"{request!r} was accepted: {reply!r}"
    assert code == "*" or reply.get("code") == code, f"{request!r}: {reply!r}"
    assert isinstance(reply.get("message"), str) and reply["message"], reply
    if field is not None:
        assert reply.get("field") == field, f"{request!r}: {reply!r}"
    after = c.hello()
    assert (after.t, after.step, after.pending.reasons, after.pending.t, after.pending.step) == (
        before.t, before.step, before.pending.reasons, before.pending.t, before.pending.step,
    ), "an error moved the run"  # fmt: skip
    assert after.schedule == before.schedule and after.watch == before.watch, "an error changed the settings"
    assert after.owner == before.owner, f"an error changed the owner: {before.owner!r} -> {after.owner!r}"
    assert bits(list(c.get(probe).values.values())) == bits(list(values.values.values())), "an error changed a value"
    return reply


def cont_req(*actions: dict) -> dict:
    return {"op": "continue", "actions": list(actions)}


def disturb(label: str, r: Sync, c: Controller) -> None:
    """Every kind of refused request, at every point of the scripted run."""
    expect_error(c, {"op": "hello", "protocol": 1}, "protocol_mismatch")
    expect_error(c, {"op": "hello", "protocol": 3}, "protocol_mismatch")
    # A takeover in a hello of another version is refused like any such hello: no takeover.
    expect_error(c, {"op": "hello", "protocol": 1, "client": "usurper", "takeover": True}, "protocol_mismatch")
    expect_error(c, b"\xc1 this is not MessagePack", "bad_message")
    expect_error(c, msgpack.packb([1, 2, 3]), "bad_message")
    expect_error(c, msgpack.packb("continue"), "bad_message")
    expect_error(c, {"op": "get", "names": ["soma.nope"]}, "unknown_name", "names[0]")
    expect_error(c, cont_req(set_("soma.nope", 1.0)), "unknown_name", "actions[0].name")
    expect_error(c, cont_req(set_("nope", 1.0)), "unknown_name", "actions[0].name")
    expect_error(c, cont_req(set_("soma.v", 1.0)), "unknown_name", "actions[0].name")
    expect_error(c, cont_req(set_("syn.tau", -1.0)), "invalid_value", "actions[0].value")
    expect_error(c, cont_req(set_("syn.tau", 0.0)), "invalid_value", "actions[0].value")
    expect_error(c, cont_req(set_("ns.interval", math.nan)), "invalid_value", "actions[0].value")
    expect_error(c, cont_req(set_("nc.weight", math.inf)), "invalid_value", "actions[0].value")
    expect_error(c, cont_req(set_("soma.nseg", 3)), "not_writable")
    # FInitializeHandler types are 0 to 3 (a list, not the bool of protocol 1).
    expect_error(c, cont_req({"op": "schedule", "init": [4]}), "invalid_value", "actions[0].init[0]")
    expect_error(c, cont_req({"op": "schedule", "init": [0, 9]}), "invalid_value", "actions[0].init[1]")
    expect_error(c, cont_req({"op": "schedule", "init": True}), "bad_message", "actions[0].init")
    expect_error(c, cont_req(schedule(remove_at=[77.0])), "invalid_value", "actions[0].remove_at[0]")
    # All or nothing: a valid action before a bad one is not applied.
    expect_error(c, cont_req(set_("ns.interval", 999.0), set_("soma.nope", 1.0)), "unknown_name", "actions[1].name")
    expect_error(c, cont_req(schedule(every=1, scatter_gather=1), {"op": "schedule", "init": [5]}), "invalid_value")
    if label == "start":
        expect_error(c, cont_req(event("syn", 1.0, 0.1)), "wrong_state")
    elif label == "end":
        # No event after the end point: the point is checked before the values.
        expect_error(c, cont_req(event("syn", r.t - 1.0, 0.1)), "wrong_state", "actions[0].t")
        expect_error(c, cont_req(event("syn", r.t + 1.0, 0.1)), "wrong_state", "actions[0].t")
        # No sync time can be reached: the node may call a passed one either.
        assert expect_error(c, cont_req(schedule(add_at=[r.t - 1.0])), "*")["code"] in ("event_in_past", "wrong_state")
    else:
        expect_error(c, cont_req(event("syn", r.t - 1.0, 0.1)), "event_in_past", "actions[0].t")
        expect_error(c, cont_req(set_("nc.weight", 0.5), event("syn", r.t - 0.5, 0.1)), "event_in_past", "actions[1].t")
        expect_error(c, cont_req(schedule(add_at=[r.t - 1.0])), "event_in_past", "actions[0].add_at[0]")
        # The point's own t, on the grid, is queued at t - dt/4 (CVode.event): passed.
        expect_error(c, cont_req(schedule(add_at=[r.t])), "event_in_past", "actions[0].add_at[0]")
        expect_error(c, cont_req(event("syn", r.t + 1.0)), "invalid_value", "actions[0].weight")
        expect_error(
            c, cont_req(set_("nc.weight", 0.5), event("nope", r.t + 1.0, 0.1)), "unknown_name", "actions[1].target"
        )
        # The run has an owner: another client's continue is refused before its actions
        # are looked at, valid or not, a stop included.
        for actions in ([set_("ns.interval", 1.0)], [stop()], [set_("nope", 1.0)]):
            expect_error(c, {**cont_req(*actions), "client": "intruder"}, "not_owner")
    # Unknown request or action (the node may not echo the id of a request it cannot parse).
    expect_error(c, {"op": "jump"}, "unknown_op", id_echoed=False)
    expect_error(c, cont_req({"op": "teleport"}), "unknown_op", id_echoed=False)
    expect_error(c, {"op": "continue", "actions": "all of them"}, "bad_message", id_echoed=False)
    expect_error(c, {"op": "get", "names": [], "client": ""}, "bad_message", "client", id_echoed=False)
    expect_error(c, {"op": "continue", "client": "x" * 65}, "bad_message", "client", id_echoed=False)


def test_errors_leave_the_run_unchanged(start_node, control, tmp_path: Path, reference_run) -> None:
    """Unknown parameter, invalid value, event in the past, protocol mismatch, bytes that
    are not MessagePack...: each gets an `error`, and the run is bit for bit the undisturbed
    one."""
    out = tmp_path / "d"
    node = scripted_node(start_node, control, out)
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        reports = scripted_run(c, at_point=disturb)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    assert output_bytes(out) == reference_run[:2], "a refused request changed the run"
    assert [(s.t, s.step, s.reasons, s.values) for s in reports] == [
        (s.t, s.step, s.reasons, s.values) for s in reference_run[2]
    ]


def test_resent_request_gets_the_same_reply_and_is_applied_once(
    start_node, control, tmp_path: Path, reference_run
) -> None:
    out = tmp_path / "d"
    node = scripted_node(start_node, control, out, "tcp")
    resent = 0
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:

        def cont_twice(actions: list) -> Sync | Done:
            nonlocal resent
            req = pack({"op": "continue", "id": c.new_id(), "actions": actions})
            first = c.decode(c.send_bytes(req))
            if first["op"] == "done":
                return Done.from_wire(first)  # the node has exited: nothing to resend to
            again = c.decode(c.send_bytes(req))
            assert again == first, f"resend answered differently: {first!r} then {again!r}"
            resent += 1
            # Reads are resendable too, and nothing moved.
            hreq = pack({"op": "hello", "id": c.new_id(), "protocol": 2})
            h1, h2 = c.decode(c.send_bytes(hreq)), c.decode(c.send_bytes(hreq))
            assert h1 == h2 and h1["step"] == first["step"] and h1["pending"]["step"] == first["step"]
            greq = pack({"op": "get", "id": c.new_id(), "names": ["ns.interval", "nc.weight"]})
            g1, g2 = c.decode(c.send_bytes(greq)), c.decode(c.send_bytes(greq))
            assert g1 == g2 and g1["step"] == first["step"]
            return Sync.from_wire(first)

        reports = scripted_run(c, cont=cont_twice)
    assert resent == 3
    # Applied once: ns.interval is 7.5 after the resent set (not changed twice), and the
    # whole run is the reference (a second application of the events would show in syn.g).
    assert reports[2].values["ns.interval"] == 7.5
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    assert output_bytes(out) == reference_run[:2], "a resent request was applied twice"


class LossyProxy:
    """A relay between controllers and a node that drops the first reply to every distinct
    `continue` request (as a network that loses replies would), the final `done` included:
    the node lingers after `done` and answers its resend with the same `done`.

    The front is a ROUTER (controllers connect REQ sockets); each front connection gets its
    own DEALER to the node, speaking REQ's envelope, so that the node sees one peer per
    controller socket, as it would without the relay."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.ctx = zmq.Context()
        self.dropped: list[dict] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.endpoint = ""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "proxy did not start"

    def _run(self) -> None:
        backs: dict[bytes, zmq.Socket] = {}  # front routing id -> its DEALER to the node
        try:
            front = self.ctx.socket(zmq.ROUTER)
            front.setsockopt(zmq.LINGER, 0)
            port = front.bind_to_random_port("tcp://127.0.0.1")
            self.endpoint = f"tcp://127.0.0.1:{port}"
            self._ready.set()
            owner_of: dict[zmq.Socket, bytes] = {}
            pending: dict[bytes, bytes] = {}  # front routing id -> its request
            dropped_once: set[bytes] = set()
            poller = zmq.Poller()
            poller.register(front, zmq.POLLIN)
            while not self._stop.is_set():
                for sock, _ in poller.poll(50):
                    frames = sock.recv_multipart()
                    if sock is front:
                        rid, req = frames[0], frames[-1]
                        if rid not in backs:
                            back = self.ctx.socket(zmq.DEALER)
                            back.setsockopt(zmq.LINGER, 0)
                            back.connect(self.backend)
                            backs[rid] = back
                            owner_of[back] = rid
                            poller.register(back, zmq.POLLIN)
                        pending[rid] = req
                        backs[rid].send_multipart([b"", req])
                    else:
                        rid = owner_of[sock]
                        req = pending.pop(rid, b"")
                        op = msgpack.unpackb(req, raw=False).get("op") if req else None
                        reply = msgpack.unpackb(frames[-1], raw=False)
                        if op == "continue" and reply.get("op") in ("sync", "done") and req not in dropped_once:
                            dropped_once.add(req)
                            self.dropped.append(reply)
                            continue
                        front.send_multipart([rid, b"", frames[-1]])
            front.close(0)
        except BaseException as e:  # surfaced by close()
            self._error = e
            self._ready.set()
        finally:
            for back in backs.values():
                back.close(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.ctx.term()
        if self._error:
            raise self._error


def read_frame(sock: socket.socket) -> bytes | None:
    """One frame of the unix transport (4-byte big-endian length, then the bytes); None at the
    end of the stream."""
    data = b""
    need = 4
    while len(data) < need:
        got = sock.recv(need - len(data))
        if not got:
            return None
        data += got
        if len(data) == 4 and need == 4:
            need = 4 + struct.unpack(">I", data)[0]
    return data[4:]


class UnixLossyProxy:
    """LossyProxy for the unix transport: a Unix socket in front (controllers connect to
    ``unix://`` + its path); each front connection gets its own connection to the node, so that
    the node sees one peer per controller connection; the first reply to every distinct
    `continue` is dropped."""

    def __init__(self, backend: str, front: str) -> None:
        self.backend = backend[len("unix://") :]
        self.dropped: list[dict] = []
        self._dropped_once: set[bytes] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        path = front[len("unix://") :]
        self.endpoint = front
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen()
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                front, _ = self._listener.accept()
            except TimeoutError:
                continue
            front.settimeout(None)
            t = threading.Thread(target=self._relay, args=(front,), daemon=True)
            t.start()
            self._threads.append(t)

    def _relay(self, front: socket.socket) -> None:
        back = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            back.connect(self.backend)
            while True:
                req = read_frame(front)
                if req is None:
                    return
                back.sendall(frame(req))
                rep = read_frame(back)
                if rep is None:
                    return
                op = msgpack.unpackb(req, raw=False).get("op")
                reply = msgpack.unpackb(rep, raw=False)
                with self._lock:
                    drop = op == "continue" and reply.get("op") in ("sync", "done") and req not in self._dropped_once
                    if drop:
                        self._dropped_once.add(req)
                        self.dropped.append(reply)
                if not drop:
                    front.sendall(frame(rep))
        except OSError:
            pass  # the controller gave up this connection (its timeout)
        except BaseException as e:  # surfaced by close()
            self._errors.append(e)
        finally:
            back.close()
            front.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()
        for t in self._threads:
            t.join(10)
        if self._errors:
            raise self._errors[0]


def test_controller_retries_a_lost_reply(
    start_node, endpoint, control, transport: str, tmp_path: Path, reference_run
) -> None:
    """Controller: no reply within timeout_ms -> the same request (same client, id and bytes)
    on a fresh socket; the node answers from the replies it keeps (for the final `done`, while
    it lingers); the run is the reference bit for bit."""
    out = tmp_path / "d"
    node = scripted_node(start_node, control, out, "tcp")
    proxy = LossyProxy(node.control) if transport == "zmq" else UnixLossyProxy(node.control, endpoint("unix", "proxy"))
    try:
        with Controller(proxy.endpoint, timeout_ms=500, retries=3) as c:
            reports = scripted_run(c)
            resends = c.resends
    finally:
        proxy.close()
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    # Each continue lost its first reply: three syncs, then the done.
    assert resends == 4 and len(proxy.dropped) == 4, (resends, proxy.dropped)
    assert [d["step"] for d in proxy.dropped[:3]] == [s.step for s in reports[1:]]
    assert proxy.dropped[3]["op"] == "done" and proxy.dropped[3]["reason"] == "end", proxy.dropped[3]
    assert [(s.t, s.step, s.reasons, s.values) for s in reports] == [
        (s.t, s.step, s.reasons, s.values) for s in reference_run[2]
    ]
    assert output_bytes(out) == reference_run[:2], "a retried request was applied twice"


def cvode_event_time(T: float, dt: float) -> float:
    """Where NEURON's CVode.event(T) queues T in a fixed-step run (cvodeobj.cpp): T - dt/4 when
    T/dt is within 1e-6 of an integer above 1 (README, the `at` row)."""
    y = T / dt
    return T - dt / 4 if y > 1 and abs(math.floor(y + 1e-6) - y) < 1e-6 else T


def test_schedule_points(start_node, control, tmp_path: Path) -> None:
    """Where each kind of sync point falls (README, "Sync points"): the FInitializeHandler
    types in NEURON's order (3, 0, 1, 2) at t = 0; `at` T at the boundary after the step that
    delivered T (the first t_m >= T as queued), its time in `at`; `spike` at the detection,
    with t = the spike's time; reasons of one boundary in one report; events refused at
    init_3 and accepted from init_0 on."""
    out = tmp_path / "d"
    node = start_node(
        ["--control", control("ipc"), "--set", "soma.threshold=0", "--set", "tstop=60", "--out", str(out)]
    )
    ats = [0.0, 12.3456, 20.0, 30.0125, 45.0]
    reports: list[Sync] = []
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        r = c.cont([schedule(add_at=ats, on_spike=["soma"], init=[2, 1, 0, 3]), watch(values=["syn.g"])])
        while isinstance(r, Sync):
            reports.append(r)
            if r.has("init_3"):
                # Initialization has yet to clear the event queue: no events.
                with pytest.raises(SpikebusError) as e:
                    c.cont([event("syn", 0.0, 0.01)])
                assert e.value.code == "wrong_state", e.value
                r = c.cont()
            elif r.has("init_0"):
                # The queue is cleared, t = 0: an event now is delivered with the NetStim's.
                r = c.cont([event("syn", 0.0, 0.01)])
            else:
                r = c.cont()
        assert isinstance(r, Done)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0
    _, cols = read_traces(out / "traces.csv")
    t, dt = cols["t"], 0.025
    # Initialization: the types in NEURON's order, then `at` 0 (delivered at t = 0) with type 2
    # at the end of initialization, a step boundary.
    init = [(s.step, s.t, s.reasons, s.at) for s in reports[:4]]
    assert init == [
        (0, 0.0, ("init_3",), ()), (0, 0.0, ("init_0",), ()), (0, 0.0, ("init_1",), ()),
        (0, 0.0, ("at", "init_2"), (0.0,)),
    ], init  # fmt: skip
    at_points = [s for s in reports if s.has("at")]
    assert [s.at for s in at_points] == [(T,) for T in ats]
    want = [next(m for m in range(len(t)) if t[m] >= cvode_event_time(T, dt)) for T in ats]
    assert [s.step for s in at_points] == want, [(s.step, s.t) for s in at_points]
    assert want[2:] == [800, 1201, 1800], "20.0 and 45.0 are on the grid: queued at T - dt/4"
    for s in at_points:
        assert s.t == t[s.step], "an `at` point's t is the boundary's t (the sample's)"
    # Spikes: one point per soma spike, at its detection (t = the spike's time, t_n + 1e-10).
    soma = [x for src, x in read_spikes(out / "spikes.csv") if src == "soma"]
    spike_syncs = [s for s in reports if s.has("spike")]
    assert len(spike_syncs) == len(soma) > 0
    for s, ts in zip(spike_syncs, soma):
        assert s.reasons == ("spike",) and s.at == ()
        assert s.spike is not None and s.spike.source == "soma" and s.spike.t == ts == s.t, (s, ts)
        assert s.spikes[-1] == s.spike, "the spikes since the last report end with this point's own"
        assert t[s.step] < s.t <= t[s.step] + 2e-10, (s.step, t[s.step], s.t)
    assert all(s.spike is None for s in reports if not s.has("spike"))
    # The event sent at init_0 adds 0.01 to the NetStim's 0.1 at t = 0.
    assert math.isclose(cols["syn.g"][1], (0.1 + 0.01) * math.exp(-dt / 20.0), rel_tol=1e-12)
    assert reports[3].values["syn.g"] == 0.1 + 0.01, "init_2: the t = 0 events are delivered"


@pytest.mark.parametrize(
    "sched,want",
    [
        ({"every": 1}, ("every", "end")),
        ({"every": 10}, ("every", "end")),
        ({"add_at": [1.0]}, ("at", "end")),
        ({"every": 20, "add_at": [1.0]}, ("at", "every", "end")),
        ({"every": 3}, ("end",)),
        ({"scatter_gather": 1}, ("end",)),
    ],
    ids=["every1", "every10", "at_tstop", "at_every_end", "every3", "scatter_gather"],
)
def test_end_point_lists_coinciding_reasons(sched: dict, want: tuple, start_node, control, tmp_path: Path) -> None:
    """Reasons of one step boundary coincide in one report, in NEURON's order (`at`,
    `init_2`, `every`, `end`): the last boundary of a run to tstop = 1 ms (step 40) is an
    `every` point when 40 % N == 0 and the `at` point of T = 1.0 (queued at 1.0 - dt/4,
    delivered in the step from t_39), as well as the `end` point.  No `scatter_gather`
    follows the last step."""
    node = start_node(["--control", control("ipc"), "--set", "tstop=1", "--out", str(tmp_path / "d")])
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        r = c.cont([{"op": "schedule", **sched}])
        reports = []
        while isinstance(r, Sync):
            reports.append(r)
            r = c.cont()
    assert node.wait(NODE_EXIT_TIMEOUT) == 0
    end = reports[-1]
    assert end.is_end and end.step == 40
    assert end.reasons == want, f"schedule {sched}: the end point (step 40, t={end.t!r}) reports {end.reasons}"
    assert end.at == ((1.0,) if "at" in want else ())
    if "scatter_gather" in sched:
        assert [s.step for s in reports[:-1]] == list(range(40)), "a scatter_gather point in each of the 40 steps"


# ---------------------------------------------------------------------------------------
# One owner per run, takeovers, and the linger after `done` (README, "Clients, the owner,
# exactly once")


def test_one_owner_takeovers_and_the_linger(start_node, endpoint, control, tmp_path: Path) -> None:
    """Only the owner's `continue` moves the run: anyone else gets `not_owner` and changes
    nothing; `hello` with `takeover` hands the run over (named on the stream, topic `owner`,
    and on stderr), and the schedule and watch stay the run's.  After `done` the node answers
    a resend of the final request with the same `done` and anything else with `wrong_state`,
    and exits as soon as its controllers have disconnected."""
    node = start_node([
        "--control", control("ipc"), "--pub", endpoint("ipc", "pub"), "--wait-subscribers", "1",
        "--set", "tstop=5", "--out", str(tmp_path / "d"),
    ])  # fmt: skip

    def refused(c: Controller, actions: list, code: str) -> None:
        with pytest.raises(SpikebusError) as e:
            c.cont(actions)
        assert e.value.code == code, e.value

    with Observer(node.pub) as obs:
        a = Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0, client="ctl-a")
        b = Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0, client="ctl-b")
        try:
            hb = b.hello()
            assert (hb.client, hb.owner) == ("ctl-b", None)
            # A takeover before anyone continued: b owns the run, a may only read.
            hb = b.hello(takeover=True)
            assert (hb.owner, hb.pending.reasons) == ("ctl-b", ("start",))
            refused(a, [schedule(every=10)], "not_owner")
            ha = a.hello(takeover=True)
            assert ha.owner == "ctl-a" and ha.pending.reasons == ("start",) and ha.schedule.every == 0
            r = a.cont([schedule(every=10), watch(values=["syn.tau"])])
            assert isinstance(r, Sync) and r.step == 0
            # b reads as it likes; its continues, valid or not, a stop included, move nothing.
            before = b.get(["syn.tau"])
            for actions in ([], [set_("syn.tau", 1.0)], [stop()], [set_("nope", 1.0)]):
                refused(b, actions, "not_owner")
            after = b.get(["syn.tau"])
            assert (after.step, after.values, after.raw["hash"]) == (before.step, before.values, before.raw["hash"])
            r = a.cont()
            assert isinstance(r, Sync) and r.step == 10
            # b takes over mid-run: pending is where the run is; a is refused from now on.
            hb = b.hello(takeover=True)
            assert (hb.owner, hb.pending.step, hb.pending.t) == ("ctl-b", 10, r.t)
            refused(a, [], "not_owner")
            r = b.cont([set_("syn.tau", 5.0)])
            assert isinstance(r, Sync) and r.step == 20 and r.values["syn.tau"] == 5.0
            # a takes it back: the schedule and the watch list are the run's, not b's.
            ha = a.hello(takeover=True)
            assert ha.owner == "ctl-a" and ha.pending.step == 20
            assert ha.schedule.every == 10 and ha.watch.values == ("syn.tau",)
            # The final request, and its resend (as if the reply had been lost).
            fin = pack({"op": "continue", "id": a.new_id(), "client": "ctl-a", "actions": [stop()]})
            done = a.decode(a.send_bytes(fin))
            assert done["op"] == "done" and done["reason"] == "stop", done
            assert a.decode(a.send_bytes(fin)) == done, "the resent final request got another reply"
            # While it lingers, the node answers anything else with wrong_state.
            refused(b, [], "wrong_state")
            with pytest.raises(SpikebusError) as e:
                b.hello()
            assert e.value.code == "wrong_state", e.value
        finally:
            a.close()
            b.close()
        closed = time.monotonic()
        assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
        exited = time.monotonic() - closed
        msgs = collect(obs)
    assert exited < 3.0, f"the node took {exited:.1f} s to exit with no controller connected (--linger is 5 s)"
    # Each takeover on the stream where it happened, between the sync points it came between.
    # The two at the start point were published before `started` (seq 0 and 1), before the
    # node waits for subscribers: this observer got them only if its subscription had arrived
    # (no handshake says so), hence the sequence after `started` is checked exactly.
    started = next(m for m in msgs if m.topic == "started")
    assert started.seq == 2, f"two owner messages before `started`, then it: seq {started.seq}"
    early = [(m.data["client"], m.data["previous"], m.data["step"]) for m in msgs if m.seq < started.seq]
    assert early == [("ctl-b", None, 0), ("ctl-a", "ctl-b", 0)][2 - len(early) :], early
    order = [
        (m.topic, m.data.get("client"), m.data.get("previous"), m.data["step"])
        for m in msgs
        if m.seq > started.seq and m.topic in ("owner", "sync")
    ]
    assert order == [
        ("sync", None, None, 0), ("sync", None, None, 0), ("sync", None, None, 10), ("owner", "ctl-b", "ctl-a", 10),
        ("sync", None, None, 20), ("owner", "ctl-a", "ctl-b", 20),
    ], order  # fmt: skip
    assert next(m.data["t"] for m in msgs if m.topic == "owner" and m.data["step"] == 10) == hb.pending.t
    took_over = [line for line in node.stderr.splitlines() if "took over" in line]
    assert len(took_over) == 4 and "`ctl-b`" in took_over[2] and "`ctl-a`" in took_over[2], took_over


def test_a_refused_continue_claims_no_run(start_node, control, tmp_path: Path) -> None:
    """At the start point, nobody owns the run: a `continue` refused for its actions leaves
    it so, and the next client's `continue` is served."""
    node = start_node(["--control", control("ipc"), "--set", "tstop=1", "--out", str(tmp_path / "d")])
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0, client="reader") as reader, Controller(
        node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0, client="ctl"
    ) as ctl:
        with pytest.raises(SpikebusError) as e:
            reader.cont([set_("syn.tau", -1.0)])
        assert e.value.code == "invalid_value"
        assert reader.hello().owner is None, "a refused continue claimed the run"
        assert isinstance(ctl.cont([stop()]), Done)


def test_an_event_at_init_3_is_wrong_state_whatever_its_values(start_node, control, tmp_path: Path) -> None:
    node = start_node(["--control", control("ipc"), "--set", "tstop=1", "--out", str(tmp_path / "d")])
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        r = c.cont([schedule(init=[3])])
        assert isinstance(r, Sync) and r.reasons == ("init_3",)
        codes = []
        for a in (event("syn", 1.0, 0.1), event("nope", 1.0, 0.1), event("syn", 1.0, math.nan), event("syn", 1.0)):
            with pytest.raises(SpikebusError) as e:
                c.cont([a])
            codes.append(e.value.code)
        assert isinstance(c.cont([stop()]), Done)
    assert codes == ["wrong_state"] * 4, codes


def test_every_init_type_outside_0_to_3_is_invalid_value(start_node, control, tmp_path: Path) -> None:
    node = start_node(["--control", control("ipc"), "--set", "tstop=1", "--out", str(tmp_path / "d")])
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        got = []
        for kind in (4, 255, 256, 2**32, 2**64 - 1):
            with pytest.raises(SpikebusError) as e:
                c.cont([{"op": "schedule", "init": [kind]}])
            got.append((kind, e.value.code, e.value.field))
        assert isinstance(c.cont([stop()]), Done)
    assert all(code == "invalid_value" and field == "actions[0].init[0]" for _, code, field in got), got
