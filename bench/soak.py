#!/usr/bin/env python3
"""Soak: a lockstep run of a million sync points with a slow subscriber attached.

Usage (from the repository root):

    python bench/soak.py [--syncs N] [--sample-every K] [--sub-delay-ms D] [--pub-hwm H] [--spikebus PATH]

What runs (three processes):

  node        spikebus run --control tcp://127.0.0.1:0 --pub tcp://127.0.0.1:0 --pub-hwm H
              --wait-subscribers 1 --set tstop=N*dt --out <temporary directory>
              (the seed model, dt = 0.025 ms: tstop = 25000 ms for N = 1,000,000 steps; the node
              takes no step while t >= tstop - dt/2, so the run has exactly N steps, which the
              `end` report's `step` must confirm).
  subscriber  a second Python process (this script with --subscriber): a SUB socket subscribed
              to everything, sleeping D ms after each message; it counts messages by topic and
              the gaps in `seq`, and stops at `done` (or after --idle-timeout s of silence).
  controller  here, raw pyzmq + msgpack: `hello`, `continue [schedule every=1]`, then
              `continue` with no actions from sync point to sync point until the `end` point,
              and a last `continue` that gets `done`. Every reply is checked: a `sync` with the
              request's id, at step = previous step + 1 (`every` among its reasons), then `done`
              (reason `end`, step N). A reply that does not come within --reply-timeout s is a
              lost exchange: the request is resent (same id, same bytes, fresh socket; the node
              answers a resend from its cache) up to 3 times, and counted.

The node's resident memory (VmRSS of /proc/PID/status) is sampled every K sync points and
printed as a table (sync points, elapsed s, RSS MiB, sync points/s over the interval); the
summary compares the RSS after warm-up (at 50,000 sync points, or a tenth of the run if that is
shorter) with the RSS at the end, and gives the least-squares slope of RSS over the sync points
after warm-up, the rate, the lost exchanges (must be 0), the subscriber's counts and gaps, and
the node's `published` from `done`. The slow subscriber loses messages at its high-water mark
(on purpose): what it received plus the gaps it counted must make up every message published
before the last one it received, and it must have received no message twice or out of order;
`done` may be among its losses (then its trailing losses are unknown to it, but not to us).

Exit status: 0 if every check passed, 1 otherwise (the summary says which failed).
Progress goes to stderr, the table and the summary to stdout. Needs Python >= 3.8, pyzmq and
msgpack, and Linux (/proc).
"""

import argparse
from array import array
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal

from common import DEFAULT_BINARY, LISTENING, ROOT, listening_endpoints, log, python_zmq_msgpack

DT = Decimal("0.025")  # the seed model's dt (ms)


# ---------------------------------------------------------------------------------------------
# The slow subscriber (a second process: this script with --subscriber)


def subscriber(endpoint, delay_ms, idle_timeout):
    import msgpack
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    print("subscriber: subscribed", flush=True)
    delay = delay_ms / 1000.0
    received = 0
    by_topic = {}
    gaps = 0  # messages missing between received ones (and before the first)
    disorder = 0  # a seq not above the previous one
    prev = -1
    done = None
    syncs_steps = [None, None]
    start_sync = False
    started = time.monotonic()
    idle = False
    while True:
        if not sock.poll(int(idle_timeout * 1000), zmq.POLLIN):
            idle = True
            break
        frames = sock.recv_multipart()
        received += 1
        topic = frames[0].decode("ascii", "replace")
        by_topic[topic] = by_topic.get(topic, 0) + 1
        m = msgpack.unpackb(frames[-1], raw=False)
        seq = m.get("seq")
        if isinstance(seq, int):
            if seq <= prev:
                disorder += 1
            else:
                gaps += seq - prev - 1
                prev = seq
        if topic == "sync":
            if "start" in m.get("reasons", ()):
                start_sync = True
            syncs_steps[0] = m.get("step") if syncs_steps[0] is None else syncs_steps[0]
            syncs_steps[1] = m.get("step")
        if topic == "done":
            done = m
            break
        if delay:
            time.sleep(delay)
    print(
        json.dumps(
            {
                "received": received,
                "by_topic": by_topic,
                "gaps": gaps,
                "disorder": disorder,
                "last_seq": prev,
                "done": done,
                "idle_timeout": idle,
                "start_sync": start_sync,
                "first_sync_step": syncs_steps[0],
                "last_sync_step": syncs_steps[1],
                "seconds": round(time.monotonic() - started, 3),
            }
        ),
        flush=True,
    )
    sock.close(0)
    ctx.term()


