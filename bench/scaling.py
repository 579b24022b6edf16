#!/usr/bin/env python3
"""Scaling benchmark: spikebus against NEURON 9.0.2 and Arbor 0.12.2, side by side in one run,
from 1 to 100,000 cells, on 1 and 2 threads, with memory per cell.

Usage (from the repository root, with the bench venv's Python):

    python bench/scaling.py [--spikebus PATH] [--sizes 1,10,100,1000,10000,100000]
                            [--repeat N] [--threads 1,2] [--tstop CELLS=MS ...]
                            [--engines spikebus,neuron-run,neuron-psolve,arbor]
                            [--neuron-max-cells N] [--spikebus-arg ARG ...] [--markdown PATH]

The model (the same in every engine): N independent seed cells (models/seed.toml's cell: one
hh soma, L = 100 um, diam = 500 um, NEURON's hh parameters; an ExpSyn tau = 20 ms, e = 0 mV at
its middle, driven by a NetStim interval = 20 ms through a NetCon delay 0, weight 0.1 uS). Cell
i's NetStim starts at (i % 20) ms (0 for a single cell), so that the cells do not fire in
unison. dt = 0.025 ms; tstop is chosen per size so that NEURON's h.run takes a few seconds
(see TSTOP_MS; override with --tstop). Recorded: t and soma(0.5).v of cell 0 at every step
(one trace, so that recording is not what is measured), and every spike.

Engines and rows (each run in a fresh process; repetitions interleaved, medians reported):

  spikebus        `spikebus run MODEL.toml --record c[0].soma.v --out DIR`, the model file
                  generated here: the cells as a population of the seed cell (c[0].soma, ...;
                  `seed_population_toml`), or for a binary without populations bench/freerun.py's
                  `seed_cells_toml` (soma0.., syn0.., ns0.., nc0..); a single cell keeps the
                  seed's names. Timed: the node's own `in X s` figure
                  (initialization + stepping + writing traces.csv); the whole process (start-up,
                  parsing the TOML, output files) is the *process s* column. If `spikebus run
                  --help` lists `--threads`, it runs with `--threads T` for every T of
                  --threads; otherwise its rows for T > 1 show `-`. --spikebus-arg passes any
                  other option (e.g. a future binary trace format) to every spikebus run.
  NEURON h.run    NEURON 9.0.2 in Python, the same cells built with h.Section / h.ExpSyn /
                  h.NetStim / h.NetCon (in the order bench/freerun.py's worker builds a model
                  file: sections, their spike detectors, synapses, NetStims, NetCons), spikes
                  recorded with ParallelContext.spike_record (gid i: soma of cell i, gid N + i:
                  its NetStim). Timed: h.run() (stdinit + stdrun's hoc stepping loop).
  NEURON psolve   the same, timed: h.stdinit() + ParallelContext.psolve(tstop) (NEURON's
                  fixed-step loop in C, without stdrun's per-step hoc code).
  Arbor           Arbor 0.12.2's Python API: a cable cell per cell (one cylinder segment,
                  one CV: cv_policy_single), the default catalogue's `hh` and `expsyn` with
                  the same parameters, Vm = -65 mV, cm = 0.01 F/m2, rL = 35.4 ohm cm,
                  6.3 degC, ena = 50, ek = -77 mV, a threshold_detector of 10 mV at the
                  middle; the NetStim is an event_generator, weight 0.1, on an
                  explicit_schedule of its times start + k * 20 ms (not regular_schedule,
                  whose times are the multiples of dt from tstart on); dt = 0.025 ms; soma v
                  of cell 0 sampled every dt;
                  spike_recording.local (0.12.2's `all` records only spikes of sources that
                  have a connection, i.e. none here). Threads: arbor.context(threads=T). Rows:
                  `Arbor 1 group` (all cells in one cell group, partition_hint(cpu_group_size
                  = N)) for every T, and, for T > 1 and N > 1, `Arbor T groups` (cpu_group_size
                  = ceil(N / T)): Arbor runs a cell group on one thread, so with a single group
                  its second thread has nothing to do. Timed: simulation.run(tstop, dt); the
                  recipe, the domain decomposition and the simulation object (which initializes
                  the cells) are the *setup s* column.

Columns: median s and min s of the timed part over the repetitions; us/step = median seconds
/ steps; us/cell-step = us/step / N; setup s: spikebus process wall time minus its `in X s`,
the Python model build for NEURON (before h.run / stdinit), recipe + decomposition +
simulation for Arbor. Memory: *peak MiB* is the process's
peak resident set, VmHWM (Python and the engine's library included for NEURON and Arbor: the
worker reads its own right after the run; spikebus's comes from GNU time's %M, see
run_measured for why not wait4's ru_maxrss); *KiB/cell* is (peak(N) - peak(k)) / (N - k), k
cells being a baseline run with the same tstop, recording and settings (k = 1; for Arbor with G
groups, k = G; run once per size, untimed; NEURON's two rows share h.run's baseline); *end
KiB/cell* is the same with the resident set at the end of the run: for NEURON and Arbor the
worker's VmRSS right after the run, for spikebus the last VmRSS read (every 10 ms) before the
process exited (for spikebus: without the TOML parser's peak). Per-cell figures of the Python
engines are noise below ~1,000 cells.
*others* = CPU used by other processes on the machine during that engine's runs, in cores
(from /proc/stat minus this script and its children), median over the repetitions.

Checks: every spikebus and NEURON psolve run is compared with NEURON h.run's first run, bit
for bit: t and v of the trace at every step and every spike time of every source (somas and
NetStims); `bitwise` or `DIFFERS` (the script then exits 1). Arbor is not NEURON's arithmetic
(exact hh rates instead of NEURON's tables, its own solver; its spike times are interpolated
between steps, NEURON's are step times), so for Arbor the soma spike counts per cell are
compared, and the time differences of paired spikes and the trace's largest |dv| are reported.
With --neuron-max-cells, NEURON is skipped above that size (and nothing is checked there).

Printed: the table, the ratios of the issue's targets computed from this run (spikebus against
Arbor on 1 and 2 threads, linearity to the largest size, memory per cell), the checks, the
machine, the versions and the load. --markdown PATH writes all of it as Markdown with the exact
command line. Progress goes to stderr. Needs NEURON 9.0.2, arbor 0.12.2 and numpy
(`pip install -r bench/requirements.txt`), Python >= 3.11 (or tomli), and bench/common.py and
bench/freerun.py beside this file.
"""

import argparse
import functools
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from common import (DEFAULT_BINARY, cpu_snapshot, loadavg, log, machine_line, markdown_table,
                    others_line, spikebus_binary, spikebus_version, text_table)
