#!/usr/bin/env python3
"""Lockstep benchmark: a controller that syncs at every step, against the bare ZeroMQ round trip.

Usage (from the repository root):

    python bench/lockstep.py [--spikebus PATH] [--repeat N] [--tstop MS] [--endpoint tcp|ipc]
                             [--pin CPUS] [--no-codec-row]

Three kinds of runs, interleaved (their order reverses from one repetition to the next, so
that all share the machine's noise):

  lockstep          a spikebus node (the seed model, `spikebus run --control tcp://127.0.0.1:0
                    --set tstop=T`) steered by a controller written here with raw pyzmq +
                    msgpack (not the spikebus_client library, which adds its own per-request
                    work): `hello`, then `continue [schedule every=1]`, then `continue` with no
                    actions, step after step, until the `end` point; a last `continue` gets
                    `done`. Timed: the `continue`s from the sync point of step 0 to the `end`
                    point (one round trip per step: 4,000 for tstop = 100 ms). Each request is
                    packed with msgpack and each reply unpacked (the controller has to read the
                    reply to see the `end`); nothing else is done.
  pingpong          the same number of round trips between a pyzmq REQ (here) and a pyzmq REP in
                    a second Python process (pyzmq is libzmq), with messages of the lockstep's
                    sizes: requests of the median request size, as ready-made bytes, and as the
                    reply a sync report of the node of the median reply size (both captured by
                    a calibration lockstep run first); no msgpack.
  pingpong+msgpack  the same REP, with a REQ that packs and unpacks exactly as the lockstep's
                    controller does (same maps, same ids): it separates the controller's cost
                    from the node's (--no-codec-row skips it).

Both connect over TCP loopback (or, with --endpoint ipc, a Unix socket), on a fresh connection
per run, after two untimed round trips (the lockstep's `hello` and its first `continue`).

Reported: steps/s of the lockstep (= its round trips/s), round trips/s of the ping-pongs, medians
over the repetitions; the latency of single round trips (all repetitions pooled); the CPU time
per round trip of each process's main thread and of its other threads (libzmq's I/O thread),
from /proc/PID/task/TID/sched; and how much CPU other processes used meanwhile (from /proc/stat).
The last line of output is exactly

    lockstep_vs_pingpong_ratio=<median lockstep steps/s / median ping-pong round trips/s>

Mind the cores: while a run is busy, the node (or the REP process) and the controller (or the
REQ) each keep a core busy, and each process has a libzmq I/O thread besides; on a 2-core
machine they all share 2 cores. --pin CPUS runs every process on the given CPUs only.

Progress goes to stderr, the table to stdout. Needs Python >= 3.8, pyzmq and msgpack
(`pip install -r bench/requirements.txt`).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from common import (DEFAULT_BINARY, LISTENING, cpu_snapshot, listening_endpoints, loadavg, log,
                    machine_line, need_zmq_msgpack, others_line, spikebus_binary, start_process,
                    text_table, zmq_versions_line)


# ---------------------------------------------------------------------------------------------
# The REP side of the ping-pong: a second process (started by this script with --rep-worker).

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


def endpoint_for(kind, tmp, tag):
    if kind == "tcp":
        return "tcp://127.0.0.1:0"
    return f"ipc://{tmp}/{tag}.sock"


# ---------------------------------------------------------------------------------------------
# The two kinds of runs

def run_lockstep(binary, tstop, kind, tmp, tag):
    """One lockstep run; -> dict with seconds, steps, latencies (ns), message sizes."""
    import msgpack
    import zmq

    outdir = os.path.join(tmp, f"out-{tag}")
    cmd = [binary, "run", "--control", endpoint_for(kind, tmp, tag), "--set", f"tstop={tstop!r}",
           "--out", outdir]
    proc, line = start_process(cmd, LISTENING)
    control = listening_endpoints(line)["control"]

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(control)
    packb, unpackb = msgpack.packb, msgpack.unpackb
    send, recv = sock.send, sock.recv
    perf = time.perf_counter_ns
    try:
        def request(msg):
            sock.send(packb(msg))
            r = unpackb(sock.recv())
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
        sock.close()
        ctx.term()
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


def run_pingpong(rounds, req_size, reply, kind, tmp, tag, codec=False, first_id=3):
    """`rounds` timed REQ -> REP round trips (after 2 untimed ones); -> dict.

    The REP process answers every request with `reply` (bytes). codec=False: the requests are
    ready-made bytes of req_size. codec=True: as the lockstep's controller, each request is a
    `continue` map packed with msgpack (ids from first_id, hence the same sizes) and each reply
    is unpacked and its `reasons` read."""
    import msgpack
    import zmq

    cmd = [sys.executable, os.path.abspath(__file__), "--rep-worker",
           endpoint_for(kind, tmp, tag), reply.hex()]
    proc, line = start_process(cmd, "rep: listening")
    endpoint = line.split()[-1]

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    send, recv = sock.send, sock.recv
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
        sock.close()
        ctx.term()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError("the REP process did not exit")
    if proc.returncode != 0:
        raise RuntimeError(f"the REP process exited {proc.returncode}")
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

    ap = argparse.ArgumentParser(description="Lockstep (sync every step) vs a bare ZeroMQ "
                                             "REQ/REP ping-pong of the same message sizes.")
    ap.add_argument("--spikebus", default=DEFAULT_BINARY,
                    help=f"spikebus binary (default {DEFAULT_BINARY}, relative to the repo root)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each kind (default 5)")
    ap.add_argument("--tstop", type=float, default=100.0,
                    help="tstop of each lockstep run, ms (default 100: 4,000 steps of 0.025 ms)")
    ap.add_argument("--endpoint", choices=["tcp", "ipc"], default="tcp",
                    help="tcp loopback (default) or ipc (Unix socket) for both kinds")
    ap.add_argument("--no-codec-row", action="store_true",
                    help="skip the pingpong+msgpack runs (a REQ that packs and unpacks as the "
                         "lockstep's controller does, against the same REP)")
    ap.add_argument("--pin", metavar="CPUS",
                    help="run everything (this script, the node, the REP process) on these CPUs "
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

    load_before = loadavg()
    cpu_before = cpu_snapshot()
    kinds = ["lockstep", "pingpong"] + ([] if args.no_codec_row else ["pingpong+msgpack"])
    runs = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="spikebus-lockstep-") as tmp:
        log(f"calibration: one lockstep run (tstop {args.tstop:g} ms) to measure message sizes ...")
        cal = run_lockstep(binary, args.tstop, args.endpoint, tmp, "cal")
        req_size = int(statistics.median_low(cal["req_sizes"]))
        rep_size = int(statistics.median_low(cal["rep_sizes"]))
        reply = cal["replies"][rep_size]
        rounds = cal["round_trips"]
        log(f"    {rounds} round trips; request {req_size} B, reply {rep_size} B (medians); "
            f"{rounds / cal['seconds']:,.0f} steps/s")
        for rep in range(args.repeat):
            order = kinds if rep % 2 == 0 else kinds[::-1]
            for kind in order:
                log(f"[{rep + 1}/{args.repeat}] {kind} ...")
                if kind == "lockstep":
                    r = run_lockstep(binary, args.tstop, args.endpoint, tmp, f"ls{rep}")
                    if r["round_trips"] != rounds:
                        raise RuntimeError(f"{r['round_trips']} round trips, calibration had {rounds}")
                else:
                    r = run_pingpong(rounds, req_size, reply, args.endpoint, tmp, f"pp{rep}",
                                     codec=kind == "pingpong+msgpack", first_id=cal["first_id"])
                runs[kind].append(r)
                log(f"    {r['round_trips']} round trips in {r['seconds']:.4f} s: "
                    f"{r['round_trips'] / r['seconds']:,.0f} /s")
    cpu_after = cpu_snapshot()

    lock = runs["lockstep"]
    steps = lock[0]["steps"]
    rates = {k: [r["round_trips"] / r["seconds"] for r in v] for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["lockstep"] / med["pingpong"]

    def lat_cells(rs):
        pooled = sorted(x for r in rs for x in r["lat"])
        return [f"{percentile(pooled, p) / 1e3:.1f}" for p in (50, 99)] + \
               [f"{pooled[-1] / 1e3:.0f}", f"{sum(1 for x in pooled if x > 1e6)}"]

    all_req = [x for r in lock for x in r["req_sizes"]]
    all_rep = [x for r in lock for x in r["rep_sizes"]]
    labels = {"lockstep": "lockstep (steps)", "pingpong": "pingpong",
              "pingpong+msgpack": "pingpong+msgpack"}
    columns = ["kind", "round trips", "req B", "reply B", "median /s", "min /s", "max /s",
               "us/round trip", "p50 us", "p99 us", "max us", ">1 ms"]
    rows = []
    for k in kinds:
        sizes = ([f"{min(all_req)}-{max(all_req)}", f"{min(all_rep)}-{max(all_rep)}"]
                 if k == "lockstep" else
                 [f"{min(all_req)}-{max(all_req)}" if k == "pingpong+msgpack" else str(req_size),
                  str(rep_size)])
        rows.append([labels[k], f"{rounds:,}"] + sizes +
                    [f"{med[k]:,.0f}", f"{min(rates[k]):,.0f}", f"{max(rates[k]):,.0f}",
                     f"{1e6 / med[k]:.1f}"] + lat_cells(runs[k]))

    def cpu_med(rs, side, i):
        return statistics.median(r[side][i] / r["round_trips"] for r in rs) / 1e3

    def codec_med(rs):
        return statistics.median(r["codec_ns"] / r["round_trips"] for r in rs) / 1e3

    cpu_columns = ["kind", "server main", "server other", "client main", "client other",
                   "client msgpack"]
    cpu_rows = []
    for k, who in (("lockstep", "node | controller"), ("pingpong", "REP | REQ"),
                   ("pingpong+msgpack", "REP | REQ")):
        if k in runs:
            cpu_rows.append([f"{k} ({who})"]
                            + [f"{cpu_med(runs[k], side, i):.1f}"
                               for side in ("cpu_server", "cpu_client") for i in (0, 1)]
                            + [f"{codec_med(runs[k]):.1f}" if k != "pingpong" else "-"])
    us = {k: 1e6 / v for k, v in med.items()}
    transport = "tcp loopback (127.0.0.1)" if args.endpoint == "tcp" else "ipc (Unix socket)"
    lines = [
        text_table(columns, rows, set(columns[1:])),
        "",
        "CPU time per round trip, us (median over runs) of each process's main thread and of its "
        "other threads (libzmq's I/O thread and reaper), from /proc/PID/task/TID/sched; client "
        "msgpack = the controller's packb + unpackb time inside its loop:",
        text_table(cpu_columns, cpu_rows, set(cpu_columns[1:])),
        "",
        f"lockstep: {steps:,} steps of the seed model (tstop {lock[0]['tstop']:g} ms, dt "
        f"{lock[0]['dt']:g} ms), one sync per step; controller: raw pyzmq REQ + msgpack "
        "(packs each continue, unpacks each reply), not the spikebus_client library",
        f"pingpong: pyzmq REQ (this process) <-> pyzmq REP (a second Python process), "
        f"{req_size}-byte requests, {rep_size}-byte replies (the lockstep's median sizes; the "
        "reply is a captured sync report of the node), ready-made bytes, no msgpack",
    ]
    if "pingpong+msgpack" in runs:
        lines.append("pingpong+msgpack: the same REP, but the REQ packs and unpacks as the "
                     "lockstep's controller does (same request maps and ids)")
    lines += [
        f"transport: {transport}"
        + (f", every process pinned to CPU(s) {args.pin}" if args.pin else "")
        + f"; one fresh connection per run; {args.repeat} runs of each kind, interleaved (order "
        "alternating); /s = round trips (steps) per second of each run's timed loop, "
        "median/min/max over runs; latencies: single round trips, all runs pooled",
        f"per round trip, medians: lockstep {us['lockstep']:.1f} us, pingpong "
        f"{us['pingpong']:.1f} us: {us['lockstep'] - us['pingpong']:+.1f} us"
        + (f" = controller msgpack (pingpong+msgpack - pingpong) "
           f"{us['pingpong+msgpack'] - us['pingpong']:+.1f} us + the node in place of a "
           f"Python echo REP (lockstep - pingpong+msgpack) "
           f"{us['lockstep'] - us['pingpong+msgpack']:+.1f} us"
           if "pingpong+msgpack" in us else ""),
        others_line(cpu_before, cpu_after),
        f"load average (1/5/15 min) before: {load_before}; after: {loadavg()}",
        f"machine: {machine_line()} -- while busy, the node (or REP) and the controller (or REQ) "
        "each take a core, and each process has a libzmq I/O thread besides",
        f"versions: {zmq_versions_line(binary)}",
        f"lockstep_vs_pingpong_ratio={ratio:.3f}",
    ]
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
