#!/usr/bin/env python3
"""Lockstep benchmark: a controller that syncs at every step, against a bare round trip of the
same messages, over both control transports: ZeroMQ and spikebus's unix:// socket.

Usage (from the repository root):

    python bench/lockstep.py [--spikebus PATH] [--repeat N] [--tstop MS] [--transport zmq|unix|both]
                             [--endpoint tcp|ipc] [--pin CPUS] [--no-codec-row]

Three kinds of runs per transport, all interleaved (their order reverses from one repetition to
the next, so that all share the machine's noise):

  lockstep          a spikebus node (the seed model, `spikebus run --control ENDPOINT --set
                    tstop=T`) steered by a controller written here with a raw socket + msgpack
                    (not the spikebus_client library, which adds its own per-request work):
                    `hello`, then `continue [schedule every=1]`, then `continue` with no
                    actions, step after step, until the `end` point; a last `continue` gets
                    `done`. Timed: the `continue`s from the sync point of step 0 to the `end`
                    point (one round trip per step: 4,000 for tstop = 100 ms). Each request is
                    packed with msgpack and each reply unpacked (the controller has to read the
                    reply to see the `end`); nothing else is done.
  pingpong          the same number of round trips between the same client socket code (here)
                    and a Python echo server in a second process, with messages of the
                    lockstep's sizes: requests of the median request size, as ready-made bytes,
                    and as the reply a sync report of the node of the median reply size (both
                    captured by a calibration lockstep run first); no msgpack.
  pingpong+msgpack  the same server, with a client that packs and unpacks exactly as the
                    lockstep's controller does (same maps, same ids): it separates the
                    controller's cost from the node's (--no-codec-row skips it).

The transports (--transport both, the default, runs both in one run):

  zmq   the node's --control on tcp://127.0.0.1:0 (or, with --endpoint ipc, an ipc:// path);
        the client a pyzmq REQ; the echo server a pyzmq REP (pyzmq is libzmq).
  unix  the node's --control on unix://PATH: the protocol's messages in frames of a 4-byte
        big-endian length and the bytes, over a Unix-domain stream socket; the client a
        blocking Python socket (one sendall, usually one recv_into per message); the echo
        server the same framing with the same socket calls.

Each run uses a fresh connection, after two untimed round trips (the lockstep's `hello` and its
first `continue`).

Reported: steps/s of the lockstep (= its round trips/s), round trips/s of the ping-pongs, medians
over the repetitions; the latency of single round trips (all repetitions pooled); the CPU time
per round trip of each process's main thread and of its other threads (libzmq's I/O thread),
from /proc/PID/task/TID/sched; and how much CPU other processes used meanwhile (from /proc/stat).
The last lines of output are, for each transport run,

    lockstep_vs_pingpong_ratio=<median lockstep steps/s / median ping-pong round trips/s>   (zmq)
    unix_lockstep_vs_pingpong_ratio=<the same over the unix transport>
    unix_vs_zmq_lockstep=<median unix lockstep steps/s / median zmq lockstep steps/s>      (both)

Mind the cores: while a run is busy, the node (or the echo process) and the controller each
keep a core busy, and over ZeroMQ each process has a libzmq I/O thread besides; on a 2-core
machine they all share 2 cores. --pin CPUS runs every process on the given CPUs only.

Progress goes to stderr, the table to stdout. Needs Python >= 3.8, pyzmq and msgpack
(`pip install -r bench/requirements.txt`).
"""

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

from common import (DEFAULT_BINARY, LISTENING, cpu_snapshot, listening_endpoints, loadavg, log,
                    machine_line, need_zmq_msgpack, others_line, spikebus_binary, start_process,
                    text_table, zmq_versions_line)


# ---------------------------------------------------------------------------------------------
# The client side of a connection, per transport: the same code for the lockstep's controller
# and the ping-pong's client (only the process at the other end differs).

HEADER = struct.Struct(">I")