from freerun import (SEED_NETCON, SEED_NETSTIM, SEED_RUN, SEED_SECTION, SEED_SYN,
                     seed_cells_toml, toml_value)

NEURON_VERSION = "9.0.2"
ARBOR_VERSION = "0.12.2"
DT = SEED_RUN["dt"]
SIZES = [1, 10, 100, 1000, 10000, 100000]
# tstop (ms) per size: a few seconds for the slowest engine (NEURON's h.run: 2.5-11 s on the
# machine of BENCHMARKS.md) and a few tenths of a second or more for the fastest.
TSTOP_MS = {1: 40000.0, 10: 20000.0, 100: 5000.0, 1000: 1000.0, 10000: 100.0, 100000: 20.0}
ENGINES = ["spikebus", "neuron-run", "neuron-psolve", "arbor"]
RSS_POLL_S = 0.01


def default_tstop(n):
    """tstop for a size not in TSTOP_MS: about 4e7 cell-steps, 800 to 1.6 million steps."""
    if n in TSTOP_MS:
        return TSTOP_MS[n]
    steps = min(1.6e6, max(800.0, 4e7 / n))
    return float(max(1, round(steps * DT)))


def cell_suffixes(n):
    """Names of the cells' objects: soma, syn, ns, nc for one cell (the seed's), else soma0..."""
    return [""] if n == 1 else [str(i) for i in range(n)]


def netstim_start(i, n):
    return float(i % 20) if n > 1 else SEED_NETSTIM["start"]


def cells(n):
    return f"{n:,} cell" + ("s" if n != 1 else "")


def recorded_signal(n, population=False):
    if n == 1:
        return "soma.v"
    return "c[0].soma.v" if population else "soma0.v"


# ---------------------------------------------------------------------------------------------
# Running a process and measuring it: wall time, peak and last RSS, other processes' CPU
#
# The kernel's ru_maxrss of a child (wait4, getrusage) is useless here: a child started from
# this Python process keeps, across exec, the high-water mark of the address space it was
# forked or vforked from (Linux copies it into the child's signal->maxrss at exec), i.e. of this
# script. /proc/PID/status VmHWM belongs to the new address space only. So: the Python workers
# read their own VmHWM and VmRSS right after the run; spikebus runs under GNU time (a small
# process that forks it, so its `%M` is spikebus's own peak), and its VmRSS and VmHWM are read
# every RSS_POLL_S while it runs (without /usr/bin/time, the last VmHWM read is the peak: a
# lower bound that can miss the last RSS_POLL_S).

GNU_TIME = "/usr/bin/time"
MAXRSS_TAG = "scaling.py-maxrss-kib="


