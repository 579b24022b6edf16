#!/usr/bin/env python3
"""HELICS benchmark: the cost of one synchronized step with the node as a HELICS federate
(`spikebus run --helics`), against the plain ZeroMQ lockstep.

Usage (from the repository root, after `cargo build --release` and
`pip install -r bench/requirements.txt`):

    python bench/helics_lockstep.py [--spikebus PATH] [--repeat N] [--tstop MS] [--core zmq|tcp|...]

Three kinds of runs, interleaved (their order reverses from one repetition to the next):

  lockstep      bench/lockstep.py's run: the node (`--control tcp://127.0.0.1:0`) and a raw
                pyzmq + msgpack controller, a sync at every step boundary (`every` 1), one
                REQ/REP round trip per step.
  helics        a `helics_broker` (the `helics` package's binary), the node with `--helics`
                (sync `every` 1 step, publishing `t`, `end` and `ns.interval`, with an input
                `bench/ns.interval` that sets `ns.interval`), and a Python federate half a step
                behind that, at each grant, reads the node's values, answers `ns.interval`
                back unchanged and requests its next time: the node waits for that answer
                before each step (a round trip per step, as the lockstep's).
  helics-python the same broker and Python federate, with a Python federate in place of the
                node (publish, request the next step's time): HELICS's own cost per step,
                with no spikebus in it.

Timed: each run's loop over its steps, in the controller or the Python federate (tstop 100
ms: 4,000 steps), from the first step's exchange to the end. Reported: steps/s and us per
step (medians over repetitions), the ratio of the medians, other processes' CPU during the
benchmark and the load average. The last line is exactly

    helics_vs_lockstep_us_per_step=<median helics us per step / median lockstep us per step>
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (DEFAULT_BINARY, cpu_snapshot, free_port_block, loadavg, log,  # noqa: E402
                    machine_line, need_zmq_msgpack, others_line, spikebus_binary, text_table)
from lockstep import run_lockstep  # noqa: E402

STEP_NS = 25_000  # dt 0.025 ms at HELICS's default time scale (1 ms = 1e-3 s)


# ---------------------------------------------------------------------------------------------
# Workers (this script run again in another process)

def federate_worker(core, broker, node_prefix, name):
    """Half a step behind the node: at each grant, read its `t` and `ns.interval` and answer
    `ns.interval` back (the node sets it: the same value); at its `end`, stop. Prints
    one JSON line: steps and the seconds of the timed loop."""
    import helics as h

    fi = h.helicsCreateFederateInfo()
    h.helicsFederateInfoSetCoreTypeFromString(fi, core)
    h.helicsFederateInfoSetBroker(fi, broker)
    fed = h.helicsCreateValueFederate(name, fi)
    t_in = h.helicsFederateRegisterSubscription(fed, f"{node_prefix}/t", "")
    end_in = h.helicsFederateRegisterSubscription(fed, f"{node_prefix}/end", "")
    interval_in = h.helicsFederateRegisterSubscription(fed, f"{node_prefix}/ns.interval", "")
    answer = h.helicsFederateRegisterGlobalPublication(fed, f"{name}/ns.interval", h.HELICS_DATA_TYPE_DOUBLE, "")
    h.helicsFederateEnterExecutingMode(fed)
    publish = h.helicsPublicationPublishDouble
    request, updated, get = h.helicsFederateRequestTime, h.helicsInputIsUpdated, h.helicsInputGetDouble
    k = 0
    start = None
    while True:
        request(fed, (k * STEP_NS + STEP_NS // 2) / 1e9)
        if start is None:
            start = time.perf_counter()
        k += 1
        if not updated(t_in):
            raise SystemExit(f"no value from the node at step {k - 1}")
        get(t_in)
        if get(end_in) != 0.0:
            break
        # The answer the node waits for before it simulates on (without an input from this
        # federate, HELICS would let the node run ahead: nothing it needs comes from here).
        publish(answer, get(interval_in))
    seconds = time.perf_counter() - start
    h.helicsFederateDisconnect(fed)
    h.helicsFederateFree(fed)
    h.helicsCloseLibrary()
    print(json.dumps({"steps": k - 1, "seconds": seconds}), flush=True)


def pynode_worker(core, broker, steps):
    """A Python stand-in for the node: publish `t` and `end` at each step's time, request the
    next step's time."""
    import helics as h

    fi = h.helicsCreateFederateInfo()
    h.helicsFederateInfoSetCoreTypeFromString(fi, core)
    h.helicsFederateInfoSetBroker(fi, broker)
    h.helicsFederateInfoSetFlagOption(fi, h.HELICS_FLAG_UNINTERRUPTIBLE, True)
    fed = h.helicsCreateValueFederate("pynode", fi)
    pt = h.helicsFederateRegisterGlobalPublication(fed, "pynode/t", h.HELICS_DATA_TYPE_DOUBLE, "")
    pe = h.helicsFederateRegisterGlobalPublication(fed, "pynode/end", h.HELICS_DATA_TYPE_DOUBLE, "")
    pi = h.helicsFederateRegisterGlobalPublication(fed, "pynode/ns.interval", h.HELICS_DATA_TYPE_DOUBLE, "")
    answer = h.helicsFederateRegisterSubscription(fed, "bench/ns.interval", "")
    h.helicsFederateEnterExecutingMode(fed)
    publish, request = h.helicsPublicationPublishDouble, h.helicsFederateRequestTime
    updated, get = h.helicsInputIsUpdated, h.helicsInputGetDouble
    interval = 20.0
    for n in range(steps):
        publish(pt, n * 0.025)
        publish(pe, 0.0)
        publish(pi, interval)
        request(fed, (n + 1) * STEP_NS / 1e9)
        if not updated(answer):
            raise SystemExit(f"no answer at step {n}")
        interval = get(answer)
    publish(pt, steps * 0.025)
    publish(pe, 1.0)
    h.helicsFederateDisconnect(fed)
    h.helicsFederateFree(fed)
    h.helicsCloseLibrary()