# ---------------------------------------------------------------------------------------------
# Processes


class Lines:
    """A process's stdout lines, read by a thread."""

    def __init__(self, f):
        self.q = queue.Queue()
        self.all = []
        self.t = threading.Thread(target=self._read, args=(f,), daemon=True)
        self.t.start()

    def _read(self, f):
        for line in f:
            line = line.rstrip("\n")
            self.all.append(line)
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no line starting {prefix!r} within {timeout} s; got {self.all[-5:]!r}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"the process ended without a line starting {prefix!r}; got {self.all[-5:]!r}")
            if line.startswith(prefix):
                return line


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def mib(kib):
    return kib / 1024.0


# ---------------------------------------------------------------------------------------------
# The controller


class Lost(Exception):
    pass


class Control:
    """A raw REQ client with resends after a timeout (same id, same bytes, fresh socket)."""

    def __init__(self, ctx, endpoint, timeout_s, retries=3):
        import zmq

        self.zmq = zmq
        self.ctx = ctx
        self.endpoint = endpoint
        self.timeout_ms = int(timeout_s * 1000)
        self.retries = retries
        self.sock = None
        self.lost = 0  # replies that did not come within the timeout

    def _socket(self):
        if self.sock is None:
            s = self.ctx.socket(self.zmq.REQ)
            s.setsockopt(self.zmq.LINGER, 0)
            s.connect(self.endpoint)
            self.sock = s
        return self.sock

    def close(self):
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None

    def request(self, data):
        for attempt in range(self.retries + 1):
            s = self._socket()
            s.send(data)
            if s.poll(self.timeout_ms, self.zmq.POLLIN):
                return s.recv()
            self.lost += 1
            log(f"soak: no reply within {self.timeout_ms} ms (attempt {attempt + 1}); resending")
            self.close()
        raise Lost(f"no reply after {self.retries + 1} attempts")