def proc_status_kib(pid, field):
    """VmRSS, VmHWM, ... of /proc/PID/status in KiB (None if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


@functools.lru_cache(maxsize=None)
def gnu_time_available():
    try:
        out = subprocess.run([GNU_TIME, "-f", MAXRSS_TAG + "%M", "true"], capture_output=True,
                             text=True)
        return out.returncode == 0 and MAXRSS_TAG in out.stderr
    except OSError:
        return False


def run_measured(cmd, workdir, tag, cwd=None, watch_rss=False):
    """Runs cmd to its end; -> dict(returncode, stdout, stderr, wall, peak_kib, last_rss_kib,
    others_cores). stdout and stderr go to files (no pipe to fill). With watch_rss, cmd runs
    under GNU time (if present) for its peak RSS, and its VmRSS/VmHWM are read every
    RSS_POLL_S; the last readings are returned. others_cores: CPU used by other processes on
    the machine while it ran (/proc/stat minus this script and its children), in cores."""
    out_path = os.path.join(workdir, f"{tag}.stdout")
    err_path = os.path.join(workdir, f"{tag}.stderr")
    timed = watch_rss and gnu_time_available()
    full = [GNU_TIME, "-f", MAXRSS_TAG + "%M"] + cmd if timed else cmd
    before = cpu_snapshot()
    last_rss = last_hwm = None
    with open(out_path, "w") as out, open(err_path, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd)
        watched = None  # the pid whose memory is read: cmd itself, GNU time's child if timed
        while watch_rss and proc.poll() is None:
            if watched is None:
                watched = proc.pid if not timed else child_pid(proc.pid)
            if watched is not None:
                rss, hwm = proc_status_kib(watched, "VmRSS"), proc_status_kib(watched, "VmHWM")
                if rss and hwm:
                    last_rss, last_hwm = rss, hwm
            time.sleep(RSS_POLL_S)
        proc.wait()
        wall = time.perf_counter() - t0
    after = cpu_snapshot()
    with open(out_path) as f:
        stdout = f.read()
    with open(err_path) as f:
        stderr = f.read()
    os.remove(out_path)
    os.remove(err_path)
    peak = last_hwm
    if timed:
        lines = stderr.rstrip("\n").split("\n")
        if lines and lines[-1].startswith(MAXRSS_TAG):
            peak = int(lines[-1][len(MAXRSS_TAG):])
            stderr = "\n".join(lines[:-1])
    other = max(0.0, (after[0] - before[0]) - (after[1] - before[1]))
    return {"returncode": proc.returncode, "stdout": stdout, "stderr": stderr, "wall": wall,
            "peak_kib": peak, "last_rss_kib": last_rss, "peak_source": "GNU time" if timed
            else "VmHWM polled", "others_cores": other / max(after[2] - before[2], 1e-9)}


def child_pid(pid):
    """The first child of pid (GNU time's one child), or None while it has none."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# spikebus

SUMMARY_RE = re.compile(r"^spikebus: (\d+) steps to t=(\S+) in ([0-9.]+) s; ", re.M)


def spikebus_features(binary):
    """The options of this binary's `run` that the benchmark adapts to (from `run --help`), and
    whether its model files have populations (it has `spikebus expand`)."""
    text = subprocess.run([binary, "run", "--help"], capture_output=True, text=True).stdout
    top = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    return {"threads": re.search(r"^\s*--threads\b", text, re.M) is not None,
            "populations": re.search(r"^\s*expand\b", top, re.M) is not None}


def seed_population_toml(n, tstop):
    """The model of seed_cells_toml(n, ..., vary_start=True) as a population: a template of
    the seed cell (soma, syn, ns, nc) and n copies c[0] ... c[n-1], NetStim i starting at
    i % 20 ms. The same objects in the same order (docs/model-format.md, Populations), so the
    same run: every run is checked against NEURON bit for bit all the same. A file of a few
    lines whatever n, as a user writes a large network."""
    out = ["# Generated by bench/scaling.py: %d seed cells as a population." % n, "", "[run]"]
    out += [f"{k} = {toml_value(v)}" for k, v in dict(SEED_RUN, tstop=float(tstop)).items()]

    def table(head, params):
        out.extend(["", head] + [f"{k} = {toml_value(v)}" for k, v in params.items()])

    table("[template.seed.section.soma]", SEED_SECTION)
    table("[template.seed.point.syn]", dict(SEED_SYN, at="soma(0.5)"))
    table("[template.seed.cell.ns]", SEED_NETSTIM)
    table("[template.seed.netcon.nc]", dict(SEED_NETCON, source="ns", target="syn"))
    table("[population.c]", {"template": "seed", "count": n})
    table("[population.c.set]", {'"ns.start"': "i % 20"})
    out += ["", "[record]", f"signals = {toml_value([recorded_signal(n, True)])}", ""]
    return "\n".join(out)


def run_spikebus(binary, features, model, n, threads, extra_args, workdir, tag):
    outdir = os.path.join(workdir, "sb-out")
    record = recorded_signal(n, features["populations"])
    cmd = [binary, "run", model, "--record", record, "--out", outdir]
    if features["threads"]:
        cmd += ["--threads", str(threads)]
    cmd += extra_args
    p = run_measured(cmd, workdir, tag, watch_rss=True)
    if p["returncode"] != 0:
        raise RuntimeError(f"spikebus failed (exit {p['returncode']}): {shlex.join(cmd)}\n"
                           f"{p['stdout']}\n{p['stderr']}")
    m = SUMMARY_RE.search(p["stdout"])
    if not m:
        raise RuntimeError(f"cannot read spikebus's summary line:\n{p['stdout']}")
    seconds = float(m.group(3))
    t, v = read_spikebus_trace(outdir, record)
    src, st = read_spikebus_spikes(os.path.join(outdir, "spikes.csv"), n)
    return {"seconds": seconds, "steps": int(m.group(1)), "setup_seconds": p["wall"] - seconds,
            "process_seconds": p["wall"], "peak_kib": p["peak_kib"],
            "end_kib": p["last_rss_kib"], "peak_source": p["peak_source"],
            "others_cores": p["others_cores"],
            "t": t, "v": v, "spike_src": src, "spike_t": st,
            "cmd": cmd, "line": p["stdout"].strip().splitlines()[-1]}


def read_spikebus_trace(outdir, record):
    """t and the recorded voltage from traces.csv (shortest round-trip decimal text, so float()
    gives back the node's doubles). A future binary trace file needs a reader here."""
    import numpy as np

    path = os.path.join(outdir, "traces.csv")
    if not os.path.exists(path):
        raise RuntimeError(f"no traces.csv in {outdir} (files: {sorted(os.listdir(outdir))}); "
                           "add a reader for this output format to read_spikebus_trace()")
    with open(path) as f:
        header = f.readline().rstrip("\n").split(",")
        if header != ["t", record]:
            raise RuntimeError(f"{path}: header {header}, expected ['t', {record!r}]")
        pairs = [line.split(",") for line in f]
    t = np.array([float(a) for a, _ in pairs])
    v = np.array([float(b) for _, b in pairs])
    return t, v


def source_index(name, n):
    """A spike source's name -> its index: cell i's soma is i, its NetStim N + i (names soma0,
    ns0 or, from a population, c[0].soma, c[0].ns)."""
    m = re.fullmatch(r"c\[(\d+)\]\.(soma|ns)", name)
    if m:
        return int(m.group(1)) + (n if m.group(2) == "ns" else 0)
    if name.startswith("soma"):
        i, base = name[4:], 0
    elif name.startswith("ns"):
        i, base = name[2:], n
    else:
        raise RuntimeError(f"unexpected spike source {name!r}")
    return base + (int(i) if i else 0)


def read_spikebus_spikes(path, n):
    import numpy as np

    src, ts = [], []
    with open(path) as f:
        header = f.readline().rstrip("\n")
        if header != "source,t":
            raise RuntimeError(f"{path}: header {header!r}, expected 'source,t'")
        index = {}
        for line in f:
            name, t = line.rstrip("\n").split(",")
            i = index.get(name)
            if i is None:
                i = index[name] = source_index(name, n)
            src.append(i)
            ts.append(float(t))
    return np.array(src, dtype=np.int64), np.array(ts, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Python workers (NEURON, Arbor): one run each, in a fresh process started in an empty directory
# (so `import neuron` cannot load a stray x86_64/ mechanism library). Each writes OUT.json (its
# figures) and OUT.bin (float64: trace t, trace v, spike sources, spike times).

def memory_now():
    """The worker's own peak and current resident set, KiB (read right after its run)."""
    return {"peak_kib": proc_status_kib("self", "VmHWM"),
            "end_kib": proc_status_kib("self", "VmRSS")}


def write_worker_output(out, result, t, v, spike_src, spike_t):
    from array import array

    result.update(samples=len(t), spikes=len(spike_t))
    with open(out + ".bin", "wb") as f:
        for xs in (t, v, spike_src, spike_t):
            f.write(array("d", xs).tobytes())
    with open(out + ".json", "w") as f:
        json.dump(result, f)


def neuron_worker(n, tstop, mode, out):
    t_build = time.perf_counter()
    import neuron
    from neuron import h

    h.load_file("stdrun.hoc")
    pc = h.ParallelContext()
    h.celsius = SEED_RUN["celsius"]
    h.usetable_hh = SEED_RUN["usetable_hh"]
    h.v_init = SEED_RUN["v_init"]
    h.tstop = tstop
    h.steps_per_ms = 1.0 / DT
    h.dt = DT
    names = cell_suffixes(n)
    secs = []
    for s in names:
        sec = h.Section(name="soma" + s)
        sec.L, sec.diam, sec.nseg = SEED_SECTION["L"], SEED_SECTION["diam"], SEED_SECTION["nseg"]
        sec.cm, sec.Ra = SEED_SECTION["cm"], SEED_SECTION["Ra"]
        sec.insert("hh")
        for k in ("gnabar_hh", "gkbar_hh", "gl_hh", "el_hh", "ena", "ek"):
            setattr(sec, k, SEED_SECTION[k])
        secs.append(sec)
    keep = []
    for i, sec in enumerate(secs):  # the soma's spike detector, gid i
        nc = h.NetCon(sec(0.5)._ref_v, None, sec=sec)
        nc.threshold = SEED_SECTION["threshold"]
        pc.set_gid2node(i, pc.id())
        pc.cell(i, nc)
        keep.append(nc)
    syns = []
    for sec in secs:
        syn = h.ExpSyn(sec(0.5))
        syn.tau, syn.e = SEED_SYN["tau"], SEED_SYN["e"]
        syns.append(syn)
    stims = []
    for i in range(n):
        ns = h.NetStim()
        ns.interval, ns.number = SEED_NETSTIM["interval"], SEED_NETSTIM["number"]
        ns.start, ns.noise = netstim_start(i, n), SEED_NETSTIM["noise"]
        stims.append(ns)
    for i, ns in enumerate(stims):  # the NetStim's spikes, gid N + i
        nc = h.NetCon(ns, None)
        pc.set_gid2node(n + i, pc.id())
        pc.cell(n + i, nc)
        keep.append(nc)
    for ns, syn in zip(stims, syns):
        nc = h.NetCon(ns, syn)
        nc.delay, nc.weight[0] = SEED_NETCON["delay"], SEED_NETCON["weight"]
        keep.append(nc)
    tvec, vvec, spk_t, spk_id = h.Vector(), h.Vector(), h.Vector(), h.Vector()
    tvec.record(h._ref_t)
    vvec.record(secs[0](0.5)._ref_v)
    pc.spike_record(-1, spk_t, spk_id)
    build = time.perf_counter() - t_build

    t0 = time.perf_counter()
    if mode == "run":
        h.run()
    elif mode == "psolve":
        pc.set_maxstep(10)
        h.stdinit()
        pc.psolve(h.tstop)
    else:
        raise ValueError(f"unknown NEURON mode {mode!r}")
    seconds = time.perf_counter() - t0
    memory = memory_now()
    if h.dt != DT:
        raise RuntimeError(f"h.dt changed during the run: {h.dt!r} != {DT!r}")
    write_worker_output(out, {"seconds": seconds, "setup_seconds": build,
                              "steps": len(tvec) - 1, "version": neuron.__version__, **memory},
                        tvec.to_python(), vvec.to_python(), spk_id.to_python(),
                        spk_t.to_python())


def arbor_worker(n, tstop, threads, groups, out):
    t_build = time.perf_counter()
    import arbor as A
    import numpy as np

    U = A.units
    r = SEED_SECTION["diam"] / 2

    class SeedCells(A.recipe):
        def __init__(self):
            A.recipe.__init__(self)
            tree = A.segment_tree()
            tree.append(A.mnpos, A.mpoint(0, 0, 0, r), A.mpoint(SEED_SECTION["L"], 0, 0, r),
                        tag=1)
            d = A.decor()
            d.set_property(Vm=SEED_RUN["v_init"] * U.mV,
                           cm=SEED_SECTION["cm"] * 0.01 * U.F / U.m2,  # uF/cm2 -> F/m2
                           rL=SEED_SECTION["Ra"] * U.Ohm * U.cm,
                           tempK=(SEED_RUN["celsius"] + 273.15) * U.Kelvin)
            d.set_ion("na", rev_pot=SEED_SECTION["ena"] * U.mV)
            d.set_ion("k", rev_pot=SEED_SECTION["ek"] * U.mV)
            d.paint("(all)", A.density("hh", gnabar=SEED_SECTION["gnabar_hh"],
                                       gkbar=SEED_SECTION["gkbar_hh"],
                                       gl=SEED_SECTION["gl_hh"], el=SEED_SECTION["el_hh"]))
            d.place("(location 0 0.5)", A.synapse("expsyn", tau=SEED_SYN["tau"],
                                                  e=SEED_SYN["e"]), "syn")
            d.place("(location 0 0.5)",
                    A.threshold_detector(SEED_SECTION["threshold"] * U.mV), "det")
            self.cell = A.cable_cell(tree, d, A.label_dict(), A.cv_policy_single())
            self.props = A.neuron_cable_properties()

        def num_cells(self):
            return n

        def cell_kind(self, gid):
            return A.cell_kind.cable

        def cell_description(self, gid):
            return self.cell

        def global_properties(self, kind):
            return self.props

        def event_generators(self, gid):
            # The NetStim's times start + k * interval (as NEURON's NetStim adds them up). Not
            # regular_schedule(start, interval): Arbor's regular schedule gives the multiples
            # of interval from start on (k * interval >= start), not start + k * interval.
            times, t, k = [], netstim_start(gid, n), 0
            while t < tstop and k < SEED_NETSTIM["number"]:
                times.append(t)
                t += SEED_NETSTIM["interval"]
                k += 1
            sched = A.explicit_schedule([x * U.ms for x in times])
            return [A.event_generator("syn", SEED_NETCON["weight"], sched)]

        def probes(self, gid):
            return [A.cable_probe_membrane_voltage("(location 0 0.5)", "v")] if gid == 0 else []

    recipe = SeedCells()
    ctx = A.context(threads=threads)
    hint = A.partition_hint(cpu_group_size=math.ceil(n / groups))
    decomp = A.partition_load_balance(recipe, ctx, {A.cell_kind.cable: hint})
    if decomp.num_groups != groups:
        raise RuntimeError(f"Arbor made {decomp.num_groups} cell groups, expected {groups}")
    sim = A.simulation(recipe, ctx, decomp)
    sim.record(A.spike_recording.local)
    handle = sim.sample((0, "v"), A.regular_schedule(DT * U.ms))
    build = time.perf_counter() - t_build

    t0 = time.perf_counter()
    sim.run(tstop * U.ms, DT * U.ms)
    seconds = time.perf_counter() - t0
    memory = memory_now()

    data, _meta = sim.samples(handle)[0]
    spikes = sim.spikes()
    write_worker_output(out, {"seconds": seconds, "setup_seconds": build,
                              "steps": int(round(tstop / DT)), "version": A.__version__,
                              "groups": decomp.num_groups, **memory},
                        data[:, 0], data[:, 1],
                        np.asarray(spikes["source"]["gid"], dtype=np.float64),
                        np.asarray(spikes["time"], dtype=np.float64))


def run_worker(kind, args, workdir, tag):
    """Starts `scaling.py --worker KIND JSON` and measures it; -> its result with the trace
    and spikes as numpy arrays."""
    import numpy as np

    out = os.path.join(workdir, f"worker-{tag}")
    empty = os.path.join(workdir, "worker-cwd")
    os.makedirs(empty, exist_ok=True)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind,
           json.dumps(dict(args, out=out))]
    p = run_measured(cmd, workdir, tag, cwd=empty)
    if p["returncode"] != 0:
        raise RuntimeError(f"{kind} worker failed (exit {p['returncode']}): {args}\n"
                           f"{p['stdout']}\n{p['stderr']}")
    with open(out + ".json") as f:
        res = json.load(f)
    data = np.fromfile(out + ".bin", dtype=np.float64)
    os.remove(out + ".json")
    os.remove(out + ".bin")
    k, s = res["samples"], res["spikes"]
    res["t"], res["v"] = data[:k], data[k:2 * k]
    res["spike_src"] = data[2 * k:2 * k + s].astype(np.int64)
    res["spike_t"] = data[2 * k + s:]
    res.update(process_seconds=p["wall"], others_cores=p["others_cores"],
               peak_source="VmHWM of the worker")
    return res


def worker_main(kind, args_json):
    a = json.loads(args_json)
    if kind == "neuron":
        neuron_worker(a["n"], a["tstop"], a["mode"], a["out"])
    elif kind == "arbor":
        arbor_worker(a["n"], a["tstop"], a["threads"], a["groups"], a["out"])
    else:
        raise ValueError(f"unknown worker {kind!r}")


# ---------------------------------------------------------------------------------------------
# Rows: one engine configuration each

class Config:
    """One row kind: an engine with its settings; `run(n, tstop, model, workdir, tag)` runs it."""

    def __init__(self, engine, label, threads, groups=1, supported=True):
        self.engine, self.label, self.threads, self.groups = engine, label, threads, groups
        self.supported = supported

    @property
    def key(self):
        return (self.engine, self.threads, self.groups)

    def is_neuron(self):
        return self.engine.startswith("neuron")


def make_configs(engines, threads, features, max_n):
    configs = []
    for eng in engines:
        if eng == "spikebus":
            for t in threads:
                configs.append(Config("spikebus", "spikebus", t,
                                      supported=t == 1 or features["threads"]))
        elif eng == "neuron-run":
            configs.append(Config(eng, "NEURON h.run", 1))
        elif eng == "neuron-psolve":
            configs.append(Config(eng, "NEURON psolve", 1))
        elif eng == "arbor":
            for t in threads:
                configs.append(Config("arbor", "Arbor 1 group", t, 1))
                if t > 1 and max_n > 1:
                    configs.append(Config("arbor", f"Arbor {t} groups", t, t))
    return configs


def baseline_config(c):
    """The memory baseline of row c: (row, cells) whose run, with the same tstop, is subtracted
    from c's. One cell of c itself, but NEURON's two rows share one (the same process up to
    the last call), and Arbor with G > 1 groups has G cells (one per group: the per-group
    buffers are not per-cell memory)."""
    if c.engine == "neuron-psolve":
        return Config("neuron-run", "NEURON h.run", 1), 1
    if c.engine == "arbor":
        return c, c.groups
    return c, 1


def run_config(c, binary, features, extra_args, n, tstop, model, workdir, tag):
    if c.engine == "spikebus":
        return run_spikebus(binary, features, model, n, c.threads, extra_args, workdir, tag)
    if c.is_neuron():
        mode = "run" if c.engine == "neuron-run" else "psolve"
        return run_worker("neuron", {"n": n, "tstop": tstop, "mode": mode}, workdir, tag)
    return run_worker("arbor", {"n": n, "tstop": tstop, "threads": c.threads,
                                "groups": c.groups}, workdir, tag)


# ---------------------------------------------------------------------------------------------
# Comparisons with NEURON h.run's first run

def sorted_spikes(r):
    import numpy as np

    order = np.lexsort((r["spike_t"], r["spike_src"]))
    return r["spike_src"][order], r["spike_t"][order]


def bitwise(ref, res):
    """-> (identical?, text): trace t and v and every spike (source, time), as doubles."""
    import numpy as np

    notes = []
    for key in ("t", "v"):
        a, b = ref[key], res[key]
        if len(a) != len(b):
            notes.append(f"{len(b)} {key} samples vs {len(a)}")
        else:
            nd = int(np.count_nonzero(a.view(np.int64) != b.view(np.int64)))
            if nd:
                notes.append(f"{nd} of {len(a)} {key} samples differ "
                             f"(max |d{key}| {np.nanmax(np.abs(a - b)):.3g})")
    rs, rt = sorted_spikes(ref)
    ss, st = sorted_spikes(res)
    if len(rs) != len(ss) or not np.array_equal(rs, ss):
        notes.append(f"{len(ss)} spikes vs {len(rs)} (or other sources)")
    else:
        nd = int(np.count_nonzero(rt.view(np.int64) != st.view(np.int64)))
        if nd:
            notes.append(f"{nd} of {len(rt)} spike times differ")
    if notes:
        return False, "; ".join(notes)
    return True, f"identical ({len(ref['t'])} samples, {len(rt)} spikes)"


def against_neuron(ref, res, n):
    """Arbor against NEURON: soma spike counts per cell, paired time differences, trace |dv|.
    -> (counts equal?, short text, dict of figures)."""
    import numpy as np

    soma = ref["spike_src"] < n
    ref_cnt = np.bincount(ref["spike_src"][soma], minlength=n)
    res_cnt = np.bincount(res["spike_src"], minlength=n)
    differ = int(np.count_nonzero(ref_cnt != res_cnt))
    # paired spike times (k-th spike of a cell with k-th), over cells with equal counts
    rs, rt = sorted_spikes({"spike_src": ref["spike_src"][soma], "spike_t": ref["spike_t"][soma]})
    ss, st = sorted_spikes(res)
    same = ref_cnt == res_cnt
    dts = rt[same[rs]] - st[same[ss]] if len(rt) and len(st) else np.array([])
    k = min(len(ref["v"]), len(res["v"]))
    dv = np.abs(ref["v"][:k] - res["v"][:k])
    fig = {"cells_count_differs": differ, "ref_spikes": int(soma.sum()),
           "spikes": len(res["spike_t"]),
           "dt_max": float(np.max(np.abs(dts))) if len(dts) else float("nan"),
           "dt_mean": float(np.mean(st[same[ss]] - rt[same[rs]])) if len(dts) else float("nan"),
           "dv_max": float(dv.max()) if k else float("nan"),
           "dv_median": float(np.median(dv)) if k else float("nan"), "samples": k}
    text = "spike counts equal" if not differ else f"counts differ in {differ} cells"
    return not differ, text, fig


# ---------------------------------------------------------------------------------------------
# Table and targets

COLUMNS = ["cells", "engine", "threads", "tstop ms", "steps", "median s", "min s", "us/step",
           "us/cell-step", "setup s", "process s", "peak MiB", "KiB/cell", "end KiB/cell",
           "vs NEURON", "soma spikes", "others"]
RIGHT = {"cells", "threads", "tstop ms", "steps", "median s", "min s", "us/step", "us/cell-step",
         "setup s", "process s", "peak MiB", "KiB/cell", "end KiB/cell", "soma spikes", "others"}


def fmt_us(x):
    return "-" if x is None else (f"{x:.4g}" if x < 1000 else f"{x:.0f}")


def fmt_s(x):
    return "-" if x is None else (f"{x:.3f}" if x < 100 else f"{x:.1f}")


def fmt_kib(x):
    return "-" if x is None else f"{x:.2f}"


def summarize(size, c, runs, base):
    """One row's figures from its repetitions (and its memory baseline run)."""
    n = size["n"]
    if not runs:
        return {"cells": n, "config": c, "steps": None}
    med = statistics.median(r["seconds"] for r in runs)
    steps = runs[0]["steps"]
    peak = statistics.median(r["peak_kib"] for r in runs)
    ends = [r["end_kib"] for r in runs if r.get("end_kib")]
    end = statistics.median(ends) if ends else None
    row = {"cells": n, "config": c, "tstop": size["tstop"], "steps": steps, "median": med,
           "min": min(r["seconds"] for r in runs), "us_step": med / steps * 1e6,
           "us_cell_step": med / steps / n * 1e6,
           "us_step_min": min(r["seconds"] for r in runs) / steps * 1e6,
           "us_cell_step_min": min(r["seconds"] for r in runs) / steps / n * 1e6,
           "setup": statistics.median(r["setup_seconds"] for r in runs),
           "process": statistics.median(r["process_seconds"] for r in runs),
           "peak_kib": peak, "end_kib": end,
           "others": statistics.median(r["others_cores"] for r in runs),
           "soma_spikes": int((runs[0]["spike_src"] < n).sum()),
           "spikes": len(runs[0]["spike_t"]), "check": size["checks"].get(c.key)}
    if base is not None:
        k = base["cells"]
        row["kib_cell"] = (peak - base["peak_kib"]) / (n - k)
        # a baseline too short to be sampled (spikebus, one cell, a few ms) counts its peak:
        # at least its end, so the per-cell figure is then a lower bound
        base_end = base.get("end_kib") or base["peak_kib"]
        if end is not None:
            row["end_kib_cell"] = (end - base_end) / (n - k)
    return row


def check_cell(row):
    ch = row.get("check")
    if ch is None:
        return "reference" if row["config"].engine == "neuron-run" else "not checked"
    if ch["kind"] == "bitwise":
        if row["config"].engine == "neuron-run":  # its later runs against its first
            return "reference" if ch["ok"] else "DIFFERS between runs"
        return "bitwise" if ch["ok"] else "DIFFERS"
    return "no: " + ch["text"]


def table_rows(rows):
    out = []
    for r in rows:
        c = r["config"]
        if r["steps"] is None:
            why = "-" if not c.supported else "skipped"
            out.append([f"{r['cells']:,}", c.label, str(c.threads)] + [why] * (len(COLUMNS) - 3))
            continue
        out.append([f"{r['cells']:,}", c.label, str(c.threads), f"{r['tstop']:g}",
                    f"{r['steps']:,}", fmt_s(r["median"]), fmt_s(r["min"]), fmt_us(r["us_step"]),
                    fmt_us(r["us_cell_step"]), fmt_s(r["setup"]), fmt_s(r["process"]),
                    f"{r['peak_kib'] / 1024:.1f}", fmt_kib(r.get("kib_cell")),
                    fmt_kib(r.get("end_kib_cell")), check_cell(r), f"{r['soma_spikes']:,}",
                    f"{r['others']:.2f}"])
    return out


def find(rows, n, engine, threads, groups=None):
    for r in rows:
        c = r["config"]
        if (r["cells"] == n and c.engine == engine and c.threads == threads
                and (groups is None or c.groups == groups) and r["steps"] is not None):
            return r
    return None


def best_arbor(rows, n, threads):
    """Arbor's fastest row for n cells on `threads` threads (any grouping)."""
    cands = [r for r in rows if r["cells"] == n and r["config"].engine == "arbor"
             and r["config"].threads == threads and r["steps"] is not None]
    return min(cands, key=lambda r: r["us_cell_step"]) if cands else None


def verdict(ok):
    return "met" if ok else "NOT met"


def threads_word(t):
    return f"{t} thread" + ("s" if t != 1 else "")


def arbor_ratio_line(rows, n, t, per, want):
    """spikebus against Arbor for n cells on t threads: every Arbor row, the ratio to the
    fastest; with `want`, the issue's target and whether this run meets it."""
    arbor = [r for r in rows if r["cells"] == n and r["config"].engine == "arbor"
             and r["config"].threads == t and r["steps"] is not None]
    if not arbor:
        return None
    unit = "us/step" if per == "us_step" else "us/cell-step"
    fastest = min(arbor, key=lambda r: r[per])
    figures = ", ".join(f"{r['config'].label} {fmt_us(r[per])}" for r in arbor)
    sb = find(rows, n, "spikebus", t)
    head = f"{cells(n)}, {threads_word(t)}, {unit}: {figures}; spikebus "
    if sb is None:
        return head + "- (this binary has no --threads)" if t > 1 else head + "- (not run)"
    x = fastest[per] / sb[per]
    s = head + f"{fmt_us(sb[per])}: {x:.2f}x Arbor's fastest"
    if len(arbor) > 1:
        one = [r for r in arbor if r["config"].groups == 1][0]
        s += f" ({one[per] / sb[per]:.2f}x {one['config'].label})"
    # the same from the fastest repetitions: on a busy machine, nearer to an idle one's ratio
    x_min = min(r[per + "_min"] for r in arbor) / sb[per + "_min"]
    s += f"; by min s: {x_min:.2f}x"
    if want:
        s += f"; target >= {want:g}x: {verdict(x >= want)} (by min s: {verdict(x_min >= want)})"
    return s


def target_lines(rows, sizes, threads):
    """The issue's targets and the other ratios, each computed from this run's rows."""
    lines = []
    # spikebus against Arbor, per size and thread count; the targets: one seed cell
    # >= 4x Arbor per step, 1,000 and 10,000 cells >= 1.5x per cell-step (1 and 2 threads)
    wants = {1: ("us_step", 4.0), 1000: ("us_cell_step", 1.5), 10000: ("us_cell_step", 1.5)}
    for n in sizes:
        per, want = wants.get(n, ("us_cell_step", None))
        for t in threads:
            line = arbor_ratio_line(rows, n, t, per, want)
            if line:
                lines.append(line)
    # spikebus against NEURON
    for n in sizes:
        sb = find(rows, n, "spikebus", 1)
        parts = []
        for eng in ("neuron-run", "neuron-psolve"):
            ne = find(rows, n, eng, 1)
            if sb and ne:
                parts.append(f"{ne['config'].label} {fmt_us(ne['us_cell_step'])} "
                             f"({ne['us_cell_step'] / sb['us_cell_step']:.2f}x)")
        if parts:
            lines.append(f"{cells(n)}, 1 thread, us/cell-step: spikebus "
                         f"{fmt_us(sb['us_cell_step'])}; " + ", ".join(parts))
    # linearity: cost per cell-step relative to 1,000 cells (1.00 = linear)
    big = [n for n in sizes if n >= 1000]
    if len(big) > 1:
        for t in threads:
            for eng, label in (("spikebus", "spikebus"), ("arbor", "Arbor (fastest grouping)"),
                               ("neuron-psolve", "NEURON psolve")):
                def get(n):
                    return best_arbor(rows, n, t) if eng == "arbor" else find(rows, n, eng, t)
                base = get(1000)
                if base is None:
                    continue
                parts = [f"{n:,}: {get(n)['us_cell_step'] / base['us_cell_step']:.2f}"
                         for n in big if get(n)]
                mins = [f"{get(n)['us_cell_step_min'] / base['us_cell_step_min']:.2f}"
                        for n in big if get(n)]
                lines.append(f"linearity, {label}, {threads_word(t)}: us/cell-step relative to "
                             "1,000 cells (1.00 = linear): " + ", ".join(parts)
                             + " (by min s: " + ", ".join(mins) + ")")
    # memory per cell at the largest size; the target: <= 4 KiB per seed cell beyond the
    # recorded data (here the spikes: spikebus keeps each as 16 bytes, u32 source + f64 t)
    for n in reversed(sizes):
        sb = find(rows, n, "spikebus", 1)
        if sb and sb.get("kib_cell") is not None:
            spc = sb["spikes"] / n
            rec = spc * 16 / 1024
            end = sb.get("end_kib_cell")
            others = ", ".join(
                f"{r['config'].label} {fmt_kib(r.get('kib_cell'))} "
                f"(end {fmt_kib(r.get('end_kib_cell'))})"
                for r in rows if r["cells"] == n and r["config"].engine != "spikebus"
                and r["steps"] is not None and r["config"].threads == 1)
            lines.append(
                f"memory, {cells(n)}, KiB/cell: spikebus peak {sb['kib_cell']:.2f}, end "
                f"{fmt_kib(end)}; recorded spikes {spc:.1f}/cell = {rec:.2f} KiB/cell at 16 B; "
                f"beyond them: peak {sb['kib_cell'] - rec:.2f}, end "
                f"{fmt_kib(None if end is None else end - rec)}; target <= 4 KiB: "
                f"{verdict(sb['kib_cell'] - rec <= 4)} at the peak, "
                f"{'-' if end is None else verdict(end - rec <= 4)} at the end. Others (1 thread): "
                + others)
            break
    return lines


def check_lines(sizes_done, configs):
    lines = []
    for size in sizes_done:
        for key in [c.key for c in configs if c.key in size["checks"]]:
            ch = size["checks"][key]
            label = size["labels"][key]
            if ch["kind"] == "bitwise":
                lines.append(f"{cells(size['n'])}, {label}: vs NEURON h.run: {ch['text']} in "
                             f"{ch['runs']} run(s)")
            else:
                f = ch["fig"]
                lines.append(
                    f"{cells(size['n'])}, {label}: vs NEURON h.run: {ch['text']} (soma spikes "
                    f"{f['spikes']:,} vs {f['ref_spikes']:,}); paired spike times: Arbor - "
                    f"NEURON mean {f['dt_mean']:+.4f} ms, max |dt| {f['dt_max']:.4f} ms; cell 0 "
                    f"v over {f['samples']:,} samples: median |dv| {f['dv_median']:.3g} mV, "
                    f"max {f['dv_max']:.3g} mV")
    return lines


# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Scaling benchmark: spikebus vs NEURON 9.0.2 and Arbor 0.12.2, 1 to 10^5 "
                    "cells, 1 and 2 threads, memory per cell.")
    ap.add_argument("--spikebus", default=DEFAULT_BINARY,
                    help=f"spikebus binary (default {DEFAULT_BINARY}, relative to the repo root)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="cell counts, comma-separated (default %(default)s)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per size and row")
    ap.add_argument("--tstop", action="append", default=[], metavar="CELLS=MS",
                    help="tstop for a size (repeatable); defaults: "
                         + ", ".join(f"{n}={t:g}" for n, t in TSTOP_MS.items()))
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="engines to run (default %(default)s)")
    ap.add_argument("--neuron-max-cells", type=int, default=None,
                    help="skip NEURON above this many cells (then nothing is checked there)")
    ap.add_argument("--spikebus-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for every `spikebus run` (repeatable; use "
                         "--spikebus-arg=--option)")
    ap.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown")
    args = ap.parse_args(argv)
    try:
        args.sizes = [int(x) for x in args.sizes.split(",")]
        args.threads = [int(x) for x in args.threads.split(",")]
        tstops = dict(default_tstop_items(args.sizes))
        for item in args.tstop:
            n, ms = item.split("=")
            tstops[int(n)] = float(ms)
        args.tstops = tstops
    except ValueError as e:
        ap.error(f"bad number in --sizes, --threads or --tstop ({e})")
    args.engines = args.engines.split(",")
    if bad := [e for e in args.engines if e not in ENGINES]:
        ap.error(f"unknown engine(s) {bad}; known: {ENGINES}")
    if args.repeat < 1 or any(n < 1 for n in args.sizes) or any(t < 1 for t in args.threads):
        ap.error("--repeat, --sizes and --threads must be >= 1")
    for n, ms in args.tstops.items():
        steps = ms / DT
        if abs(steps - round(steps)) > 1e-9 or steps < 1:
            ap.error(f"tstop {ms:g} ms for {n} cells is not a whole number of steps of {DT} ms")
    return args


