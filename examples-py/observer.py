#!/usr/bin/env python3
"""Watch a spikebus node's state stream.

Subscribes to everything the node publishes on ``--pub`` and prints:
the ``started`` message, a line every ``--every`` ``state`` messages and every ``--every``
``sync`` messages, each spike, and at ``done`` a summary with the number of messages lost
(gaps in ``seq``) and the node's ``published`` count.

With ``--plot``, a live matplotlib window of one signal (default ``soma.v``) above a raster
of the spikes; where no window can be shown (no display), it says so and exits 2.  With
``--save run.png`` the same picture is written after ``done`` (matplotlib's Agg backend, no
display needed).  Both need matplotlib (``pip install matplotlib``).  Nothing answering at
``--pub`` within ``--connect-timeout`` (2 s) is an error (exit 2).

    target/release/spikebus run --pub tcp://127.0.0.1:5556 --wait-subscribers 1 &
    python3 examples-py/observer.py --pub tcp://127.0.0.1:5556
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, NoReturn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spikebus_client import NodeUnreachable, Observer  # noqa: E402


INTERACTIVE_HINT = (
    "a live plot needs a display and an interactive matplotlib backend (TkAgg, QtAgg, ...); "
    "on a machine without one, save a picture instead: --save run.png"
)


def fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def load_pyplot(interactive: bool) -> Any:
    """matplotlib.pyplot, with the non-interactive Agg backend unless a live plot is wanted.

    Raises:
        SystemExit(2): matplotlib is missing, or a live plot is asked for where none can be
            shown (no display: matplotlib falls back to a non-interactive backend).
    """
    try:
        import matplotlib
    except ImportError:
        fail("observer: --plot and --save need matplotlib: pip install matplotlib")
    if not interactive:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if interactive:
        backend = str(plt.get_backend())
        if backend.lower() in NON_INTERACTIVE:
            display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            why = f"matplotlib's backend is {backend}" + ("" if display else " (DISPLAY is not set)")
            fail(f"observer: --plot: no live plot is possible here: {why}; {INTERACTIVE_HINT}")
    return plt


#: matplotlib backends that draw only to files (lower case).
NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template", "module://matplotlib_inline.backend_inline"}


class Recording:
    """What the plots show: one signal's samples and every spike."""

    def __init__(self, signal: str) -> None:
        self.signal = signal
        self.t: list[float] = []
        self.v: list[float] = []
        self.spikes: list[tuple[str, float]] = []
        self.model = ""
        self.done = ""


def draw(fig: Any, rec: Recording) -> None:
    """The signal over time above a spike raster (one row per source)."""
    fig.clear()
    ax, raster = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(rec.t, rec.v, lw=0.8, color="tab:blue")
    ax.set_ylabel(f"{rec.signal} (mV)" if rec.signal.endswith(".v") else rec.signal)
    ax.set_title(f"spikebus: {rec.model or 'model'} - {rec.signal}" + (f" ({rec.done})" if rec.done else ""))
    sources = sorted({s for s, _ in rec.spikes})
    for row, src in enumerate(sources):
        ts = [t for s, t in rec.spikes if s == src]
        raster.vlines(ts, row + 0.6, row + 1.4, lw=1.2, color="black")
    raster.set_yticks(range(1, len(sources) + 1), sources)
    raster.set_ylim(0.4, len(sources) + 0.6)
    raster.set_ylabel("spikes")
    raster.set_xlabel("t (ms)")
    fig.tight_layout()