def run(args):
    import msgpack
    import zmq

    binary = args.spikebus if os.path.isabs(args.spikebus) else os.path.join(ROOT, args.spikebus)
    if not os.path.isfile(binary):
        sys.exit(f"soak: {binary} not found (cargo build --release)")
    n = args.syncs
    tstop = format(DT * n, "f")
    out_dir = tempfile.mkdtemp(prefix="spikebus-soak-")
    node_cmd = [
        binary, "run", "--control", "tcp://127.0.0.1:0", "--pub", "tcp://127.0.0.1:0",
        "--pub-hwm", str(args.pub_hwm), "--wait-subscribers", "1", "--set", f"tstop={tstop}", "--out", out_dir,
    ]  # fmt: skip
    print(f"command: {' '.join(sys.argv)}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {python_zmq_msgpack()}")
    print(f"node: {' '.join(node_cmd[:1] + ['run'] + node_cmd[2:-1])} <tmp>")
    print(f"subscriber: SUB to everything, sleeping {args.sub_delay_ms} ms after each message")
    print()
    print("| sync points | elapsed s | RSS MiB | sync points/s |")
    print("| ---: | ---: | ---: | ---: |", flush=True)
    node_err = open(os.path.join(out_dir, "node.stderr"), "w+")
    node = subprocess.Popen(node_cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=node_err, text=True, bufsize=1)  # fmt: skip
    sub = None
    ctx = zmq.Context()
    ctl = None
    failures = []
    result = {"lost": 0, "bad": None}
    samples = []  # (syncs, elapsed, rss_kib)
    try:
        node_lines = Lines(node.stdout)
        line = node_lines.wait_for(LISTENING, 30)
        eps = listening_endpoints(line)
        sub = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--subscriber", eps["pub"],
             "--sub-delay-ms", str(args.sub_delay_ms), "--idle-timeout", str(args.idle_timeout)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        sub_lines = Lines(sub.stdout)
        sub_lines.wait_for("subscriber: subscribed", 30)

        ctl = Control(ctx, eps["control"], args.reply_timeout)
        pack = msgpack.Packer(use_bin_type=True).pack
        unpack = msgpack.unpackb
        next_id = 1

        def bad(msg):
            result["bad"] = msg
            raise Lost(msg)

        # hello: answered once the subscriber is in (--wait-subscribers 1).
        h = unpack(ctl.request(pack({"op": "hello", "id": next_id, "protocol": 2})), raw=False)
        if h.get("op") != "hello" or h.get("id") != next_id or h["pending"]["reasons"] != ["start"]:
            bad(f"hello answered {str(h)[:300]}")
        if Decimal(repr(h["dt"])) != DT:
            bad(f"dt is {h['dt']}, this script assumes {DT}")
        log(f"soak: node pid {node.pid}, tstop={h['tstop']}, {n} steps; running")
        next_id += 1
        r = unpack(ctl.request(pack({"op": "continue", "id": next_id, "actions": [{"op": "schedule", "every": 1}]})),
                   raw=False)  # fmt: skip
        t0 = time.perf_counter()
        rss0 = rss_kib(node.pid)
        samples.append((1, 0.0, rss0))
        print(f"| {1:>9,} | {0.0:>9.1f} | {mib(rss0):>8.2f} | {'':>9} |", flush=True)
        syncs = 1  # sync points received (step 0 is the first)
        prev_step = -1
        lat = array("d")  # round trip of each continue (s)
        while True:
            if r.get("op") != "sync" or r.get("id") != next_id:
                bad(f"request {next_id}: expected a sync with id {next_id}, got {str(r)[:300]}")
            step = r["step"]
            if step != prev_step + 1:
                bad(f"request {next_id}: sync at step {step} after step {prev_step}")
            if "every" not in r["reasons"]:
                bad(f"request {next_id}: sync at step {step} without `every`: {r['reasons']}")
            prev_step = step
            if syncs % args.sample_every == 0:
                el = time.perf_counter() - t0
                samples.append((syncs, el, rss_kib(node.pid)))
                s = samples[-1]
                p = samples[-2]
                rate = (s[0] - p[0]) / (s[1] - p[1]) if s[1] > p[1] else float("nan")
                print(f"| {s[0]:>9,} | {s[1]:>9.1f} | {mib(s[2]):>8.2f} | {rate:>9,.0f} |", flush=True)
            if "end" in r["reasons"]:
                break
            next_id += 1
            t1 = time.perf_counter()
            r = unpack(ctl.request(pack({"op": "continue", "id": next_id})), raw=False)
            lat.append(time.perf_counter() - t1)
            syncs += 1
        end_step = prev_step
        el_end = time.perf_counter() - t0
        rss_end = rss_kib(node.pid)
        hwm = rss_kib(node.pid, "VmHWM")
        if samples[-1][0] != syncs:
            samples.append((syncs, el_end, rss_end))
        next_id += 1
        d = unpack(ctl.request(pack({"op": "continue", "id": next_id})), raw=False)
        if d.get("op") != "done" or d.get("id") != next_id or d.get("reason") != "end":
            bad(f"after the end point: expected done (reason end) with id {next_id}, got {str(d)[:300]}")
        result["done"] = d
        result["lost"] = ctl.lost
        node_rc = node.wait(60)
        node_lines.t.join(10)
        sub_rc = sub.wait(args.idle_timeout + 600)
        sub_lines.t.join(10)
        sub_report = json.loads(sub_lines.all[-1])
    except Lost as e:
        failures.append(f"control exchange failed: {e}")
        result["lost"] = ctl.lost if ctl else 0
        print(f"\nFAILED: {e}")
        return summary_fail(failures, samples)
    finally:
        if ctl:
            ctl.close()
        ctx.term()
        for p in (node, sub):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
        node_err.seek(0)
        node_stderr = node_err.read()
        node_err.close()
        shutil.rmtree(out_dir, ignore_errors=True)

    # -- summary ----------------------------------------------------------------------------
    warm_at = min(50_000, max(args.sample_every, n // 10))
    warm = next((s for s in samples if s[0] >= warm_at), samples[0])
    growth = mib(rss_end - warm[2])
    after = [s for s in samples if s[0] >= warm[0]]
    slope = fit_slope([s[0] for s in after], [mib(s[2]) for s in after]) * 100_000 if len(after) >= 3 else float("nan")
    rate = syncs / el_end
    summary_line = [l for l in node_lines.all if l.startswith("spikebus:") and not l.startswith(LISTENING)]
    print()
    print("Summary")
    print()
    print(f"- sync points: {syncs:,} (steps 0..{end_step:,}); the end point at step {end_step:,} "
          f"(tstop={tstop} ms): {'as computed' if end_step == n else f'EXPECTED {n:,}'}; done at step {d['step']:,}")
    print(f"- elapsed {el_end:,.1f} s: {rate:,.0f} sync points/s ({1e6 / rate:,.0f} us per round trip)")
    print(f"- node RSS: {mib(rss0):.2f} MiB after the first sync point, {mib(warm[2]):.2f} MiB after warm-up "
          f"({warm[0]:,} sync points), {mib(rss_end):.2f} MiB at the end: growth {growth:+.2f} MiB "
          f"({100 * growth / mib(warm[2]):+.1f} %); min/max after warm-up {mib(min(s[2] for s in after)):.2f}/"
          f"{mib(max(s[2] for s in after)):.2f} MiB; slope {slope:+.3f} MiB per 100,000 sync points; "
          f"peak (VmHWM) {mib(hwm):.2f} MiB")
    print(f"- control exchanges: {next_id:,} requests, lost (no reply within {args.reply_timeout} s): "
          f"{result['lost']}; round trip of the continues: median {1e6 * pct(lat, 0.5):,.0f} us, "
          f"99 % {1e6 * pct(lat, 0.99):,.0f} us, 99.9 % {1e6 * pct(lat, 0.999):,.0f} us, max {max(lat):,.3f} s; "
          f"{sum(1 for x in lat if x >= 1.0):,} took >= 1 s (together {sum(x for x in lat if x >= 1.0):,.1f} s)")
    print(f"- node: exit status {node_rc}; {summary_line[-1] if summary_line else 'no summary line'}")
    print(f"- done: published {d['published']:,}")
    sr = sub_report
    print(f"- subscriber: received {sr['received']:,} messages in {sr['seconds']:,.1f} s "
          f"({', '.join(f'{k} {v:,}' for k, v in sorted(sr['by_topic'].items()))}); seq gaps {sr['gaps']:,}; "
          f"out of order {sr['disorder']}; saw done: {'yes' if sr['done'] else 'NO (idle timeout)'}; "
          f"exit status {sub_rc}")
    if node_rc != 0:
        failures.append(f"the node exited with status {node_rc}; stderr: {node_stderr[-500:]!r}")
    if end_step != n or d["step"] != n:
        failures.append(f"the run ended at step {end_step} (done: {d['step']}), not {n}")
    if result["lost"]:
        failures.append(f"{result['lost']} control exchange(s) lost (resent)")
    # Every message up to the last one received is either received or a gap.
    if sr["received"] + sr["gaps"] != sr["last_seq"] + 1:
        failures.append(f"received {sr['received']:,} + gaps {sr['gaps']:,} != last seq {sr['last_seq']:,} + 1")
    if sr["done"]:
        sd = sr["done"]
        if sd["published"] != d["published"] or sd["seq"] != d["published"]:
            failures.append(f"done on the stream {sd} differs from the reply {d}")
    lost = d["published"] + 1 - sr["received"]
    print(f"- the subscriber lost {lost:,} of {d['published'] + 1:,} messages (done included: "
          f"{'received' if sr['done'] else 'lost'}); sync messages received: {sr['by_topic'].get('sync', 0):,} "
          f"of {syncs + 1:,} sync points")
    if sr["disorder"]:
        failures.append(f"{sr['disorder']} messages out of seq order")
    print()
    if failures:
        print("FAILED:")
        for f in failures:
            print(f"- {f}")
        return 1
    print("OK: every check passed (RSS growth is reported, not judged).")
    return 0


def pct(xs, q):
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))] if ys else float("nan")


