#!/usr/bin/env python3
"""Steer a cell purely with injected input spikes, chosen from its observed voltage.

At the start point the controller silences the model's NetStim (``ns.number = 0``), so the
cell gets no input but what this program sends.  The node then pauses every ``--every``
steps and after each spike of the soma (``schedule every=N, on_spike=["soma"]``), reporting
``soma.v`` and ``syn.g``.  The rule, at each sync point:

- after a soma spike, stay quiet for ``--pause`` ms;
- otherwise, when ``soma.v`` is below ``--v-below`` mV and no injected event is still
  pending, inject one event into the synapse (``--target``, default ``syn``) at
  ``t + --lead`` ms with weight ``--weight`` (NEURON's ``NetCon.event``).

Every injected event is printed (and, with ``--events-out FILE``, written as JSON), as are
the soma spikes that follow::

    target/release/spikebus run --control tcp://127.0.0.1:5555 --set soma.threshold=0 &
    python3 examples-py/spike_steering.py --control tcp://127.0.0.1:5555
"""

from __future__ import annotations

import argparse
import json
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
    event,
    schedule,
    set_,
    watch,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Drive a cell only through injected synaptic events whose times are chosen "
        "from its observed voltage (the model's NetStim is silenced)."
    )
    p.add_argument("--control", required=True, metavar="ENDPOINT", help="the node's control endpoint")
    p.add_argument("--target", default="syn", help="event target: a synapse or NetCon (default: %(default)s)")
    p.add_argument("--source", default="soma", help="spike source to pause on (default: %(default)s)")
    p.add_argument("--voltage", default="soma.v", help="signal observed (default: %(default)s)")
    p.add_argument("--netstim", default="ns", help="NetStim silenced at start (default: %(default)s; '' for none)")
    p.add_argument("--weight", type=float, default=0.1, help="weight of each injected event, uS (default: %(default)s)")
    p.add_argument(
        "--v-below", type=float, default=-60.0, help="inject only while v is below this, mV (default: %(default)s)"
    )
    p.add_argument("--lead", type=float, default=1.0, help="inject this far in the future, ms (default: %(default)s)")
    p.add_argument(
        "--pause", type=float, default=10.0, help="quiet time after each soma spike, ms (default: %(default)s)"
    )
    p.add_argument("--every", type=int, default=40, help="look at v every N steps (default: %(default)s)")
    p.add_argument("--max-events", type=int, default=0, help="stop injecting after this many (0: no limit)")
    p.add_argument("--events-out", metavar="FILE", help="write the injected events and soma spikes as JSON")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument(
        "--timeout-ms", type=int, default=10_000, help="reply timeout before a resend (default: %(default)s)"
    )
    args = p.parse_args(argv)
    if args.every < 1:
        p.error("--every must be >= 1")
    if args.lead < 0:
        p.error("--lead must be >= 0")

    try:
        with Controller(args.control, timeout_ms=args.timeout_ms) as c:
            return run(c, args)
    except (SpikebusError, SpikebusTimeout) as e:
        print(f"spike_steering: {e}", file=sys.stderr)
        return 1


def run(c: Controller, args: argparse.Namespace) -> int:
    def say(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    h = c.hello()
    if not h.pending.is_start:
        # A run in progress (its controller died): take it over.
        h = c.hello(takeover=True)
    pending = h.pending
    r: Sync | Done = pending
    setup = [
        schedule(every=args.every, on_spike=[args.source]),
        watch(
            values=[args.voltage, f"{args.target}.g"] if f"{args.target}.g" in h.signals else [args.voltage],
            spikes=True,
        ),
    ]
    if pending.is_start:
        if args.netstim:
            setup.insert(0, set_(f"{args.netstim}.number", 0))
            say(f"spike_steering: t=0: {args.netstim}.number = 0 (the NetStim is silenced)")
    else:
        say(f"spike_steering: joining a run under way at t={pending.t!r}; the NetStim is left as it is")
    r = c.cont(setup)

    events: list[dict[str, float]] = []
    spikes: list[float] = []
    quiet_until = -1.0
    pending_until = -1.0  # no injection while a previous event is still to come
    while isinstance(r, Sync):
        for s in r.spikes:
            if s.source == args.source:
                spikes.append(s.t)
                quiet_until = max(quiet_until, s.t + args.pause)
                say(f"t={r.t:9.3f}  {args.source} spiked at {s.t!r}: quiet until {quiet_until:.3f}")
        if r.is_end:
            r = c.cont()
            break
        actions: list[Action] = []
        v = r.values.get(args.voltage)
        if (
            v is not None
            and r.t >= quiet_until
            and r.t >= pending_until
            and v < args.v_below
            and (args.max_events == 0 or len(events) < args.max_events)
        ):
            te = r.t + args.lead
            actions.append(event(args.target, te, args.weight))
            events.append({"t": te, "weight": args.weight, "decided_at": r.t, "v": v})
            pending_until = te
            say(
                f"t={r.t:9.3f}  v={v:8.3f} mV < {args.v_below}: event -> {args.target} at t={te!r}, weight {args.weight}"
            )
        r = c.cont(actions)

    if not isinstance(r, Done):
        print(f"spike_steering: expected done, got {r!r}", file=sys.stderr)
        return 1
    if args.events_out:
        with open(args.events_out, "w") as f:
            json.dump({"target": args.target, "events": events, "spikes": {args.source: spikes}}, f, indent=1)
    print(
        f"spike_steering: done ({r.reason}) at t={r.t!r}: {len(events)} events injected into "
        f"{args.target}, {len(spikes)} {args.source} spikes",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
