"""Several controllers in lockstep (``--controllers a,b,c``), each its own process: the node
waits at every sync point for all three, applies their actions in the ``--controllers``
order and answers each. The test forces the order the node receives the requests in (a
controller sends only when told, and the next is told only once the node shows, in hello's
``controllers``, that it has the previous one): every order gives the same reports, state
hashes and files, bit for bit. A controller killed and restarted under its name resumes; a
missing one falls under ``--sync-timeout``; a client not named cannot continue."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT, make_node
from spikebus_client import Controller, Done, SpikebusError

NAMES = ("a", "b", "c")
SCRIPT = Path(__file__).with_name("barrier_controller.py")


class Proc:
    """A controller process, told when to send."""

    def __init__(self, endpoint: str, name: str) -> None:
        self.name = name
        self.p = subprocess.Popen(
            [sys.executable, str(SCRIPT), endpoint, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
        )
        assert self.p.stdout.readline().strip() == "ready"

    def go(self) -> None:
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def reply(self) -> dict:
        line = self.p.stdout.readline()
        assert line, f"controller {self.name} ended without a reply"
        return json.loads(line)

    def kill(self) -> None:
        self.p.kill()
        self.p.wait(10)


def arrived(watcher: Controller) -> set[str]:
    return {c["name"] for c in watcher.hello().raw["controllers"] if c["arrived"]}


def send_in_order(watcher: Controller, procs: dict[str, Proc], order: tuple[str, ...]) -> None:
    """Each controller of ``order`` sends its continue after the node has the previous one."""
    for k, name in enumerate(order):
        procs[name].go()
        if k + 1 < len(order):
            while name not in arrived(watcher):  # a handshake with the node, not a sleep
                assert procs[name].p.poll() is None, f"controller {name} ended: {procs[name].p.returncode}"


def session(spikebus_bin: Path, out: Path, orders: list[tuple[str, ...]], restart_b_at: int | None = None) -> list:
    node = make_node(spikebus_bin, [
        "--control", "tcp://127.0.0.1:0", "--controllers", ",".join(NAMES), "--out", out,
        "--set", "tstop=12", "--set", "ns.noise=0.5", "--set", "nc.delay=0.5", "--control-log", out.with_suffix(".log"),
    ]).start()  # fmt: skip
    procs = {n: Proc(node.control, n) for n in NAMES}
    reports = []
    try:
        with Controller(node.control, client="watcher") as watcher:
            h = watcher.hello()
            assert [c["name"] for c in h.raw["controllers"]] == list(NAMES)
            for point in itertools.count():
                if point == restart_b_at:
                    # b dies before sending; a new b (same name) says hello and carries on.
                    procs["b"].kill()
                    procs["b"] = Proc(node.control, "b")
                send_in_order(watcher, procs, orders[point % len(orders)])
                got = [procs[n].reply() for n in NAMES]
                assert all(g == got[0] for g in got), f"the controllers got different replies: {got}"
                reports.append(got[0])
                if got[0]["op"] == "done":
                    break
        assert node.wait(30) == 0
    finally:
        for p in procs.values():
            p.kill()
        node.kill()
    return reports


def test_results_do_not_depend_on_arrival_order(spikebus_bin: Path, tmp_path: Path) -> None:
    runs = {
        "abc": [("a", "b", "c")],
        "cba": [("c", "b", "a")],
        "mixed": [("b", "c", "a"), ("c", "a", "b"), ("a", "c", "b"), ("b", "a", "c")],
    }
    results = {}
    for label, orders in runs.items():
        out = tmp_path / label
        reports = session(spikebus_bin, out, orders)
        results[label] = (reports, (out / "traces.csv").read_bytes(), (out / "spikes.csv").read_bytes())
    first = results["abc"]
    assert first[0][-1] == {"op": "done", "reason": "end", "t": first[0][-1]["t"], "step": 480}
    assert len(first[0]) == 14 and all(r.get("hash") for r in first[0][1:-1])
    # b's weight wins where it sets one (it applies after a's, in every arrival order).
    weights = [r["values"]["nc.weight"] for r in first[0][2:-1]]
    assert 0.05 in weights and any(w != 0.05 for w in weights), weights
    for label, res in results.items():
        assert res == first, f"arrival order {label} changed the run"
    # The session's control log replays without the controllers, to the same files.
    r = subprocess.run([str(spikebus_bin), "replay", str(tmp_path / "mixed.log"), "--out", str(tmp_path / "replayed")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "replayed" / "traces.csv").read_bytes() == first[1]
    assert (tmp_path / "replayed" / "spikes.csv").read_bytes() == first[2]


def test_a_restarted_controller_resumes(spikebus_bin: Path, tmp_path: Path) -> None:
    straight = session(spikebus_bin, tmp_path / "straight", [("a", "b", "c")])
    restarted = session(spikebus_bin, tmp_path / "restarted", [("a", "b", "c")], restart_b_at=5)
    assert restarted == straight
    for f in ("traces.csv", "spikes.csv"):
        assert (tmp_path / "straight" / f).read_bytes() == (tmp_path / "restarted" / f).read_bytes()


def test_missing_controller_times_out_and_strangers_are_refused(spikebus_bin: Path, tmp_path: Path) -> None:
    node = make_node(spikebus_bin, [
        "--control", "tcp://127.0.0.1:0", "--controllers", "a,b", "--sync-timeout", "0.5", "--on-timeout", "abort",
        "--out", tmp_path,
    ]).start()  # fmt: skip
    try:
        with Controller(node.control, client="stranger") as s:
            s.hello()
            try:
                s.cont([])
                raise AssertionError("a client not named in --controllers continued")
            except SpikebusError as e:
                assert e.code == "not_owner"
            try:
                s.hello(takeover=True)
                raise AssertionError("a takeover in a --controllers run")
            except SpikebusError as e:
                assert e.code == "wrong_state"
        with Controller(node.control, client="a") as a:
            a.hello()
            r = a.cont([])  # b never comes: the barrier times out after 0.5 s
            assert isinstance(r, Done) and r.reason == "timeout", r
        assert node.wait(30) == 3
    finally:
        node.kill()