# ---------------------------------------------------------------------------------------------

def helics_paths():
    import helics

    base = os.path.join(os.path.dirname(helics.__file__), "install")
    return os.path.join(base, "bin", "helics_broker"), os.path.join(base, "lib64", "libhelics.so.3"), helics


def run_helics(binary, tstop, core, tmp, tag, python_node=False):
    broker_bin, lib, _ = helics_paths()
    port = free_port_block()
    address = f"tcp://127.0.0.1:{port}" if core in ("zmq", "tcp", "zmq_ss", "tcp_ss") else ""
    env = {**os.environ, "HELICS_LIBRARY": lib}
    broker_cmd = [broker_bin, "--federates=2", f"--core_type={core}", "--loglevel=warning"]
    broker_cmd += [f"--port={port}"] if address else [f"--name=bench{tag}"]
    if not address:
        address = f"bench{tag}"
    # Output to files, never to pipes read only at the end: a chatty process would block on a
    # full pipe and stall the federation.
    def logfile(who):
        return open(os.path.join(tmp, f"{who}-{tag}.log"), "w")

    procs = [subprocess.Popen(broker_cmd, stdout=subprocess.DEVNULL, stderr=logfile("broker"))]
    steps = round(tstop / 0.025)
    try:
        if python_node:
            node = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--pynode-worker", core, address,
                                     str(steps)], stdout=logfile("node"), stderr=subprocess.STDOUT)
            prefix = "pynode"
        else:
            cfg = {"federate": "spikebus", "core_type": core, "broker": address, "sync": "every", "steps": 1,
                   "publications": [{"key": "spikebus/t", "value": "t"}, {"key": "spikebus/end", "value": "end"},
                                    {"key": "spikebus/ns.interval", "value": "ns.interval"}],
                   "inputs": [{"key": "bench/ns.interval", "set": "ns.interval"}]}
            path = os.path.join(tmp, f"helics-{tag}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            node = subprocess.Popen([binary, "run", "--helics", path, "--set", f"tstop={tstop!r}", "--out",
                                     os.path.join(tmp, f"out-{tag}")], stdout=logfile("node"),
                                    stderr=subprocess.STDOUT, env=env)
            prefix = "spikebus"
        procs.append(node)
        fed = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--federate-worker", core, address, prefix,
                                "bench"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(fed)
        try:
            out, err = fed.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"run {tag}: the federate did not finish in 300 s; logs in {tmp} (broker-, node-{tag}.log)")
        if fed.returncode != 0:
            raise RuntimeError(f"the federate exited {fed.returncode}: {err}")
        if node.wait(timeout=60) != 0:
            with open(os.path.join(tmp, f"node-{tag}.log")) as f:
                raise RuntimeError(f"the node exited {node.returncode}: {f.read()}")
        procs[0].wait(timeout=60)
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    # The lockstep's timed loop runs from step 0's sync point to the end point: steps round
    # trips. Here: the grants from the one after step 0's sync point to the one after the
    # end point's values.
    return {"seconds": r["seconds"], "round_trips": r["steps"]}


