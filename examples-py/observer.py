#!/usr/bin/env python3
"""Watch a spikebus node's state stream.

Subscribes to everything the node publishes on ``--pub`` and prints:
the ``started`` message, a line every ``--every`` ``state`` messages and every ``--every``
``sync`` messages, each spike, and at ``done`` a summary with the number of messages lost
(gaps in ``seq``) and the node's ``published`` count.  With ``--plot``, a live matplotlib
plot of one signal (default ``soma.v``), if matplotlib is installed.

    target/release/spikebus run --pub tcp://127.0.0.1:5556 --wait-subscribers 1 &
    python3 examples-py/observer.py --pub tcp://127.0.0.1:5556
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spikebus_client import Observer  # noqa: E402


class LivePlot:
    """A live plot of one signal, redrawn at most every ``period`` seconds."""

    def __init__(self, signal: str, period: float = 0.2) -> None:
        import matplotlib.pyplot as plt  # imported only with --plot

        self.plt = plt
        self.signal = signal
        self.period = period
        self.t: list[float] = []
        self.v: list[float] = []
        plt.ion()
        self.fig, self.ax = plt.subplots()
        (self.line,) = self.ax.plot([], [], lw=0.8)
        self.ax.set_xlabel("t (ms)")
        self.ax.set_ylabel(signal)
        self.last = 0.0

    def add(self, ts: list[float], vs: list[float]) -> None:
        self.t.extend(ts)
        self.v.extend(vs)
        now = time.monotonic()
        if now - self.last >= self.period:
            self.draw()
            self.last = now

    def draw(self) -> None:
        self.line.set_data(self.t, self.v)
        self.ax.relim()
        self.ax.autoscale_view()
        self.plt.pause(0.001)

    def finish(self) -> None:
        self.draw()
        self.plt.ioff()
        self.plt.show()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Subscribe to a spikebus node's state stream and report what arrives.")
    p.add_argument("--pub", required=True, metavar="ENDPOINT", help="the node's pub endpoint")
    p.add_argument(
        "--every", type=int, default=1000, metavar="N", help="a line per N state / sync messages (default: %(default)s)"
    )
    p.add_argument("--quiet-spikes", action="store_true", help="do not print a line per spike")
    p.add_argument("--plot", action="store_true", help="live plot of --signal (needs matplotlib)")
    p.add_argument("--signal", default="soma.v", help="signal to plot (default: %(default)s)")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up after S seconds without a message (0: wait forever; default: %(default)s)",
    )
    args = p.parse_args(argv)
    every = max(1, args.every)

    plot: LivePlot | None = None
    if args.plot:
        try:
            plot = LivePlot(args.signal)
        except ImportError:
            print("observer: matplotlib is not installed; --plot ignored", file=sys.stderr)

    timeout_ms = int(args.idle_timeout * 1000) if args.idle_timeout > 0 else None
    counts: dict[str, int] = {}
    samples = 0
    done: dict[str, Any] | None = None
    with Observer(args.pub, topics=(b"",)) as obs:
        print(f"observer: subscribed to {args.pub}", flush=True)
        while True:
            m = obs.recv(timeout_ms)
            if m is None:
                print(f"observer: nothing for {args.idle_timeout} s; giving up", file=sys.stderr)
                return 2
            n = counts[m.topic] = counts.get(m.topic, 0) + 1
            d = m.data
            if m.topic == "started":
                print(
                    f"observer: started: model {d.get('model')}, dt={d.get('dt')}, tstop={d.get('tstop')}, "
                    f"signals {d.get('signals')}, sources {d.get('sources')}",
                    flush=True,
                )
            elif m.topic == "state":
                steps = d.get("step") or []
                samples += len(steps)
                if plot is not None and args.signal in d:
                    plot.add(list(d["t"]), list(d[args.signal]))
                if n % every == 0:
                    vals = "  ".join(
                        f"{k}={v[-1]:.4f}" for k, v in d.items() if isinstance(v, list) and k not in ("step", "t")
                    )
                    print(
                        f"state #{n}: seq {m.seq} step {steps[-1] if steps else '?'} t={d['t'][-1] if steps else '?'}  {vals}",
                        flush=True,
                    )
            elif m.topic == "spike":
                if not args.quiet_spikes:
                    print(f"spike: {d.get('source')} at t={d.get('t')!r} (seq {m.seq})", flush=True)
            elif m.topic == "sync":
                if n % every == 0:
                    print(
                        f"sync #{n}: seq {m.seq} step {d.get('step')} t={d.get('t')!r} reasons {d.get('reasons')}",
                        flush=True,
                    )
            elif m.topic == "owner":
                print(
                    f"owner: {d.get('client')!r} took over from {d.get('previous')!r} at t={d.get('t')!r} (step {d.get('step')})",
                    flush=True,
                )
            elif m.topic == "done":
                done = d
                break
            else:
                print(f"observer: unknown topic {m.topic!r}: {d}", flush=True)
        gaps = obs.gaps
        received = obs.received

    print(
        f"observer: done ({done.get('reason')}) at t={done.get('t')!r}, step {done.get('step')}: "
        f"received {received} messages ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
        f"{samples} samples; seq gaps {gaps}; node published {done.get('published')}",
        flush=True,
    )
    if plot is not None:
        plot.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
