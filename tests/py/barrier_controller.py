"""One controller of a ``--controllers`` run, as its own process, for test_barrier.py.

    python barrier_controller.py ENDPOINT NAME

Says hello (printing ``ready``), then for each ``go`` line on stdin sends its ``continue`` for
the sync point it last saw (its actions depend only on that report and its name) and prints
the reply as one JSON line: ``{"op", "t", "step", "hash", "values", "spikes"}``. The test
decides when each controller sends, so it can force the order the node receives them in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples-py"))

from spikebus_client import Controller, Done, Sync, event, schedule, set_, watch  # noqa: E402


def actions(name: str, r: Sync) -> list[dict]:
    k = r.step // 40
    if r.is_end:
        return []
    if r.is_start:
        # Each sets its own part of the schedule and watch; `c` last, so its watch stands.
        return {
            "a": [schedule(every=40)],
            "b": [watch(values=["nc.weight"], spikes=True)],
            "c": [watch(values=["soma.v", "nc.weight", "syn.tau"], hash=True)],
        }[name]
    if name == "a":
        return [set_("nc.weight", 0.02 + 0.01 * (k % 3))]
    if name == "b":
        # Overrides a's weight at every other point: b applies after a, whoever is first.
        acts = [event("syn", r.t + 0.25, 0.01)]
        if k % 2 == 0:
            acts.append(set_("nc.weight", 0.05))
        return acts
    return [set_("syn.tau", 2.0 if k % 2 else 5.0)]


def main() -> int:
    endpoint, name = sys.argv[1], sys.argv[2]
    with Controller(endpoint, client=name) as c:
        last = c.hello().pending
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                break
            r = c.cont(actions(name, last))
            if isinstance(r, Done):
                print(json.dumps({"op": "done", "reason": r.reason, "t": r.t, "step": r.step}), flush=True)
                return 0
            last = r
            print(json.dumps({"op": "sync", "t": r.t, "step": r.step, "hash": r.hash, "values": r.values,
                              "spikes": [[s.source, s.t] for s in r.spikes]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