class LivePlot:
    """A live window, redrawn at most every ``period`` seconds."""

    def __init__(self, plt: Any, rec: Recording, period: float = 0.2) -> None:
        self.plt = plt
        self.rec = rec
        self.period = period
        plt.ion()
        self.fig = plt.figure(figsize=(9, 5))
        self.last = 0.0

    def update(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.period:
            self.draw()
            self.last = now

    def draw(self) -> None:
        draw(self.fig, self.rec)
        self.plt.pause(0.001)

    def finish(self, hold: bool) -> None:
        self.draw()
        if hold:
            # Said from inside the window's event loop, once the final picture is on screen.
            timer = self.fig.canvas.new_timer(interval=200)
            timer.single_shot = True
            timer.add_callback(lambda: print("observer: close the plot window to exit", flush=True))
            timer.start()
            self.plt.ioff()
            self.plt.show()


def save(plt: Any, rec: Recording, path: str) -> None:
    fig = plt.figure(figsize=(9, 5))
    draw(fig, rec)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Subscribe to a spikebus node's state stream and report what arrives.")
    p.add_argument("--pub", required=True, metavar="ENDPOINT", help="the node's pub endpoint")
    p.add_argument(
        "--every", type=int, default=1000, metavar="N", help="a line per N state / sync messages (default: %(default)s)"
    )
    p.add_argument("--quiet-spikes", action="store_true", help="do not print a line per spike")
    p.add_argument(
        "--plot", action="store_true", help="a live plot of --signal and the spikes (needs matplotlib and a display)"
    )
    p.add_argument(
        "--save",
        metavar="FILE",
        help="after the run, save a picture of --signal and the spikes (FILE.png, .svg or .pdf; needs matplotlib)",
    )
    p.add_argument(
        "--no-hold", dest="hold", action="store_false", help="with --plot: close the window at done instead of waiting"
    )
    p.add_argument("--signal", default="soma.v", help="signal to plot (default: %(default)s)")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=2.0,
        metavar="S",
        help="fail if no node answers at --pub within S seconds (0: wait for one; default: %(default)s)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up after S seconds without a message (0: wait forever; default: %(default)s)",
    )
    args = p.parse_args(argv)
    every = max(1, args.every)

    # Checked before subscribing: a plot that cannot be made is an error, not a silent no-op.
    plt = load_pyplot(interactive=args.plot) if (args.plot or args.save) else None
    rec = Recording(args.signal)
    live = LivePlot(plt, rec) if args.plot else None
    if live is not None:
        print(f"observer: live plot ({plt.get_backend()})", flush=True)

    timeout_ms = int(args.idle_timeout * 1000) if args.idle_timeout > 0 else None
    connect_ms = int(args.connect_timeout * 1000) if args.connect_timeout > 0 else None
    counts: dict[str, int] = {}
    samples = 0
    done: dict[str, Any] | None = None
    try:
        obs = Observer(args.pub, topics=(b"",), connect_timeout_ms=connect_ms)
    except NodeUnreachable as e:
        print(f"observer: {e}", file=sys.stderr)
        return 2
    with obs:
        print(f"observer: subscribed to {args.pub}", flush=True)
        while True:
            m = obs.recv(timeout_ms)
            if m is None:
                print(f"observer: nothing for {args.idle_timeout} s; giving up", file=sys.stderr)
                return 2
            n = counts[m.topic] = counts.get(m.topic, 0) + 1
            d = m.data
            if m.topic == "started":
                rec.model = str(d.get("model"))
                print(
                    f"observer: started: model {d.get('model')}, dt={d.get('dt')}, tstop={d.get('tstop')}, "
                    f"signals {d.get('signals')}, sources {d.get('sources')}",
                    flush=True,
                )
                if plt is not None and args.signal not in (d.get("signals") or []):
                    print(
                        f"observer: {args.signal} is not in the stream (signals {d.get('signals')}): "
                        f"choose one with --signal, or run the node with --pub-signals {args.signal}",
                        file=sys.stderr,
                    )
                    return 2
            elif m.topic == "state":
                steps = d.get("step") or []
                samples += len(steps)
                if plt is not None and args.signal in d:
                    rec.t.extend(d["t"])
                    rec.v.extend(d[args.signal])
                    if live is not None:
                        live.update()
                if n % every == 0:
                    vals = "  ".join(
                        f"{k}={v[-1]:.4f}" for k, v in d.items() if isinstance(v, list) and k not in ("step", "t")
                    )
                    print(
                        f"state #{n}: seq {m.seq} step {steps[-1] if steps else '?'} t={d['t'][-1] if steps else '?'}  {vals}",
                        flush=True,
                    )
            elif m.topic == "spike":
                rec.spikes.append((str(d.get("source")), float(d.get("t", 0.0))))
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
    rec.done = f"done: {done.get('reason')}"
    if args.save:
        save(plt, rec, args.save)
        print(f"observer: saved {args.save} ({len(rec.t)} samples of {args.signal}, {len(rec.spikes)} spikes)", flush=True)
    if live is not None:
        live.finish(args.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