def default_tstop_items(sizes):
    return [(n, default_tstop(n)) for n in sizes]


def main(argv):
    if argv and argv[0] == "--worker":
        worker_main(argv[1], argv[2])
        return 0
    args = parse_args(argv)
    binary = spikebus_binary(args.spikebus) if "spikebus" in args.engines else None
    features = spikebus_features(binary) if binary else {"threads": False}
    versions = {}
    try:
        import numpy  # noqa: F401
        if any(e.startswith("neuron") for e in args.engines):
            import neuron
            versions["NEURON"] = neuron.__version__
        if "arbor" in args.engines:
            import arbor
            versions["Arbor"] = arbor.__version__
    except ImportError as e:
        sys.exit(f"bench/scaling.py needs numpy, NEURON and arbor ({e}; "
                 "pip install -r bench/requirements.txt)")
    for name, want in (("NEURON", NEURON_VERSION), ("Arbor", ARBOR_VERSION)):
        if name in versions and versions[name] != want:
            log(f"warning: {name} {versions[name]}, the benchmark is meant for {want}")
    if binary and not features["threads"] and any(t > 1 for t in args.threads):
        log("spikebus run has no --threads: its rows for more than one thread show '-'")

    configs = make_configs(args.engines, args.threads, features, max(args.sizes))
    has_ref = "neuron-run" in args.engines
    ok = True
    rows, sizes_done = [], []
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = loadavg()
    whole_before = cpu_snapshot()
    with tempfile.TemporaryDirectory(prefix="spikebus-scaling-") as tmp:
        for n in args.sizes:
            tstop = args.tstops[n]
            skip_neuron = args.neuron_max_cells is not None and n > args.neuron_max_cells
            active = [c for c in configs if c.supported and not (c.is_neuron() and skip_neuron)
                      and not (c.engine == "arbor" and c.groups > n)]
            model = os.path.join(tmp, f"cells{n}.toml")
            base_model = os.path.join(tmp, f"cells1-{n}.toml")
            if "spikebus" in args.engines:
                for path, k in ((model, n), (base_model, 1)):
                    with open(path, "w") as f:
                        if k > 1 and features["populations"]:
                            f.write(seed_population_toml(k, tstop))
                        else:
                            f.write(seed_cells_toml(k, tstop, [recorded_signal(k)],
                                                    vary_start=k > 1))
            size = {"n": n, "tstop": tstop, "checks": {}, "labels": {}}
            # memory baselines: one cell, the same tstop and settings (untimed, once)
            base = {}
            for c in active:
                b, k = baseline_config(c)
                if k < n and b.key not in base:
                    log(f"{n:,} cells: memory baseline, {cells(k)}, {b.label}, "
                        f"{threads_word(b.threads)} ...")
                    base[b.key] = run_config(b, binary, features, args.spikebus_arg, k, tstop,
                                             base_model, tmp, "base")
                    base[b.key]["cells"] = k
            results = {c.key: [] for c in active}
            ref = None
            for rep in range(args.repeat):
                for c in active:
                    log(f"{n:,} cells, tstop {tstop:g} ms [{rep + 1}/{args.repeat}] {c.label}, "
                        f"{c.threads} thread(s) ...")
                    r = run_config(c, binary, features, args.spikebus_arg, n, tstop, model, tmp,
                                   f"{c.engine}-{rep}")
                    log(f"    {r['seconds']:.3f} s ({r['seconds'] / r['steps'] / n * 1e6:.4g} "
                        f"us/cell-step), setup {r['setup_seconds']:.2f} s, peak "
                        f"{r['peak_kib'] / 1024:.1f} MiB, others {r['others_cores']:.2f} cores")
                    if c.engine == "neuron-run" and ref is None:
                        ref = r
                    if ref is not None and r is not ref:
                        ok &= check(size, c, ref, r, n)
                    if results[c.key]:  # traces and spikes: the first run's are kept
                        for k in ("t", "v", "spike_t", "spike_src"):
                            r.pop(k, None)
                    results[c.key].append(r)
                # rows run before NEURON's reference in this first repetition: check them now
                if rep == 0 and ref is not None:
                    for c in active:
                        if c.key not in size["checks"] and c.engine != "neuron-run":
                            ok &= check(size, c, ref, results[c.key][0], n)
            if not has_ref or skip_neuron:
                log(f"{n:,} cells: NEURON h.run not run, nothing compared")
            for c in configs:
                if c.engine == "arbor" and c.groups > n:
                    continue  # fewer cells than groups: no such row
                rows.append(summarize(size, c, results.get(c.key, []),
                                      base.get(baseline_config(c)[0].key)))
            sizes_done.append(size)
    whole_after = cpu_snapshot()
    load_after = loadavg()

    trows = table_rows(rows)
    machine = machine_line(with_physical_cores=True)
    vline = "; ".join([spikebus_version(binary) if binary else "spikebus not run"]
                      + [f"{k} {v}" for k, v in versions.items()]
                      + [f"Python {platform.python_version()}"])
    if binary:
        vline += f"; spikebus run --threads: {'yes' if features['threads'] else 'no'}"
    targets = target_lines(rows, args.sizes, args.threads)
    checks = check_lines(sizes_done, configs)
    load = (f"{others_line(whole_before, whole_after)}; load average {load_before} at the start, "
            f"{load_after} at the end")
    notes = [f"started {started}; {args.repeat} timed run(s) per size and row, interleaved; "
             "medians"]
    text = "\n".join([text_table(COLUMNS, trows, RIGHT), "", "targets and ratios (this run):"]
                     + [f"  {s}" for s in targets] + ["", "checks:"] + [f"  {s}" for s in checks]
                     + ["", f"machine: {machine}", f"versions: {vline}", f"load: {load}"]
                     + notes)
    print(text, flush=True)

    if args.markdown:
        cmdline = shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv))
        md = ["# spikebus scaling benchmark against NEURON and Arbor", "",
              "Command (from the repository root):", "", "```", cmdline, "```", "",
              markdown_table(COLUMNS, trows, RIGHT), "", "Targets and ratios (this run):", ""]
        md += [f"- {s}" for s in targets]
        md += ["", "Checks:", ""] + [f"- {s}" for s in checks]
        md += ["", f"- machine: {machine}", f"- versions: {vline}", f"- load: {load}"]
        md += [f"- {s}" for s in notes] + [""]
        with open(args.markdown, "w") as f:
            f.write("\n".join(md))
        log(f"wrote {args.markdown}")
    return 0 if ok else 1


def check(size, c, ref, r, n):
    """Compares run r of row c with NEURON's reference run and records the outcome in
    size["checks"] (the first failure is kept); -> False if a bitwise check failed. Arbor is
    compared once (its first run), and never fails the benchmark."""
    key = c.key
    size["labels"][key] = f"{c.label}, {c.threads} thread{'s' if c.threads > 1 else ''}"
    prev = size["checks"].get(key)
    if c.engine == "arbor":
        if prev is None and "spike_src" in r:
            same, text, fig = against_neuron(ref, r, n)
            size["checks"][key] = {"kind": "arbor", "ok": same, "text": text, "fig": fig}
        return True
    same, text = bitwise(ref, r)
    if prev is None or (prev["ok"] and not same):
        runs = (prev["runs"] + 1) if prev else 1
        size["checks"][key] = {"kind": "bitwise", "ok": same, "text": text, "runs": runs}
    else:
        prev["runs"] += 1
    if not same:
        log(f"    MISMATCH {c.label} vs NEURON h.run: {text}")
    return same


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
