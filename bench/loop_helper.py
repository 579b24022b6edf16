#!/usr/bin/env python3
"""What the client's loop helper costs: the seed document's program (a sync point inside
every step, 20,001 points) steered by spikebus_client, written two ways:

  cont loop   the hand-written loop: c.cont([...]) until the end point, then c.cont() -> done
  run()       for sync in c.run(every_ms=dt, kind="scatter_gather", ...): c.act(...)

Measured in the controller's process: CPU time (process_time: the client's own work, which
the machine's other load hardly changes) and wall time, per sync point, for each of
--repeat runs of each (interleaved).  Usage, from the repository root:

    python bench/loop_helper.py [--spikebus target/release/spikebus] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples-py"))

from spikebus_client import Controller, Node, Sync, schedule, set_, watch  # noqa: E402

POINTS = 20_001


def cont_loop(c: Controller) -> None:
    r = c.cont([schedule(scatter_gather=1), watch(values=["ns.interval"])])
    while isinstance(r, Sync):
        acts = []
        if int(r.t) % 50 == 0:
            acts.append(set_("ns.interval", r.values["ns.interval"] + 10))
        r = c.cont(acts)


def run_helper(c: Controller) -> None:
    for sync in c.run(every_ms=0.025, kind="scatter_gather", watch_values=["ns.interval"]):
        if int(sync.t) % 50 == 0:
            c.act(set_("ns.interval", sync.values["ns.interval"] + 10))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spikebus", default="target/release/spikebus")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"cont loop": [], "run()": []}
    with tempfile.TemporaryDirectory() as d:
        for k in range(args.repeat):
            order = [("cont loop", cont_loop), ("run()", run_helper)]
            for name, f in order if k % 2 == 0 else order[::-1]:
                with Node(["--control", "tcp://127.0.0.1:0", "--set", "soma.threshold=0", "--out", "/dev/null"],
                          binary=Path(args.spikebus).resolve(), cwd=d) as node:
                    with Controller(node.control) as c:
                        c.hello()
                        t0, c0 = time.perf_counter(), time.process_time()
                        f(c)
                        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                    assert node.wait(60) == 0
                results[name].append((cpu / POINTS * 1e6, wall / POINTS * 1e6))
    print(f"{'loop':<10} {'client CPU us/point (median, min)':>34} {'wall us/point (median, min)':>30}")
    for name, rs in results.items():
        cpu = [r[0] for r in rs]
        wall = [r[1] for r in rs]
        print(f"{name:<10} {statistics.median(cpu):>22.1f} {min(cpu):>10.1f} {statistics.median(wall):>19.1f} {min(wall):>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
