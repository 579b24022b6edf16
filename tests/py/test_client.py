"""The Python client finishes the job (issue 9): a typed failure within 2 s when nothing
answers, Node.stop() and cleanup when Python exits or dies, the loop helper (Controller.run)
with NEURON's numbers, act(), logging.  Real node processes and sockets throughout."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

from helpers import (
    EXAMPLES,
    REPO_ROOT,
    assert_matches_golden,
    assert_same_doubles,
    load_golden,
    read_spikes,
    read_traces,
)
from spikebus_client import (
    Controller,
    Done,
    NodeUnreachable,
    SpikebusTimeout,
    Sync,
    set_,
    steps_of,
)

NODE_EXIT_TIMEOUT = 60


def free_tcp_endpoint() -> str:
    """A loopback port where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def wait_pid_exit(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to exit (a pidfd becomes readable when it
    does): True if it exited within ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        r, _, _ = select.select([fd], [], [], timeout)
        return bool(r)
    finally:
        os.close(fd)


def manifest(out: Path) -> dict:
    with open(out / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


def assert_complete_outputs(out: Path, reason: str) -> None:
    """The run's files are complete and its own (manifest.json, README "Outputs")."""
    m = manifest(out)
    assert m["complete"] is True and m["reason"] == reason, m
    assert set(m["files"]) == {"traces.csv", "spikes.csv"}, m
    for name, f in m["files"].items():
        assert (out / name).stat().st_size == f["bytes"], name
    assert not list(out.glob("*.partial")), list(out.iterdir())


# -- item 4: a wrong endpoint --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "ipc", "unix"])
def test_wrong_endpoint_fails_typed_within_2_s(kind: str, tmp_path: Path) -> None:
    ep = free_tcp_endpoint() if kind == "tcp" else f"{kind}://{tmp_path}/nobody.sock"
    for first in ("hello", "cont", "get"):
        c = Controller(ep)
        t0 = time.monotonic()
        with pytest.raises(NodeUnreachable) as e:
            if first == "hello":
                c.hello()
            elif first == "cont":
                c.cont()
            else:
                c.get(["soma.v"])
        elapsed = time.monotonic() - t0
        c.close()
        assert 1.9 <= elapsed < 2.5, elapsed
        assert isinstance(e.value, SpikebusTimeout)  # what the examples already catch
        assert e.value.endpoint == ep and ep in str(e.value), str(e.value)


def test_wrong_endpoint_in_the_seed_controller_is_one_line_in_2_s() -> None:
    ep = free_tcp_endpoint()
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(EXAMPLES / "seed_interval.py"), "--control", ep],
                       capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert f"no spikebus node answered at {ep} within 2 s" in p.stderr, p.stderr
    assert elapsed < 10, elapsed  # 2 s plus the interpreter's start


def test_the_handshake_does_not_bound_a_long_first_continue(start_node, tmp_path: Path, control: Callable[..., str]) -> None:
    """The 2 s cover only the first exchange: a first continue that runs the whole
    simulation (no sync point before the end) is given the per-request timeout."""
    out = tmp_path / "d"
    node = start_node(["--control", control("tcp"), "--set", "tstop=20000", "--out", out])
    with Controller(node.control, timeout_ms=120_000, connect_timeout_ms=50) as c:
        t0 = time.monotonic()
        r = c.cont()  # hello (handshake) first, then the run to the end point
        assert isinstance(r, Sync) and r.is_end and r.step == 800_000, r
        assert time.monotonic() - t0 > 0.05
        assert isinstance(c.cont(), Done)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0


# -- item 5: stopping and cleaning up ----------------------------------------------------------


def test_leaving_with_node_early_ends_the_run_gracefully(spikebus_bin: Path, tmp_path: Path, control: Callable[..., str]) -> None:
    from spikebus_client import Node

    out = tmp_path / "d"
    with Node(["--control", control("tcp"), "--set", "soma.threshold=0", "--out", str(out)],
              binary=spikebus_bin, cwd=REPO_ROOT) as node:
        assert node.out_dir == out
        with Controller(node.control) as c:
            r = c.cont([__import__("spikebus_client").schedule(add_at=[100.0])])
            assert isinstance(r, Sync) and r.has("at"), r
        # leaving the block mid-run, the node paused at t = 100
    assert node.returncode == 128 + signal.SIGTERM, node.stderr
    assert_complete_outputs(out, "signal")
    header, cols = read_traces(out / "traces.csv")
    g = load_golden("seed")
    n = len(cols["t"])
    assert 4000 <= n <= 4002, n  # the samples up to t = 100
    for name in header:
        assert_same_doubles(cols[name], g.traces[name][:n], name)
    assert [t for s, t in read_spikes(out / "spikes.csv") if s == "soma"] == [
        t for t in g.spikes["soma"] if t <= 100
    ]


def test_stop_returns_the_exit_status_and_a_finished_node_keeps_its_own(start_node, tmp_path: Path, control: Callable[..., str]) -> None:
    out = tmp_path / "d"
    node = start_node(["--control", control("tcp"), "--set", "tstop=5", "--out", out])
    with Controller(node.control) as c:
        done = c.stop()
    assert done.reason == "stop"
    assert node.stop(timeout=30) == 0
    assert manifest(out)["reason"] == "stop"
    # Stopping a node that waits for its controller: SIGTERM, exit 143, files complete.
    out2 = tmp_path / "e"
    node2 = start_node(["--control", control("tcp", "ctl2"), "--set", "tstop=5", "--out", out2])
    assert node2.stop() == 143
    assert_complete_outputs(out2, "signal")


HOLDER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from spikebus_client import Node
    node = Node(["--control", "tcp://127.0.0.1:0", "--out", sys.argv[3]], binary=sys.argv[2])
    node.start()
    print(node.pid, flush=True)
    if sys.argv[4] == "block":
        sys.stdin.read()   # until killed
    # "exit": the interpreter exits with the node never stopped
    """
)


@pytest.mark.parametrize("how", ["sigkill", "exit"])
@pytest.mark.parametrize("attempt", range(5))
def test_a_node_never_outlives_its_python(how: str, attempt: int, spikebus_bin: Path, tmp_path: Path) -> None:
    """SIGKILL of the Python process that holds a Node (the node's --lifeline pipe ends:
    one SIGTERM), or an interpreter that exits without stopping it (the finalizer at exit):
    the node, waiting for a controller, ends within seconds with its files complete.  The
    holder has threads (the Node's readers), so the node's parent thread is not the last
    of its process to die: a parent-death signal would come twice (and the second signal
    ends a node at once, writing nothing); repeated to catch that."""
    out = tmp_path / "d"
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(EXAMPLES), str(spikebus_bin), str(out),
         "block" if how == "sigkill" else "exit"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert p.stdout is not None
        pid = int(p.stdout.readline())
        if how == "sigkill":
            p.kill()
        assert p.wait(30) == (-signal.SIGKILL if how == "sigkill" else 0)
        assert wait_pid_exit(pid, 15), f"node {pid} still running after its Python {how}"
    finally:
        if p.poll() is None:
            p.kill()
    assert_complete_outputs(out, "signal")


def test_lifeline_option(spikebus_bin: Path, tmp_path: Path) -> None:
    """--lifeline FD: a bad descriptor is a start-up error (exit 2); a pipe whose writer
    closes it stops a free run as SIGTERM does (exit 143, files complete)."""
    for fd, why in (("2", "above 2"), ("999", "not an open descriptor")):
        p = subprocess.run([str(spikebus_bin), "run", "--lifeline", fd, "--out", str(tmp_path / "x")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and f"--lifeline {fd}: " in p.stderr and why in p.stderr, p.stderr
    r, w = os.pipe()
    out = tmp_path / "d"
    node = subprocess.Popen([str(spikebus_bin), "run", "--lifeline", str(r), "--set", "tstop=1e6",
                             "--max-steps", "100000000", "--out", str(out)], pass_fds=(r,),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(r)
    try:
        os.close(w)  # the writer is gone
        assert node.wait(60) == 143, node.stderr.read() if node.stderr else ""
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert_complete_outputs(out, "signal")


def test_a_collected_node_is_stopped(spikebus_bin: Path, tmp_path: Path) -> None:
    import gc

    from spikebus_client import Node

    out = tmp_path / "d"
    node = Node(["--control", "tcp://127.0.0.1:0", "--out", str(out)], binary=spikebus_bin)
    node.start()
    proc = node.process
    assert proc is not None
    del node
    gc.collect()
    assert proc.wait(30) == 143
    assert_complete_outputs(out, "signal")


# -- item 6: the loop helper -----------------------------------------------------------------


def test_steps_of() -> None:
    assert steps_of(1.0, 0.025) == 40
    assert steps_of(0.3, 0.025) == 12  # 0.3 / 0.025 = 11.999999999999998
    assert steps_of(0.025, 0.025) == 1
    for bad in (0.03, 0.0, -1.0, 0.01):
        with pytest.raises(ValueError):
            steps_of(bad, 0.025)


def test_run_every_ms_reports_neurons_values_and_ends_the_run(start_node, tmp_path: Path, control: Callable[..., str]) -> None:
    """for sync in c.run(every_ms=1.0): a point every 40 steps at the step boundary (step 0,
    after finitialize(), included), each
    with NEURON's t and soma.v there (tests/golden/seed.json), the end point last, then done:
    the run ended by itself and the files are NEURON's."""
    out = tmp_path / "d"
    node = start_node(["--control", control("tcp"), "--set", "soma.threshold=0", "--out", out])
    g = load_golden("seed")
    seen: list[Sync] = []
    with Controller(node.control) as c:
        for sync in c.run(every_ms=1.0, watch_values=["soma.v"]):
            seen.append(sync)
        assert isinstance(c.done, Done) and c.done.reason == "end", c.done
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    assert [s.step for s in seen] == list(range(0, 20001, 40))  # step 0: after finitialize()
    assert seen[-1].reasons == ("every", "end")
    assert_same_doubles([s.t for s in seen], [g.traces["t"][s.step] for s in seen], "t")
    assert_same_doubles([s.values["soma.v"] for s in seen], [g.traces["soma.v"][s.step] for s in seen], "soma.v")
    spikes = [sp.t for s in seen for sp in s.spikes if sp.source == "soma"]
    assert_same_doubles(spikes, g.spikes["soma"], "soma spikes from the reports")
    assert_matches_golden(out, g)


def test_run_scatter_gather_is_the_seed_program(start_node, tmp_path: Path, control: Callable[..., str]) -> None:
    """The seed document's callback with the loop helper: kind="scatter_gather" every step
    and act(): NEURON's run of the program (tests/golden/seed_interval.json) bit for bit."""
    out = tmp_path / "d"
    node = start_node(["--control", control("tcp"), "--set", "soma.threshold=0", "--out", out])
    with Controller(node.control) as c:
        for sync in c.run(every_ms=0.025, kind="scatter_gather", watch_values=["ns.interval"]):
            if sync.has("scatter_gather") and int(sync.t) % 50 == 0:
                c.act(set_("ns.interval", sync.values["ns.interval"] + 10))
        assert c.done is not None and c.done.step == 20000
        final = c.done
    assert final.reason == "end"
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    assert_matches_golden(out, load_golden("seed_interval"))


def test_run_resumes_a_run_after_a_takeover(start_node, tmp_path: Path, control: Callable[..., str]) -> None:
    """A controller that dies mid-run; another resumes with run(takeover=True): the pending
    point comes first, and the program's result is NEURON's."""
    out = tmp_path / "d"
    node = start_node(["--control", control("tcp"), "--set", "soma.threshold=0", "--out", out])

    def body(c: Controller, sync: Sync, read: bool) -> None:
        if sync.has("scatter_gather") and int(sync.t) % 50 == 0:
            v = c.value("ns.interval") if read else sync.values["ns.interval"]
            c.act(set_("ns.interval", v + 10))

    first = Controller(node.control, client="first")
    for sync in first.run(every_steps=1, kind="scatter_gather", watch_values=["ns.interval"]):
        body(first, sync, False)
        if sync.step == 2010:  # inside the window t in [50, 51): a change of interval pending
            break
    first.close()
    with Controller(node.control, client="second") as c:
        for k, sync in enumerate(c.run(every_steps=1, kind="scatter_gather", watch_values=["ns.interval"],
                                       takeover=True)):
            if k == 0:
                assert sync.step == 2010 and sync.has("scatter_gather"), sync
            body(c, sync, k == 0)
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    assert_matches_golden(out, load_golden("seed_interval"))


def test_act_queues_before_the_given_actions(start_node, tmp_path: Path, control: Callable[..., str]) -> None:
    from spikebus_client import schedule

    node = start_node(["--control", control("tcp"), "--set", "tstop=1", "--out", tmp_path / "d"])
    with Controller(node.control) as c:
        c.act(set_("ns.interval", 11.0), set_("ns.interval", 12.0))
        r = c.cont([schedule(every=1), set_("ns.interval", 13.0)])
        assert isinstance(r, Sync) and r.step == 0
        assert c.value("ns.interval") == 13.0
        c.act(set_("ns.interval", 14.0))
        assert c.value("ns.interval") == 13.0  # queued, not sent
        c.cont()
        assert c.value("ns.interval") == 14.0
        assert c.stop().reason == "stop"
    assert node.wait(NODE_EXIT_TIMEOUT) == 0


# -- item 6: logging -------------------------------------------------------------------------


def test_logging(start_node, tmp_path: Path, control: Callable[..., str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spikebus_client")
    node = start_node(["--control", control("tcp"), "--set", "tstop=1", "--out", tmp_path / "d"])
    with Controller(node.control, client="logged") as c:
        c.hello(takeover=True)
        for _ in c.run(every_ms=0.5):
            pass
    assert node.wait(NODE_EXIT_TIMEOUT) == 0
    node.stop()
    text = "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records)
    assert f"spikebus_client.controller INFO {node.control}: connected (client 'logged')" in text, text
    assert "spikebus_client.controller INFO" in text and "took the run over" in text, text
    assert "continue id" in text and "-> sync t=0.5" in text, text
    assert "-> done (end)" in text, text
    # The node's stderr, line by line (its takeover announcement).
    assert any(r.name == "spikebus_client.node" and "logged" in r.getMessage() for r in caplog.records), text
