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
import subprocess
import sys
import threading
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


@pytest.mark.parametrize("kind", ["ipc", "tcp"])
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


def test_seed_interval_ipc_and_tcp_outputs_are_byte_identical(start_node, endpoint, tmp_path: Path) -> None:
    for kind in ("ipc", "tcp"):
        if kind not in _seed_outputs:  # run alone (e.g. with -k)
            run_seed_interval(start_node, endpoint, kind, tmp_path / kind)
    assert _seed_outputs["ipc"][0] == _seed_outputs["tcp"][0], "traces.csv differs between ipc and tcp"
    assert _seed_outputs["ipc"][1] == _seed_outputs["tcp"][1], "spikes.csv differs between ipc and tcp"


def test_seed_interval_controller_killed_and_restarted(start_node, endpoint, tmp_path: Path) -> None:
    """SIGKILL the controller several times mid-run; each new one resumes from hello's
    `pending`; the files are still NEURON's bit for bit."""
    out = tmp_path / "d"
    node = start_node(["--control", endpoint("ipc"), "--set", "soma.threshold=0", "--out", str(out)])
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
    assert done["reason"] == "end" and done["dropped"] == 0, done

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


def test_stream_beside_a_controller(start_node, endpoint, tmp_path: Path) -> None:
    """The seed program steering over control, two subscribers (this test and
    observer.py): the stream still equals the NEURON-exact output; a `sync` per sync point."""
    out = tmp_path / "d"
    node = start_node([
        "--control", endpoint("ipc", "ctl"), "--pub", endpoint("tcp"), "--wait-subscribers", "2",
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
    # The `start` point precedes `started` ("once, before initialization"); this node does
    # not publish it as a `sync` (the spec's "each sync point" leaves that open): if it is
    # there, it comes first.
    if "start" in syncs[0]["reasons"]:
        assert syncs[0]["reasons"] == ["start"] and syncs[0]["step"] == 0
        syncs = syncs[1:]
    assert not any("start" in d["reasons"] for d in syncs)
    assert "end" in syncs[-1]["reasons"] and syncs[-1]["step"] == SEED_SAMPLES - 1
    every_steps = [d["step"] for d in syncs if "every" in d["reasons"]]
    # An `every` sync per step (schedule every=1); whether the end point (step 20000) also
    # lists `every` is checked by test_end_point_lists_coinciding_reasons.
    assert every_steps[: SEED_SAMPLES - 1] == list(range(SEED_SAMPLES - 1)), "an `every` sync per step"
    assert len(syncs) == len(set(every_steps) | {syncs[-1]["step"]}), "one sync per point"
    assert all("id" not in d for d in syncs), "stream syncs carry no id"
    assert syncs[-1]["values"]["ns.interval"] == 4040.0

    # observer.py: saw everything, counted no gaps.
    summary = w_out.strip().splitlines()[-1]
    assert "seq gaps 0" in summary and "dropped 0" in summary, w_out
    assert f"received {len(msgs)} messages" in summary, (summary, len(msgs))


# ---------------------------------------------------------------------------------------
# The other controllers


def test_closed_loop_rate_holds_the_target(start_node, endpoint, tmp_path: Path) -> None:
    """closed_loop_rate.py adjusts nc.weight every window; once settled, the soma's rate is
    near the target (the NetStim is noisy so the rate is graded in the weight)."""
    out = tmp_path / "d"
    target, window, tstop = 20.0, 500.0, 30_000.0
    node = start_node([
        "--control", endpoint("tcp"), "--set", "ns.noise=1", "--set", f"tstop={tstop}",
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


def test_spike_steering_drives_the_cell_by_injected_events(start_node, endpoint, tmp_path: Path) -> None:
    """spike_steering.py silences the NetStim and injects events: each shows up as a jump of
    syn.g at the step that delivers it, nowhere else, and the soma spikes after them."""
    out = tmp_path / "d"
    log = tmp_path / "events.json"
    node = start_node(["--control", endpoint("ipc"), "--set", "soma.threshold=0", "--out", str(out)])
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


def test_hello_fields(start_node, endpoint, tmp_path: Path) -> None:
    node = start_node(["--control", endpoint("tcp"), "--set", "soma.threshold=0", "--out", str(tmp_path / "d")])
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        raw = c.request_map({"op": "hello", "id": 17, "protocol": 1})
        assert raw["op"] == "hello" and raw["id"] == 17
        for key in (
            "protocol",
            "node",
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
        assert h.protocol == 1 and h.node.startswith("spikebus")
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
        assert h.schedule.every == 0 and h.schedule.at == () and h.schedule.on_spike == () and h.schedule.init is False
        assert h.watch.values == () and h.watch.spikes is True
        assert h.pending.reasons == ("start",) and h.pending.t == 0.0 and h.pending.step == 0 and h.pending.id is None
        # Settings outlive a request: hello shows them.
        r = c.cont([schedule(every=100, add_at=[7.5], on_spike=["soma"]), watch(values=["soma.v"], spikes=False)])
        assert isinstance(r, Sync) and r.step == 0 and r.has("every")
        h2 = c.hello()
        assert h2.schedule.every == 100 and h2.schedule.at == (7.5,) and h2.schedule.on_spike == ("soma",)
        assert h2.watch.values == ("soma.v",) and h2.watch.spikes is False
        assert h2.pending.step == 0 and h2.pending.t == 0.0 and h2.step == 0
        d = c.cont([stop()])
        assert isinstance(d, Done) and d.reason == "stop"
    assert node.wait(NODE_EXIT_TIMEOUT) == 0
    check_summary(node, tmp_path / "d", steps=0)
    # `pending` is a sync report as the spec shows it: {"op": "sync", "id": null, ...}.
    assert raw["pending"].get("op") == "sync", f"hello's pending lacks op=sync: {raw['pending']!r}"


def test_get_reads_without_advancing(start_node, endpoint, tmp_path: Path) -> None:
    out = tmp_path / "d"
    node = start_node(["--control", endpoint("ipc"), "--set", "soma.threshold=0", "--out", str(out)])
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
    # The voltage read at step n is the sample at t_n in traces.csv.  (Not syn.g: a sync
    # point sits after the events due by t_n + dt/2 are delivered, the sample before.)
    _, cols = read_traces(out / "traces.csv")
    assert [s for s, _, _ in seen] == list(range(0, SEED_SAMPLES - 1, 1000))
    assert_same_doubles([v for _, v, _ in seen], [cols["soma.v"][s] for s, _, _ in seen], "soma.v at syncs")
    # syn.g at the sync, decayed one step, is the next sample (no event is due in between).
    decay = math.exp(-0.025 / 20.0)
    for s, _, g in seen:
        assert math.isclose(cols["syn.g"][s + 1], g * decay, rel_tol=1e-12), (s, g, cols["syn.g"][s + 1])


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


def scripted_node(start_node: Callable[..., Node], endpoint: Callable[..., str], out: Path, kind: str = "ipc") -> Node:
    return start_node(["--control", endpoint(kind), "--set", "soma.threshold=0", "--out", str(out)])


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
    assert bits(list(c.get(probe).values.values())) == bits(list(values.values.values())), "an error changed a value"
    return reply


def cont_req(*actions: dict) -> dict:
    return {"op": "continue", "actions": list(actions)}


def disturb(label: str, r: Sync, c: Controller) -> None:
    """Every kind of refused request, at every point of the scripted run."""
    expect_error(c, {"op": "hello", "protocol": 2}, "protocol_mismatch")
    expect_error(c, {"op": "hello", "protocol": 0}, "protocol_mismatch")
    expect_error(c, b"\xc1 this is not MessagePack", "bad_message")
    expect_error(c, msgpack.packb([1, 2, 3]), "bad_message")
    expect_error(c, msgpack.packb("continue"), "bad_message")
    expect_error(c, {"op": "get", "names": ["soma.nope"]}, "unknown_name", "names[0]")
    expect_error(c, cont_req(set_("soma.nope", 1.0)), "unknown_name", "actions[0].name")
    expect_error(c, cont_req(set_("nope", 1.0)), "unknown_name", "actions[0].name")
    expect_error(c, cont_req(set_("syn.tau", -1.0)), "invalid_value", "actions[0].value")
    expect_error(c, cont_req(set_("syn.tau", 0.0)), "invalid_value", "actions[0].value")
    expect_error(c, cont_req(set_("ns.interval", math.nan)), "invalid_value", "actions[0].value")
    expect_error(c, cont_req(set_("nc.weight", math.inf)), "invalid_value", "actions[0].value")
    expect_error(c, cont_req(set_("soma.nseg", 3)), "not_writable")
    # All or nothing: a valid action before a bad one is not applied.
    expect_error(c, cont_req(set_("ns.interval", 999.0), set_("soma.nope", 1.0)), "unknown_name", "actions[1].name")
    if label == "start":
        expect_error(c, cont_req(event("syn", 1.0, 0.1)), "wrong_state")
    elif label == "end":
        # After the end point no event can be delivered: the node may call that either.
        for req in (cont_req(event("syn", r.t - 1.0, 0.1)), cont_req(schedule(add_at=[r.t - 1.0]))):
            assert expect_error(c, req, "*")["code"] in ("event_in_past", "wrong_state")
    else:
        expect_error(c, cont_req(event("syn", r.t - 1.0, 0.1)), "event_in_past", "actions[0].t")
        expect_error(c, cont_req(set_("nc.weight", 0.5), event("syn", r.t - 0.5, 0.1)), "event_in_past", "actions[1].t")
        expect_error(c, cont_req(schedule(add_at=[r.t - 1.0])), "event_in_past")
        expect_error(
            c, cont_req(set_("nc.weight", 0.5), event("nope", r.t + 1.0, 0.1)), "unknown_name", "actions[1].target"
        )
    # Unknown request or action (the node may not echo the id of a request it cannot parse).
    expect_error(c, {"op": "jump"}, "unknown_op", id_echoed=False)
    expect_error(c, cont_req({"op": "teleport"}), "unknown_op", id_echoed=False)
    expect_error(c, {"op": "continue", "actions": "all of them"}, "bad_message", id_echoed=False)


def test_errors_leave_the_run_unchanged(start_node, endpoint, tmp_path: Path, reference_run) -> None:
    """Unknown parameter, invalid value, event in the past, protocol mismatch, bytes that
    are not MessagePack...: each gets an `error`, and the run is bit for bit the undisturbed
    one."""
    out = tmp_path / "d"
    node = scripted_node(start_node, endpoint, out)
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        reports = scripted_run(c, at_point=disturb)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    assert output_bytes(out) == reference_run[:2], "a refused request changed the run"
    assert [(s.t, s.step, s.reasons, s.values) for s in reports] == [
        (s.t, s.step, s.reasons, s.values) for s in reference_run[2]
    ]


def test_resent_request_gets_the_same_reply_and_is_applied_once(
    start_node, endpoint, tmp_path: Path, reference_run
) -> None:
    out = tmp_path / "d"
    node = scripted_node(start_node, endpoint, out, kind="tcp")
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
            hreq = pack({"op": "hello", "id": c.new_id(), "protocol": 1})
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
    """A ROUTER/DEALER relay between a controller and a node that drops the first `sync`
    reply to every distinct `continue` request (as a network that loses replies would).
    A `done` reply is not dropped: the node exits after sending it, so no resend could be
    answered."""

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
        try:
            front = self.ctx.socket(zmq.ROUTER)
            back = self.ctx.socket(zmq.DEALER)
            for s in (front, back):
                s.setsockopt(zmq.LINGER, 0)
            port = front.bind_to_random_port("tcp://127.0.0.1")
            back.connect(self.backend)
            self.endpoint = f"tcp://127.0.0.1:{port}"
            self._ready.set()
            pending: dict[bytes, bytes] = {}
            dropped_once: set[bytes] = set()
            poller = zmq.Poller()
            poller.register(front, zmq.POLLIN)
            poller.register(back, zmq.POLLIN)
            while not self._stop.is_set():
                for sock, _ in poller.poll(50):
                    frames = sock.recv_multipart()
                    if sock is front:
                        pending[frames[0]] = frames[-1]
                        back.send_multipart(frames)
                    else:
                        req = pending.pop(frames[0], b"")
                        op = msgpack.unpackb(req, raw=False).get("op") if req else None
                        reply = msgpack.unpackb(frames[-1], raw=False)
                        if op == "continue" and reply.get("op") == "sync" and req not in dropped_once:
                            dropped_once.add(req)
                            self.dropped.append(reply)
                            continue
                        front.send_multipart(frames)
            front.close(0)
            back.close(0)
        except BaseException as e:  # surfaced by close()
            self._error = e
            self._ready.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.ctx.term()
        if self._error:
            raise self._error


def test_controller_retries_a_lost_reply(start_node, endpoint, tmp_path: Path, reference_run) -> None:
    """Controller: no reply within timeout_ms -> the same request (same id, same bytes) on a
    fresh socket; the node answers from its cache; the run is the reference bit for bit."""
    out = tmp_path / "d"
    node = scripted_node(start_node, endpoint, out, kind="tcp")
    proxy = LossyProxy(node.control)
    try:
        with Controller(proxy.endpoint, timeout_ms=500, retries=3) as c:
            reports = scripted_run(c)
            resends = c.resends
    finally:
        proxy.close()
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    # Each continue answered by a sync lost its first reply.
    assert resends == 3 and len(proxy.dropped) == 3, (resends, proxy.dropped)
    assert [d["step"] for d in proxy.dropped] == [s.step for s in reports[1:]]
    assert [(s.t, s.step, s.reasons, s.values) for s in reports] == [
        (s.t, s.step, s.reasons, s.values) for s in reference_run[2]
    ]
    assert output_bytes(out) == reference_run[:2], "a retried request was applied twice"


def test_schedule_points(start_node, endpoint, tmp_path: Path) -> None:
    """`at` T: the first step point with t_n + dt/2 >= T; `spike`: right after a watched
    source's spike; `init`: before events at t = 0; several reasons are listed together."""
    out = tmp_path / "d"
    node = start_node(
        ["--control", endpoint("ipc"), "--set", "soma.threshold=0", "--set", "tstop=60", "--out", str(out)]
    )
    ats = [0.0, 12.3456, 20.0, 30.0125, 45.0]
    reports: list[Sync] = []
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        r = c.cont([schedule(add_at=ats, on_spike=["soma"], init=True), watch(values=["syn.g"])])
        while isinstance(r, Sync):
            reports.append(r)
            if r.has("init"):
                # Events are allowed at init (not at start).
                r = c.cont([event("syn", 0.0, 0.01)])
            elif r.is_end:
                r = c.cont()
            else:
                r = c.cont()
        assert isinstance(r, Done)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0
    _, cols = read_traces(out / "traces.csv")
    t, dt = cols["t"], 0.025
    assert reports[0].has("init") and reports[0].step == 0
    at_steps = [s.step for s in reports if s.has("at")]
    assert at_steps == [next(n for n in range(len(t)) if t[n] + dt / 2 >= T) for T in ats]
    for s in reports:
        assert s.t == t[s.step], "a sync's t is the sample's t"
    soma = [x for src, x in read_spikes(out / "spikes.csv") if src == "soma"]
    spike_syncs = [s for s in reports if s.has("spike")]
    assert len(spike_syncs) == len(soma) > 0
    for s, ts in zip(spike_syncs, soma):
        assert any(sp.source == "soma" and sp.t == ts for sp in s.spikes)
        # The step point that detected it (NEURON's spike times may sit a hair past t_n).
        assert s.t - dt < ts <= s.t + dt / 2, (s.t, ts)
    # The event sent at init adds 0.01 to the NetStim's 0.1 at t = 0.
    assert math.isclose(cols["syn.g"][1], (0.1 + 0.01) * math.exp(-dt / 20.0), rel_tol=1e-12)


@pytest.mark.parametrize(
    "sched", [{"every": 1}, {"every": 10}, {"add_at": [1.0]}], ids=["every1", "every10", "at_tstop"]
)
def test_end_point_lists_coinciding_reasons(sched: dict, start_node, endpoint, tmp_path: Path) -> None:
    """ "Several reasons can coincide; a report lists them all": the last step point of a
    run to tstop = 1 ms (step 40) is an `every` point (40 % N == 0) and the `at` point of
    T = 1.0 (t_40 + dt/2 >= 1), as well as the `end` point."""
    node = start_node(["--control", endpoint("ipc"), "--set", "tstop=1", "--out", str(tmp_path / "d")])
    with Controller(node.control, timeout_ms=REPLY_TIMEOUT_MS, retries=0) as c:
        r = c.cont([{"op": "schedule", **sched}])
        reports = []
        while isinstance(r, Sync):
            reports.append(r)
            r = c.cont()
    assert node.wait(NODE_EXIT_TIMEOUT) == 0
    end = reports[-1]
    assert end.is_end and end.step == 40
    want = "every" if "every" in sched else "at"
    assert end.has(want), f"schedule {sched}: the end point (step 40, t={end.t!r}) reports {end.reasons}, not {want!r}"