def main(argv):
    if argv and argv[0] == "--federate-worker":
        federate_worker(*argv[1:])
        return 0
    if argv and argv[0] == "--pynode-worker":
        pynode_worker(argv[1], argv[2], int(argv[3]))
        return 0
    ap = argparse.ArgumentParser(description="The node as a HELICS federate vs the plain ZeroMQ lockstep, per step.")
    ap.add_argument("--spikebus", default=DEFAULT_BINARY)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tstop", type=float, default=100.0, help="ms per run (default 100: 4,000 steps)")
    ap.add_argument("--core", default="zmq", help="HELICS core type (default zmq)")
    args = ap.parse_args(argv)
    need_zmq_msgpack("bench/helics_lockstep.py")
    binary = spikebus_binary(args.spikebus)
    _, _, helics = helics_paths()
    kinds = ["lockstep", "helics", "helics-python"]
    runs = {k: [] for k in kinds}
    load_before = loadavg()
    cpu_before = cpu_snapshot()
    with tempfile.TemporaryDirectory(prefix="spikebus-helics-") as tmp:
        for rep in range(args.repeat):
            for kind in (kinds if rep % 2 == 0 else kinds[::-1]):
                log(f"[{rep + 1}/{args.repeat}] {kind} ...")
                if kind == "lockstep":
                    r = run_lockstep(binary, args.tstop, "tcp", tmp, f"ls{rep}")
                else:
                    r = run_helics(binary, args.tstop, args.core, tmp, f"{kind}{rep}", python_node=kind == "helics-python")
                runs[kind].append(r)
                log(f"    {r['round_trips']} steps in {r['seconds']:.4f} s: {1e6 * r['seconds'] / r['round_trips']:.1f} us/step")
    cpu_after = cpu_snapshot()
    us = {k: [1e6 * r["seconds"] / r["round_trips"] for r in v] for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in us.items()}
    labels = {"lockstep": "lockstep (ZeroMQ REQ/REP, raw pyzmq controller)",
              "helics": f"helics (node --helics, Python federate, {args.core} core)",
              "helics-python": f"helics, Python in place of the node ({args.core} core)"}
    rows = [[labels[k], f"{runs[k][0]['round_trips']:,}", f"{1e6 / med[k]:,.0f}", f"{med[k]:.1f}", f"{min(us[k]):.1f}",
             f"{max(us[k]):.1f}", f"{med[k] / med['lockstep']:.2f}"] for k in kinds]
    print(text_table(["kind", "steps", "median steps/s", "us/step", "min us", "max us", "x lockstep"], rows,
                     {"steps", "median steps/s", "us/step", "min us", "max us", "x lockstep"}))
    print()
    print(f"seed model, tstop {args.tstop:g} ms, dt 0.025 ms, one synchronized step per step; {args.repeat} runs of "
          "each kind, interleaved; us/step = the timed loop's seconds / steps, median (min, max) over runs")
    print(f"helics: a helics_broker --federates=2 --core_type={args.core} on 127.0.0.1, the node or its Python "
          "stand-in, and a Python federate half a step behind; timed in the Python federate")
    print(others_line(cpu_before, cpu_after))
    print(f"load average (1/5/15 min) before: {load_before}; after: {loadavg()}")
    print(f"machine: {machine_line()}")
    print(f"versions: HELICS {helics.helicsGetVersion()} (Python package helics), Python {sys.version.split()[0]}")
    print(f"helics_vs_lockstep_us_per_step={med['helics'] / med['lockstep']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
