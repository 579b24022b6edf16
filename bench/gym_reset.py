#!/usr/bin/env python3
"""Resets per second of the Gymnasium environment (spikebus_client.gym_env.RateHoldEnv):
a reset that restores the node's snapshot, against a reset that restarts the node.

  restore   env.reset(): one exchange (`continue` with `restore 0`), the node stays up
  restart   what a reset costs without snapshots: start a node process, hello, the schedule
            and watch, run to the episode's first point (step 0), then stop the node

Both reach the same state (the same state hash, checked). Wall time per reset, for --repeat
rounds of --resets resets each (interleaved), on this machine's loopback. Usage, from the
repository root:

    python bench/gym_reset.py [--spikebus target/release/spikebus] [--resets 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples-py"))

from spikebus_client import Controller, Node, Sync, schedule, watch  # noqa: E402
from spikebus_client.gym_env import RateHoldEnv  # noqa: E402


def restarted(binary: str, env: RateHoldEnv) -> str:
    """One restart: a fresh node at the episode's first point; its state hash."""
    args = [
        "--control", "tcp://127.0.0.1:0", "--out", "/dev/null", "--set", "soma.threshold=0", "--set", "ns.interval=1",
        "--set", f"ns.noise={env.noise!r}", "--set", f"tstop={env.episode_ms!r}", "--set", "nc.weight=0.02",
    ]  # fmt: skip
    with Node(args, binary=binary) as node:
        with Controller(node.control, client="gym") as c:
            h = c.hello()
            k = round(env.step_ms / h.dt)
            r = c.cont([schedule(every=k), watch(values=["nc.weight"], spikes=True, hash=True)])
            assert isinstance(r, Sync) and r.step == 0
            c.stop()
        node.wait(30)
    assert r.hash is not None
    return r.hash


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spikebus", default="target/release/spikebus")
    p.add_argument("--resets", type=int, default=200)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    per_restore, per_restart = [], []
    with RateHoldEnv(binary=a.spikebus) as env:
        _, info = env.reset()
        want = info["hash"]
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            for _ in range(a.resets):
                _, info = env.reset()
            per_restore.append((time.perf_counter() - t0) / a.resets)
            assert info["hash"] == want
            n = max(1, a.resets // 10)
            t0 = time.perf_counter()
            for _ in range(n):
                h = restarted(a.spikebus, env)
            per_restart.append((time.perf_counter() - t0) / n)
            assert h == want, "a restarted node is not in the restored state"
    for name, xs in (("restore", per_restore), ("restart", per_restart)):
        med = statistics.median(xs)
        print(f"{name:8s} median {1e3 * med:8.3f} ms/reset = {1 / med:9.1f} resets/s  "
              f"(rounds: {', '.join(f'{1e3 * x:.3f}' for x in xs)} ms)")
    print(f"restore is {statistics.median(per_restart) / statistics.median(per_restore):.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
