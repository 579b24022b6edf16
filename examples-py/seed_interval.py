#!/usr/bin/env python3
"""The seed document's callback program, steering a spikebus node over the bus.

The NEURON program (the forum thread "Interfacing NEURON with other software at runtime")
registers, with ``h.CVode().extra_scatter_gather(0, update_interval)``, a callback that runs
at every time step::

    def update_interval():
        if int(h.t) % 50 == 0:
            ns.interval += 10

Here the node pauses where NEURON runs that callback, inside every step
(``schedule scatter_gather=1``: after the voltage update, with ``h.t`` still t_n), reports
``ns.interval`` at each sync point (``watch``), and this controller does what the callback
does.  Run the node and this controller side by side::

    target/release/spikebus run --control tcp://127.0.0.1:5555 --set soma.threshold=0 --out out &
    python3 examples-py/seed_interval.py --control tcp://127.0.0.1:5555

The result (``out/traces.csv``, ``out/spikes.csv``) is bit for bit NEURON's run of the seed
program (``tests/golden/seed_interval.json``).

The controller is restartable: killed mid-run and started again, it takes the run over
(``hello`` with ``takeover``: its ``pending`` says where the run is) and carries on from that
sync point, reading the current ``ns.interval`` with ``get``, exactly as the callback would.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spikebus_client import (  # noqa: E402
    Action,
    Controller,
    Done,
    SpikebusError,
    SpikebusTimeout,
    Sync,
    schedule,
    set_,
    watch,
)

WATCHED = "ns.interval"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="The seed document's per-step callback (if int(t) % 50 == 0: "
        "ns.interval += 10) steering a spikebus node over its control endpoint.",
    )
    p.add_argument("--control", required=True, metavar="ENDPOINT", help="the node's control endpoint")
    p.add_argument(
        "--timeout-ms",
        type=int,
        default=10_000,
        help="wait this long for each reply before resending it (default: %(default)s)",
    )
    p.add_argument(
        "--progress-every",
        type=int,
        default=2000,
        metavar="N",
        help="print a progress line every N steps (0: never; default: %(default)s)",
    )
    args = p.parse_args(argv)

    try:
        with Controller(args.control, timeout_ms=args.timeout_ms) as c:
            return run(c, args.progress_every)
    except SpikebusError as e:
        print(f"seed_interval: the node refused a request: {e}", file=sys.stderr)
        return 1
    except SpikebusTimeout as e:
        print(f"seed_interval: {e}", file=sys.stderr)
        return 1


def run(c: Controller, progress_every: int) -> int:
    h = c.hello()
    if not h.pending.is_start:
        # A run in progress: a previous controller died; take the run over.
        h = c.hello(takeover=True)
    pending = h.pending
    r: Sync | Done = pending
    setup = [schedule(scatter_gather=1), watch(values=[WATCHED], spikes=True)]
    pre: list[Action] = []
    if pending.is_start:
        print(f"seed_interval: {h.node}, model {h.model}: starting the run (dt={h.dt}, tstop={h.tstop})", flush=True)
        r = c.cont(setup)
        read_with_get = False
    else:
        print(
            f"seed_interval: resuming at step {pending.step}, t={pending.t!r} (reasons {','.join(pending.reasons)})",
            flush=True,
        )
        # The node keeps the previous controller's schedule and watch; restore them only if
        # someone changed them.
        if not (h.schedule.scatter_gather == 1 and WATCHED in h.watch.values):
            pre = setup
        # The pending point's report was made for the previous controller: read ns.interval
        # afresh, as the callback would.
        read_with_get = True

    first_step = r.step if isinstance(r, Sync) else None
    ns_spikes: list[float] = []
    soma_spikes: list[float] = []
    final_interval: float | None = None
    while isinstance(r, Sync):
        for s in r.spikes:
            if s.source == "ns":
                ns_spikes.append(s.t)
            elif s.source == "soma":
                soma_spikes.append(s.t)
        if progress_every and r.step % progress_every == 0:
            print(f"seed_interval: step {r.step} t={r.t:.3f} ns.interval={r.values.get(WATCHED)}", flush=True)
        if r.is_end:
            # After the end point a continue gets `done` and the node exits.
            final_interval = c.value(WATCHED)
            r = c.cont()
            break
        actions, pre = pre, []
        # The callback runs inside each time step: the `scatter_gather` points.
        if r.has("scatter_gather") and int(r.t) % 50 == 0:
            if read_with_get or WATCHED not in r.values:
                interval = c.value(WATCHED)
            else:
                interval = r.values[WATCHED]
            actions.append(set_("ns.interval", interval + 10))
        read_with_get = False
        r = c.cont(actions)

    if not isinstance(r, Done):
        print(f"seed_interval: expected done, got {r!r}", file=sys.stderr)
        return 1
    seen = "" if first_step in (0, None) else f" (seen since step {first_step})"
    print(
        f"seed_interval: done ({r.reason}) at step {r.step}, t={r.t!r}; "
        f"final ns.interval={final_interval!r}; "
        f"NetStim spikes{seen}: {len(ns_spikes)} {ns_spikes}; soma spikes{seen}: {len(soma_spikes)}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
