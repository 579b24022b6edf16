#!/usr/bin/env python3
"""Closed-loop control of a firing rate over the bus.

The controller holds the firing rate of a spike source (default: the soma's detector) at a
target by adjusting a NetCon's weight (default ``nc.weight``, the synaptic drive of the seed
model).  The node pauses every ``--window`` ms (``schedule every=N`` steps); each report
carries the spikes since the previous one, so the controller counts the soma's spikes in the
window, computes the rate, and applies a proportional-integral rule with limits and
anti-windup:

    e_k = target - rate_k
    I_k = I_{k-1} + e_k * window            (frozen while the output is at a limit)
    w_k = clip(w_0 + kp * e_k + ki * I_k, w_min, w_max)

A hh soma driven by a regular NetStim fires 1:1 or not at all, so for a graded rate give the
NetStim some noise, e.g.::

    target/release/spikebus run --control tcp://127.0.0.1:5555 --set ns.noise=1 --set tstop=20000 &
    python3 examples-py/closed_loop_rate.py --control tcp://127.0.0.1:5555 --target-hz 20 --window 500

It prints one line per window: the time, the spikes counted, the rate and the new weight.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spikebus_client import Action, Controller, Done, SpikebusError, SpikebusTimeout, Sync, schedule, set_, watch  # noqa: E402


def clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Hold a spike source's firing rate at a target by adjusting a NetCon weight "
        "at sync points every WINDOW ms (PI rule with limits)."
    )
    p.add_argument("--control", required=True, metavar="ENDPOINT", help="the node's control endpoint")
    p.add_argument("--target-hz", type=float, default=20.0, help="target rate, Hz (default: %(default)s)")
    p.add_argument("--window", type=float, default=500.0, help="control window, ms (default: %(default)s)")
    p.add_argument("--source", default="soma", help="spike source whose rate is controlled (default: %(default)s)")
    p.add_argument("--weight", default="nc.weight", help="parameter adjusted (default: %(default)s)")
    p.add_argument("--kp", type=float, default=0.0001, help="proportional gain, weight per Hz (default: %(default)s)")
    p.add_argument("--ki", type=float, default=0.001, help="integral gain, weight per Hz*s (default: %(default)s)")
    p.add_argument("--w-min", type=float, default=0.0, help="lower limit of the weight (default: %(default)s)")
    p.add_argument("--w-max", type=float, default=0.5, help="upper limit of the weight (default: %(default)s)")
    p.add_argument(
        "--timeout-ms", type=int, default=60_000, help="reply timeout before a resend (default: %(default)s)"
    )
    args = p.parse_args(argv)
    if args.window <= 0:
        p.error("--window must be > 0")
    if args.w_min > args.w_max:
        p.error("--w-min must be <= --w-max")

    try:
        with Controller(args.control, timeout_ms=args.timeout_ms) as c:
            return run(c, args)
    except (SpikebusError, SpikebusTimeout) as e:
        print(f"closed_loop_rate: {e}", file=sys.stderr)
        return 1


def run(c: Controller, args: argparse.Namespace) -> int:
    h = c.hello()
    if not h.pending.is_start:
        # A run in progress (its controller died): take it over.
        h = c.hello(takeover=True)
    if args.source not in h.sources:
        print(f"closed_loop_rate: no spike source {args.source!r} (sources: {list(h.sources)})", file=sys.stderr)
        return 1
    every = max(1, round(args.window / h.dt))
    window_s = every * h.dt / 1000.0  # the window actually used, in s
    w0 = c.value(args.weight)
    print(
        f"closed_loop_rate: target {args.target_hz} Hz of {args.source!r} by {args.weight} "
        f"(from {w0}), window {every} steps = {window_s * 1000:g} ms, kp={args.kp} ki={args.ki}",
        flush=True,
    )
    pending = h.pending
    r: Sync | Done = pending
    setup = [schedule(every=every), watch(values=[args.weight], spikes=True)]
    if not pending.is_start:
        print(f"closed_loop_rate: joining a run under way at t={pending.t!r}", flush=True)
    r = c.cont(setup)

    integral = 0.0
    weight = w0
    count = 0
    window_start = r.t if isinstance(r, Sync) else 0.0
    windows = 0
    last_window_step = 0
    while isinstance(r, Sync):
        count += sum(1 for s in r.spikes if s.source == args.source)
        actions: list[Action] = []
        # A window ends at every Nth step (the end point of the run too, if it falls there).
        if r.step > 0 and r.step % every == 0 and r.step != last_window_step:
            last_window_step = r.step
            windows += 1
            rate = count / window_s
            err = args.target_hz - rate
            new_integral = integral + err * window_s
            out = w0 + args.kp * err + args.ki * new_integral
            weight = clip(out, args.w_min, args.w_max)
            if weight == out:  # anti-windup: integrate only while not at a limit
                integral = new_integral
            print(
                f"window {windows:4d}  t={window_start:9.3f}..{r.t:9.3f} ms  spikes={count:3d}  "
                f"rate={rate:7.2f} Hz  error={err:+7.2f}  {args.weight}={weight:.6f}",
                flush=True,
            )
            if not r.is_end:
                actions.append(set_(args.weight, weight))
            count = 0
            window_start = r.t
        if r.is_end:
            r = c.cont()
            break
        r = c.cont(actions)

    if not isinstance(r, Done):
        print(f"closed_loop_rate: expected done, got {r!r}", file=sys.stderr)
        return 1
    print(
        f"closed_loop_rate: done ({r.reason}) at t={r.t!r} after {windows} windows; final {args.weight}={weight}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
