#!/usr/bin/env python3
"""State-stream benchmark: how fast a free-running node publishes to one pyzmq subscriber.

Usage (from the repository root):

    python bench/pubstream.py [--spikebus PATH] [--repeat N] [--tstop MS] [--batches 1,10,100]
                              [--slow-hwm 1000] [--slow-sleep-ms 1]

Runs (the seed model, no controller, `--set tstop=T`; repetitions interleaved):

  no pub       `spikebus run`: the free run alone (it writes traces.csv as every run does).
  batch K      `spikebus run --pub tcp://127.0.0.1:0 --wait-subscribers 1 --pub-batch K`, with
               the node's default high-water mark (--pub-hwm 100000 messages), and one fast
               subscriber here: a pyzmq SUB (subscribed to everything, libzmq's default receive
               high-water mark) that receives each message, decodes it with msgpack, counts
               messages, samples (the length of each `state` message's `step` list) and `seq`
               gaps, until `done`.
  slow         once, after the repetitions: batch 1 with `--pub-hwm H` (default 1000) and a
               subscriber that sleeps S ms (default 1) after each message, so that it loses
               messages at its high-water mark (seen as seq gaps; `done` may be lost too), and
               the node must not be slowed (compare its time with the fast batch-1 runs).

Columns:
  node s       the node's own "in X s" figure (initialization + stepping, with publishing and
               traces.csv writing; no start-up, no waiting for the subscriber, no file closing);
               `vs no pub` divides it by the no-pub median.
  process s    wall time of the whole node process as seen from here (start-up, the subscriber
               handshake, the run, files, and libzmq's linger at exit while it flushes queued
               messages, up to 2 s).
  recv msgs / recv samples   what the subscriber received (all topics / state samples).
  SUB s        from the subscriber's receipt of `started` to its receipt of `done`.
  SUB msg/s, SUB samples/s   received / SUB s (the end-to-end throughput to the subscriber).
  node msg/s   `published` / node s (how fast the node handed messages to libzmq).
  published, lost, gaps      published: from `done` (or the node's summary line when `done` was lost); lost = published - received; gaps = messages missing by `seq` between those received.

Medians over the repetitions (the slow run: one run). Progress goes to stderr, the table to
stdout. Needs Python >= 3.8, pyzmq and msgpack (`pip install -r bench/requirements.txt`).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from common import (DEFAULT_BINARY, LISTENING, cpu_snapshot, listening_endpoints, loadavg, log,
                    machine_line, need_zmq_msgpack, others_line, spikebus_binary, start_process,
                    text_table, zmq_versions_line)

SUMMARY_RE = re.compile(r"^spikebus: (\d+) steps to t=(\S+) in ([0-9.]+) s;", re.M)
DEFAULT_PUB_HWM = 100000


def node_seconds(stdout):
    m = SUMMARY_RE.search(stdout)
    if not m:
        raise RuntimeError(f"cannot read the node's summary line:\n{stdout}")
    return int(m.group(1)), float(m.group(3))


def run_nopub(binary, tstop, outdir):
    cmd = [binary, "run", "--set", f"tstop={tstop!r}", "--out", outdir]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"spikebus failed (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
    steps, secs = node_seconds(proc.stdout)
    return {"node_s": secs, "process_s": wall, "steps": steps}


def run_pub(binary, tstop, outdir, batch, hwm=None, sleep_s=0.0, silence_s=30.0):
    """One free run with --pub and one subscriber here; -> dict of counts and times."""
    import msgpack
    import zmq

    cmd = [binary, "run", "--set", f"tstop={tstop!r}", "--out", outdir,
           "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "1", "--pub-batch", str(batch)]
    if hwm is not None:
        cmd += ["--pub-hwm", str(hwm)]
    t_proc = time.perf_counter()
    proc, line = start_process(cmd, LISTENING)
    endpoint = listening_endpoints(line)["pub"]
    # The node's exit time, independent of how long the subscriber takes to drain.
    exited = []
    waiter = threading.Thread(target=lambda: (proc.wait(), exited.append(time.perf_counter())),
                              daemon=True)
    waiter.start()

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    unpackb = msgpack.unpackb
    recv_multipart, poll = sock.recv_multipart, sock.poll
    perf = time.perf_counter
    msgs = samples = gaps = 0
    topics = {}
    last_seq = None
    done = None
    t_first = None
    t_silent = perf()
    try:
        while True:
            if not poll(1000, zmq.POLLIN):
                # A subscriber at its high-water mark loses messages of its own, `done`
                # included: once the node has exited and 3 s passed in silence, that is all.
                if exited and perf() - exited[0] > 3.0:
                    break
                if perf() - t_silent > silence_s:
                    raise RuntimeError(f"no message for {silence_s} s (after {msgs} messages, "
                                       f"topics {topics}); the node is "
                                       + ("running" if proc.poll() is None else
                                          f"gone (exit {proc.returncode})"))
                continue
            t_silent = perf()
            topic, payload = recv_multipart()
            if t_first is None:
                t_first = perf()
            d = unpackb(payload)
            msgs += 1
            topic = topic.decode()
            topics[topic] = topics.get(topic, 0) + 1
            seq = d["seq"]
            if last_seq is not None and seq > last_seq + 1:
                gaps += seq - last_seq - 1
            last_seq = seq
            if topic == "state":
                samples += len(d["step"])
            elif topic == "done":
                done = d
                break
            if sleep_s:
                time.sleep(sleep_s)
        sub_s = perf() - t_first
    finally:
        sock.close()
        ctx.term()
    waiter.join(60)
    if not exited:
        proc.kill()
        raise RuntimeError("the node did not exit after done")
    out, err = proc.communicate()
    wall = exited[0] - t_proc
    if proc.returncode != 0:
        raise RuntimeError(f"the node exited {proc.returncode}: {out!r} {err!r}")
    if err.strip():
        log(f"    node stderr: {err.strip()}")
    if topics.get("started") != 1:
        raise RuntimeError(f"expected one `started` first, got topics {topics}")
    steps, secs = node_seconds(out)
    if done is not None:
        published = done["published"] + 1  # and done
    else:
        published = published_count(out)
    # Lost: gaps between messages received, and the tail after the last one.
    lost = published - msgs
    return {"node_s": secs, "process_s": wall, "steps": steps, "msgs": msgs, "samples": samples,
            "gaps": gaps, "topics": topics, "sub_s": sub_s, "published": published,
            "lost": lost, "done": done is not None}


def published_count(stdout):
    """The stream messages the node published, from its summary line."""
    m = re.search(r"published ([0-9]+) stream messages", stdout)
    if not m:
        raise RuntimeError(f"no `published N stream messages` in the node's output: {stdout!r}")
    return int(m.group(1))


# ---------------------------------------------------------------------------------------------
# Table

COLUMNS = ["run", "batch", "hwm", "subscriber", "node s", "vs no pub", "process s", "recv msgs",
           "recv samples", "SUB s", "SUB msg/s", "SUB samples/s", "node msg/s", "published",
           "lost", "gaps"]
RIGHT = set(COLUMNS[1:]) - {"subscriber"}


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def row(name, batch, hwm, sub, runs, base):
    node_s = med(runs, "node_s")
    cells = [name, str(batch) if batch else "-", f"{hwm:,}" if hwm else "-", sub,
             f"{node_s:.4f}", f"{node_s / base:.2f}", f"{med(runs, 'process_s'):.3f}"]
    if "msgs" not in runs[0]:
        return cells + ["-"] * (len(COLUMNS) - len(cells))
    sub_s = med(runs, "sub_s")
    # Counts are the same in every fast run (checked by the caller); rates are medians of runs.
    cells += [f"{med(runs, 'msgs'):,.0f}", f"{med(runs, 'samples'):,.0f}", f"{sub_s:.4f}",
              f"{statistics.median(r['msgs'] / r['sub_s'] for r in runs):,.0f}",
              f"{statistics.median(r['samples'] / r['sub_s'] for r in runs):,.0f}",
              f"{statistics.median(r['published'] / r['node_s'] for r in runs):,.0f}",
              f"{med(runs, 'published'):,.0f}", f"{med(runs, 'lost'):,.0f}",
              f"{med(runs, 'gaps'):,.0f}"]
    return cells


def main(argv):
    ap = argparse.ArgumentParser(description="State-stream throughput of a free-running node to "
                                             "one pyzmq subscriber.")
    ap.add_argument("--spikebus", default=DEFAULT_BINARY,
                    help=f"spikebus binary (default {DEFAULT_BINARY}, relative to the repo root)")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of each run (default 5)")
    ap.add_argument("--tstop", type=float, default=2000.0,
                    help="tstop, ms (default 2000: 80,000 steps of 0.025 ms)")
    ap.add_argument("--batches", default="1,10,100", help="--pub-batch values (default 1,10,100)")
    ap.add_argument("--slow-hwm", type=int, default=1000,
                    help="--pub-hwm of the slow-subscriber run (default 1000)")
    ap.add_argument("--slow-sleep-ms", type=float, default=1.0,
                    help="the slow subscriber sleeps this long after each message (default 1)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if not batches or min(batches) < 1:
        ap.error("--batches: positive integers, comma-separated")
    need_zmq_msgpack("bench/pubstream.py")
    binary = spikebus_binary(args.spikebus)

    load_before = loadavg()
    cpu_before = cpu_snapshot()
    nopub, fast = [], {b: [] for b in batches}
    with tempfile.TemporaryDirectory(prefix="spikebus-pubstream-") as tmp:
        out = os.path.join(tmp, "out")
        log("warm-up: one run without --pub, one with ...")
        run_nopub(binary, args.tstop, out)
        run_pub(binary, args.tstop, out, batches[0])
        for rep in range(args.repeat):
            log(f"[{rep + 1}/{args.repeat}] no pub ...")
            r = run_nopub(binary, args.tstop, out)
            nopub.append(r)
            log(f"    node {r['node_s']:.4f} s, process {r['process_s']:.3f} s")
            for b in batches:
                log(f"[{rep + 1}/{args.repeat}] --pub-batch {b} ...")
                r = run_pub(binary, args.tstop, out, b)
                fast[b].append(r)
                log(f"    node {r['node_s']:.4f} s; {r['msgs']:,} msgs, {r['samples']:,} samples "
                    f"in {r['sub_s']:.4f} s at the SUB; published {r['published']:,}, lost "
                    f"{r['lost']:,}, gaps {r['gaps']:,}")
        log(f"slow subscriber: --pub-batch 1 --pub-hwm {args.slow_hwm}, sleeping "
            f"{args.slow_sleep_ms:g} ms per message ...")
        slow = run_pub(binary, args.tstop, out, 1, hwm=args.slow_hwm,
                       sleep_s=args.slow_sleep_ms / 1e3)
        log(f"    node {slow['node_s']:.4f} s; {slow['msgs']:,} msgs received in "
            f"{slow['sub_s']:.3f} s; published {slow['published']:,}, lost "
            f"{slow['lost']:,} (gaps {slow['gaps']:,}); done {'received' if slow['done'] else 'lost too'}")
    load_after = loadavg()
    cpu_after = cpu_snapshot()

    for b, runs in fast.items():
        counts = {(r["msgs"], r["samples"], r["published"], r["lost"]) for r in runs}
        if len(counts) != 1:
            log(f"note: batch {b}: counts differ between runs: {sorted(counts)}")
    steps = nopub[0]["steps"]
    base = med(nopub, "node_s")
    rows = [row("no pub", 0, 0, "-", nopub, base)]
    rows += [row(f"batch {b}", b, DEFAULT_PUB_HWM, "fast", fast[b], base) for b in batches]
    rows.append(row("slow sub", 1, args.slow_hwm, f"sleep {args.slow_sleep_ms:g} ms/msg", [slow],
                    base))
    fast1 = fast[batches[0]]
    lines = [
        text_table(COLUMNS, rows, RIGHT),
        "",
        f"model: the seed model, tstop {args.tstop:g} ms = {steps:,} steps; streamed signals: the "
        "recorded ones (soma.v, syn.g, syn.i, soma.m_hh, soma.h_hh, soma.n_hh) + step + t per "
        "sample, a sample every step",
        f"runs: {args.repeat} repetitions of each row but the last (medians), interleaved; the "
        "slow-subscriber row is one run; subscriber: pyzmq SUB in this process, default RCVHWM, "
        "msgpack-decoding every message; node s = its own `in X s` (init + stepping + publishing "
        "+ traces.csv)",
        f"slow subscriber: lost {slow['lost']:,} of {slow['published']:,} (seq gaps seen: "
        f"{slow['gaps']:,}; done {'received' if slow['done'] else 'lost too'}); node {slow['node_s']:.4f} s vs "
        f"{med(fast1, 'node_s'):.4f} s (median) with the fast subscriber at batch "
        f"{batches[0]} = {slow['node_s'] / med(fast1, 'node_s'):.2f}x",
        others_line(cpu_before, cpu_after),
        f"load average (1/5/15 min) before: {load_before}; after: {load_after}",
        f"machine: {machine_line()} -- the node and the subscriber each take a core while busy, "
        "plus a libzmq I/O thread each",
        f"versions: {zmq_versions_line(binary)}",
    ]
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