def fit_slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")


def summary_fail(failures, samples):
    print()
    print("FAILED:")
    for f in failures:
        print(f"- {f}")
    if samples:
        print(f"- last RSS sample: {samples[-1][0]:,} sync points, {mib(samples[-1][2]):.2f} MiB")
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--syncs", type=int, default=1_000_000, metavar="N",
                   help="steps of the run (sync points: N + 1, steps 0..N; default: %(default)s)")
    p.add_argument("--sample-every", type=int, default=10_000, metavar="K",
                   help="sample the node's RSS every K sync points (default: %(default)s)")
    p.add_argument("--sub-delay-ms", type=float, default=1.0, metavar="D",
                   help="the subscriber sleeps D ms after each message (default: %(default)s)")
    p.add_argument("--pub-hwm", type=int, default=1000, help="the node's --pub-hwm (default: %(default)s)")
    p.add_argument("--reply-timeout", type=float, default=30.0, metavar="S",
                   help="a reply not there after S s is a lost exchange (default: %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=60.0, metavar="S",
                   help="the subscriber gives up after S s without a message (default: %(default)s)")
    p.add_argument("--spikebus", default=DEFAULT_BINARY, help="the node binary (default: %(default)s)")
    p.add_argument("--subscriber", metavar="ENDPOINT", help=argparse.SUPPRESS)
    args = p.parse_args()  # fmt: skip
    if args.subscriber:
        subscriber(args.subscriber, args.sub_delay_ms, args.idle_timeout)
        return 0
    if args.syncs < 1 or args.sample_every < 1:
        p.error("--syncs and --sample-every must be >= 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