def framed_io(sock):
    """(send, recv) of whole unix:// frames (a 4-byte big-endian length, then the message) over
    a connected, blocking stream socket."""
    sendall, recv_into = sock.sendall, sock.recv_into
    pack, unpack_from = HEADER.pack, HEADER.unpack_from
    buf = bytearray(1 << 16)
    view = memoryview(buf)

    def send(data):
        sendall(pack(len(data)) + data)

    def recv():
        n = recv_into(buf)
        while True:
            if n >= 4:
                end = 4 + unpack_from(buf)[0]
                if n >= end:  # one request, one reply: nothing follows a frame
                    return bytes(view[4:end])
                if end > len(buf):
                    raise RuntimeError(f"a frame of {end} bytes: more than this benchmark expects")
            got = recv_into(view[n:])
            if not got:
                raise ConnectionError("the peer closed the connection")
            n += got

    return send, recv


class ZmqLink:
    """A pyzmq REQ socket: send(bytes), recv() -> bytes."""

    def __init__(self, endpoint):
        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.send, self.recv = self.sock.send, self.sock.recv

    def close(self):
        self.sock.close()
        self.ctx.term()


class UnixLink:
    """A Unix-domain stream socket to a unix:// endpoint, speaking frames: send(bytes),
    recv() -> bytes."""

    def __init__(self, endpoint):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(endpoint[len("unix://"):])
        self.send, self.recv = framed_io(self.sock)

    def close(self):
        self.sock.close()


LINKS = {"zmq": ZmqLink, "unix": UnixLink}


# ---------------------------------------------------------------------------------------------
# The server side of the ping-pong: a second process (started by this script with --rep-worker
# or --unix-worker).

def rep_worker(endpoint, reply_hex):
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.bind(endpoint)
    print("rep: listening " + sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    reply = bytes.fromhex(reply_hex)  # a real sync reply of the node, captured by calibration
    recv, send = sock.recv, sock.send
    while True:
        msg = recv()
        if not msg:  # the empty message: stop
            send(b"")
            break
        send(reply)
    sock.close()
    ctx.term()


def unix_worker(endpoint, reply_hex):
    """The echo server of the unix transport: one connection, frames in, the captured reply
    (framed once, up front) out; an empty frame stops it."""
    path = endpoint[len("unix://"):]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    print("rep: listening " + endpoint, flush=True)
    conn, _ = srv.accept()
    reply = bytes.fromhex(reply_hex)
    framed = HEADER.pack(len(reply)) + reply
    send, recv = framed_io(conn)
    sendall = conn.sendall
    while True:
        msg = recv()
        if not msg:
            send(b"")
            break
        sendall(framed)
    conn.close()
    srv.close()
    os.unlink(path)


# ---------------------------------------------------------------------------------------------
# Processes

def thread_cpu_ns(pid):
    """CPU time so far of each thread of a process: {tid: (name, ns)}, from the scheduler's
    se.sum_exec_runtime in /proc/PID/task/TID/sched (ms with ns digits); {} if unreadable."""
    out = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{base}/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/{tid}/sched") as f:
                for line in f:
                    if line.startswith("se.sum_exec_runtime"):
                        ms = line.split(":", 1)[1].strip()
                        whole, _, frac = ms.partition(".")
                        out[tid] = (name, int(whole) * 1_000_000 + int((frac + "000000")[:6]))
                        break
        except (OSError, ValueError):
            pass
    return out


def cpu_split(before, after, main_tid):
    """-> (ns of the main thread, ns of the other threads) between two thread_cpu_ns()."""
    main = other = 0
    for tid, (_name, ns) in after.items():
        d = ns - before.get(tid, (None, 0))[1]
        if tid == str(main_tid):
            main += d
        else:
            other += d
    return main, other


def endpoint_for(transport, kind, tmp, tag):
    """A fresh endpoint to bind: for zmq, tcp on a free port or an ipc path (--endpoint); for
    unix, a unix:// path."""
    if transport == "unix":
        return f"unix://{tmp}/{tag}.sock"
    if kind == "tcp":
        return "tcp://127.0.0.1:0"
    return f"ipc://{tmp}/{tag}.sock"


# ---------------------------------------------------------------------------------------------
# The two kinds of runs

def run_lockstep(binary, tstop, transport, kind, tmp, tag):
    """One lockstep run; -> dict with seconds, steps, latencies (ns), message sizes."""
    import msgpack

    outdir = os.path.join(tmp, f"out-{tag}")
    cmd = [binary, "run", "--control", endpoint_for(transport, kind, tmp, tag), "--set",
           f"tstop={tstop!r}", "--out", outdir]
    proc, line = start_process(cmd, LISTENING)
    control = listening_endpoints(line)["control"]

    link = LINKS[transport](control)
    packb, unpackb = msgpack.packb, msgpack.unpackb
    send, recv = link.send, link.recv
    perf = time.perf_counter_ns
    try:
        def request(msg):
            send(packb(msg))
            r = unpackb(recv())
            if r.get("op") == "error":
                raise RuntimeError(f"error reply to {msg}: {r}")
            return r

        next_id = 1
        hello = request({"op": "hello", "id": next_id, "protocol": 2})
        dt, planned_tstop = hello["dt"], hello["tstop"]
        next_id += 1
        r = request({"op": "continue", "id": next_id,
                     "actions": [{"op": "schedule", "every": 1}]})
        if r.get("op") != "sync" or r["step"] != 0:
            raise RuntimeError(f"expected the sync point of step 0, got {r}")

        # The timed loop: continue without actions until the end point.
        lat = []
        req_sizes, rep_sizes = [], []
        replies = {}  # one reply of each size
        codec_ns = 0  # controller time spent packing and unpacking
        reasons = r["reasons"]
        me = os.getpid()
        cpu0 = (thread_cpu_ns(proc.pid), thread_cpu_ns(me))
        t_start = perf()
        while "end" not in reasons:
            next_id += 1
            a = perf()
            data = packb({"op": "continue", "id": next_id, "actions": []})
            b = perf()
            send(data)
            reply = recv()
            c = perf()
            r = unpackb(reply)
            reasons = r.get("reasons", ("end",))  # none: an error reply, reported below
            d = perf()
            codec_ns += (b - a) + (d - c)
            lat.append(d - a)
            req_sizes.append(len(data))
            rep_sizes.append(len(reply))
            replies.setdefault(len(reply), reply)
        seconds = (perf() - t_start) / 1e9
        cpu1 = (thread_cpu_ns(proc.pid), thread_cpu_ns(me))
        if r.get("op") != "sync":
            raise RuntimeError(f"expected a sync report, got {r}")
        steps = r["step"]

        next_id += 1
        done = request({"op": "continue", "id": next_id})
        if done.get("op") != "done":
            raise RuntimeError(f"expected done, got {done}")
    finally:
        link.close()
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError("the node did not exit after done")
    if proc.returncode != 0:
        raise RuntimeError(f"the node exited {proc.returncode}: {out!r} {err!r}")
    if err.strip():
        log(f"    node stderr: {err.strip()}")
    return {"seconds": seconds, "steps": steps, "round_trips": len(lat), "lat": lat,
            "cpu_server": cpu_split(cpu0[0], cpu1[0], proc.pid),
            "cpu_client": cpu_split(cpu0[1], cpu1[1], threading.get_native_id()),
            "req_sizes": req_sizes, "rep_sizes": rep_sizes, "codec_ns": codec_ns,
            "replies": replies, "first_id": 3,
            "dt": dt, "tstop": planned_tstop, "t_end": r["t"], "summary": out.strip()}


def run_pingpong(rounds, req_size, reply, transport, kind, tmp, tag, codec=False, first_id=3):
    """`rounds` timed round trips to an echo server (after 2 untimed ones); -> dict.

    The server process answers every request with `reply` (bytes). codec=False: the requests
    are ready-made bytes of req_size. codec=True: as the lockstep's controller, each request is
    a `continue` map packed with msgpack (ids from first_id, hence the same sizes) and each
    reply is unpacked and its `reasons` read."""
    import msgpack

    worker = "--unix-worker" if transport == "unix" else "--rep-worker"
    cmd = [sys.executable, os.path.abspath(__file__), worker,
           endpoint_for(transport, kind, tmp, tag), reply.hex()]
    proc, line = start_process(cmd, "rep: listening")
    endpoint = line.split()[-1]

    link = LINKS[transport](endpoint)
    send, recv = link.send, link.recv
    packb, unpackb = msgpack.packb, msgpack.unpackb
    perf = time.perf_counter_ns
    request = b"\x01" * req_size
    codec_ns = 0
    try:
        for _ in range(2):  # as the lockstep's hello and first continue
            send(request)
            recv()
        lat = []
        me = os.getpid()
        cpu0 = (thread_cpu_ns(proc.pid), thread_cpu_ns(me))
        t_start = perf()
        if codec:
            next_id = first_id - 1
            for _ in range(rounds):
                next_id += 1
                a = perf()
                data = packb({"op": "continue", "id": next_id, "actions": []})
                b = perf()
                send(data)
                got = recv()
                c = perf()
                r = unpackb(got)
                reasons = r.get("reasons", ("end",))
                d = perf()
                codec_ns += (b - a) + (d - c)
                lat.append(d - a)
                if "end" in reasons:
                    raise RuntimeError("the canned reply is an end report")
        else:
            for _ in range(rounds):
                a = perf()
                send(request)
                got = recv()
                lat.append(perf() - a)
        seconds = (perf() - t_start) / 1e9
        cpu1 = (thread_cpu_ns(proc.pid), thread_cpu_ns(me))
        if got != reply:
            raise RuntimeError(f"unexpected reply {got!r}")
        send(b"")
        recv()
    finally:
        link.close()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError("the echo process did not exit")
    if proc.returncode != 0:
        raise RuntimeError(f"the echo process exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    return {"seconds": seconds, "round_trips": rounds, "lat": lat, "codec_ns": codec_ns,
            "cpu_server": cpu_split(cpu0[0], cpu1[0], proc.pid),
            "cpu_client": cpu_split(cpu0[1], cpu1[1], threading.get_native_id())}


# ---------------------------------------------------------------------------------------------
# Table

def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def main(argv):
    if argv and argv[0] == "--rep-worker":
        rep_worker(*argv[1:])
        return 0
    if argv and argv[0] == "--unix-worker":
        unix_worker(*argv[1:])
        return 0

    ap = argparse.ArgumentParser(description="Lockstep (sync every step) vs a bare ping-pong of "
                                             "the same message sizes, over ZeroMQ and unix://.")
    ap.add_argument("--spikebus", default=DEFAULT_BINARY,
                    help=f"spikebus binary (default {DEFAULT_BINARY}, relative to the repo root)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each kind (default 5)")
    ap.add_argument("--tstop", type=float, default=100.0,
                    help="tstop of each lockstep run, ms (default 100: 4,000 steps of 0.025 ms)")
    ap.add_argument("--transport", choices=["zmq", "unix", "both"], default="both",
                    help="the control transport: ZeroMQ, spikebus's unix:// socket, or both in "
                         "one run (default)")
    ap.add_argument("--endpoint", choices=["tcp", "ipc"], default="tcp",
                    help="for zmq: tcp loopback (default) or ipc (ZeroMQ over a Unix socket)")
    ap.add_argument("--no-codec-row", action="store_true",
                    help="skip the pingpong+msgpack runs (a client that packs and unpacks as the "
                         "lockstep's controller does, against the same echo server)")
    ap.add_argument("--pin", metavar="CPUS",
                    help="run everything (this script, the node, the echo process) on these CPUs "
                         "only, e.g. 0 or 0,1 (default: no pinning)")
    args = ap.parse_args(argv)
    if args.pin:
        try:
            cpus = {int(c) for c in args.pin.split(",") if c.strip()}
            os.sched_setaffinity(0, cpus)  # inherited by every process started from here
        except (ValueError, OSError, AttributeError) as e:
            ap.error(f"--pin {args.pin}: {e}")
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if not args.tstop > 0:
        ap.error("--tstop must be > 0")
    need_zmq_msgpack("bench/lockstep.py")
    binary = spikebus_binary(args.spikebus)

    transports = ["zmq", "unix"] if args.transport == "both" else [args.transport]
    load_before = loadavg()
    cpu_before = cpu_snapshot()
    kinds = ["lockstep", "pingpong"] + ([] if args.no_codec_row else ["pingpong+msgpack"])
    cases = [(t, k) for t in transports for k in kinds]
    runs = {c: [] for c in cases}
    with tempfile.TemporaryDirectory(prefix="spikebus-lockstep-") as tmp:
        log(f"calibration: one lockstep run (tstop {args.tstop:g} ms, {transports[0]}) to measure "
            "message sizes ...")
        cal = run_lockstep(binary, args.tstop, transports[0], args.endpoint, tmp, "cal")
        req_size = int(statistics.median_low(cal["req_sizes"]))
        rep_size = int(statistics.median_low(cal["rep_sizes"]))
        reply = cal["replies"][rep_size]
        rounds = cal["round_trips"]
        log(f"    {rounds} round trips; request {req_size} B, reply {rep_size} B (medians); "
            f"{rounds / cal['seconds']:,.0f} steps/s")
        for rep in range(args.repeat):
            order = cases if rep % 2 == 0 else cases[::-1]
            for transport, kind in order:
                log(f"[{rep + 1}/{args.repeat}] {kind} [{transport}] ...")
                tag = f"{transport}-{kind.replace('+', '-')}-{rep}"
                if kind == "lockstep":
                    r = run_lockstep(binary, args.tstop, transport, args.endpoint, tmp, tag)
                    if r["round_trips"] != rounds:
                        raise RuntimeError(f"{r['round_trips']} round trips, calibration had {rounds}")
                else:
                    r = run_pingpong(rounds, req_size, reply, transport, args.endpoint, tmp, tag,
                                     codec=kind == "pingpong+msgpack", first_id=cal["first_id"])
                runs[(transport, kind)].append(r)
                log(f"    {r['round_trips']} round trips in {r['seconds']:.4f} s: "
                    f"{r['round_trips'] / r['seconds']:,.0f} /s")
    cpu_after = cpu_snapshot()

    first_lock = runs[(transports[0], "lockstep")]
    steps = first_lock[0]["steps"]
    rates = {c: [r["round_trips"] / r["seconds"] for r in v] for c, v in runs.items()}
    med = {c: statistics.median(v) for c, v in rates.items()}
    ratio = {t: med[(t, "lockstep")] / med[(t, "pingpong")] for t in transports}

    def lat_cells(rs):
        pooled = sorted(x for r in rs for x in r["lat"])
        return [f"{percentile(pooled, p) / 1e3:.1f}" for p in (50, 99)] + \
               [f"{pooled[-1] / 1e3:.0f}", f"{sum(1 for x in pooled if x > 1e6)}"]

    all_req = [x for t in transports for r in runs[(t, "lockstep")] for x in r["req_sizes"]]
    all_rep = [x for t in transports for r in runs[(t, "lockstep")] for x in r["rep_sizes"]]
    labels = {"lockstep": "lockstep (steps)", "pingpong": "pingpong",
              "pingpong+msgpack": "pingpong+msgpack"}
    columns = ["kind", "transport", "round trips", "req B", "reply B", "median /s", "min /s",
               "max /s", "us/round trip", "p50 us", "p99 us", "max us", ">1 ms"]
    rows = []
    for c in cases:
        t, k = c
        sizes = ([f"{min(all_req)}-{max(all_req)}", f"{min(all_rep)}-{max(all_rep)}"]
                 if k == "lockstep" else
                 [f"{min(all_req)}-{max(all_req)}" if k == "pingpong+msgpack" else str(req_size),
                  str(rep_size)])
        rows.append([labels[k], t, f"{rounds:,}"] + sizes +
                    [f"{med[c]:,.0f}", f"{min(rates[c]):,.0f}", f"{max(rates[c]):,.0f}",
                     f"{1e6 / med[c]:.1f}"] + lat_cells(runs[c]))

    def cpu_med(rs, side, i):
        return statistics.median(r[side][i] / r["round_trips"] for r in rs) / 1e3

    def codec_med(rs):
        return statistics.median(r["codec_ns"] / r["round_trips"] for r in rs) / 1e3

    cpu_columns = ["kind", "transport", "server main", "server other", "client main",
                   "client other", "client msgpack"]
    cpu_rows = []
    for c in cases:
        t, k = c
        who = "node | controller" if k == "lockstep" else "echo | client"
        cpu_rows.append([f"{k} ({who})", t]
                        + [f"{cpu_med(runs[c], side, i):.1f}"
                           for side in ("cpu_server", "cpu_client") for i in (0, 1)]
                        + [f"{codec_med(runs[c]):.1f}" if k != "pingpong" else "-"])
    zmq_transport = "tcp loopback (127.0.0.1)" if args.endpoint == "tcp" else "ipc (ZeroMQ over a Unix socket)"
    lines = [
        text_table(columns, rows, set(columns[2:])),
        "",
        "CPU time per round trip, us (median over runs) of each process's main thread and of its "
        "other threads (libzmq's I/O thread and reaper; none over unix), from "
        "/proc/PID/task/TID/sched; client msgpack = the controller's packb + unpackb time inside "
        "its loop:",
        text_table(cpu_columns, cpu_rows, set(cpu_columns[2:])),
        "",
        f"lockstep: {steps:,} steps of the seed model (tstop {first_lock[0]['tstop']:g} ms, dt "
        f"{first_lock[0]['dt']:g} ms), one sync per step; controller: a raw socket + msgpack "
        "(packs each continue, unpacks each reply), not the spikebus_client library",
        f"pingpong: the same client socket code (this process) <-> an echo server in a second "
        f"Python process, {req_size}-byte requests, {rep_size}-byte replies (the lockstep's "
        "median sizes; the reply is a captured sync report of the node), ready-made bytes, no "
        "msgpack",
    ]
    if "pingpong+msgpack" in kinds:
        lines.append("pingpong+msgpack: the same echo server, but the client packs and unpacks as "
                     "the lockstep's controller does (same request maps and ids)")
    if "zmq" in transports:
        lines.append(f"zmq: pyzmq REQ client, pyzmq REP echo server, the node's ROUTER; {zmq_transport}")
    if "unix" in transports:
        lines.append("unix: the node's --control unix://PATH; frames of a 4-byte big-endian length "
                     "and the message over a Unix-domain stream socket; the client and the echo "
                     "server: blocking Python sockets (sendall, recv_into)")
    lines.append(
        ("every process pinned to CPU(s) " + args.pin + "; " if args.pin else "")
        + f"one fresh connection per run; {args.repeat} runs of each kind, interleaved (order "
        "alternating); /s = round trips (steps) per second of each run's timed loop, "
        "median/min/max over runs; latencies: single round trips, all runs pooled")
    for t in transports:
        us = {k: 1e6 / med[(t, k)] for k in kinds}
        lines.append(
            f"per round trip [{t}], medians: lockstep {us['lockstep']:.1f} us, pingpong "
            f"{us['pingpong']:.1f} us: {us['lockstep'] - us['pingpong']:+.1f} us"
            + (f" = controller msgpack (pingpong+msgpack - pingpong) "
               f"{us['pingpong+msgpack'] - us['pingpong']:+.1f} us + the node in place of a "
               f"Python echo server (lockstep - pingpong+msgpack) "
               f"{us['lockstep'] - us['pingpong+msgpack']:+.1f} us"
               if "pingpong+msgpack" in us else ""))
    lines += [
        others_line(cpu_before, cpu_after),
        f"load average (1/5/15 min) before: {load_before}; after: {loadavg()}",
        f"machine: {machine_line()} -- while busy, the node (or echo server) and the controller "
        "(or client) each take a core; over zmq each process has a libzmq I/O thread besides",
        f"versions: {zmq_versions_line(binary)}",
    ]
    if "zmq" in transports:
        lines.append(f"lockstep_vs_pingpong_ratio={ratio['zmq']:.3f}")
    if "unix" in transports:
        lines.append(f"unix_lockstep_vs_pingpong_ratio={ratio['unix']:.3f}")
    if len(transports) == 2:
        lines.append(f"unix_vs_zmq_lockstep={med[('unix', 'lockstep')] / med[('zmq', 'lockstep')]:.2f}")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
