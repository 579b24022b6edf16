"""What the benchmark scripts in bench/ share: paths, the spikebus binary, starting a process
that prints a `listening` line, and the machine/version/load lines printed under their tables.

Imported as `common` by `python bench/X.py` (the script's own directory is on sys.path then).
Linux-specific readings (/proc/cpuinfo, /proc/stat, /proc/loadavg) fall back to something
printable elsewhere. pyzmq and msgpack are imported only by the functions that report them.
"""

import os
import platform
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BINARY = os.path.join("target", "release", "spikebus")
LISTENING = "spikebus: listening"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def need_zmq_msgpack(script):
    """Exit with a message naming `script` (e.g. bench/lockstep.py) if pyzmq or msgpack is missing."""
    try:
        import msgpack  # noqa: F401
        import zmq  # noqa: F401
    except ImportError as e:
        sys.exit(f"{script} needs pyzmq and msgpack ({e}; pip install -r bench/requirements.txt)")


# ---------------------------------------------------------------------------------------------
# The spikebus binary and its processes

def spikebus_binary(path):
    """The --spikebus argument as an absolute path (a relative one that does not exist from the
    working directory is taken relative to the repo root); exits if it is not executable."""
    binary = path
    if not os.path.isabs(binary) and not os.path.exists(binary):
        binary = os.path.join(ROOT, binary)
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no spikebus binary at {binary} (build it: cargo build --release)")
    return binary


def start_process(cmd, prefix, cwd=None):
    """Start a process that prints `prefix ... ENDPOINT...` as its first line; -> (proc, line)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)
    line = proc.stdout.readline().strip()
    if not line.startswith(prefix):
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"{cmd[0]} did not print `{prefix}` (exit {proc.returncode}): "
                           f"{line!r} {out!r} {err!r}")
    return proc, line


def listening_endpoints(line):
    """The node's `spikebus: listening control=... pub=...` line -> {"control": ..., "pub": ...}."""
    return dict(w.split("=", 1) for w in line[len(LISTENING):].split())


# ---------------------------------------------------------------------------------------------
# Machine and versions

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores():
    try:
        pairs = set()
        phys = core = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":", 1)[1].strip()
                elif not line.strip():
                    if core is not None:
                        pairs.add((phys, core))
                    phys = core = None
        return len(pairs) or None
    except OSError:
        return None


def machine_line(with_physical_cores=False):
    """CPU model, logical CPUs (and, if asked, physical cores), usable CPUs if fewer; the OS."""
    logical = os.cpu_count()
    cores = f"{logical} logical CPUs"
    if with_physical_cores:
        phys = physical_cores()
        cores += f" ({phys} physical cores)" if phys else ""
    try:
        usable = len(os.sched_getaffinity(0))
        if usable != logical:
            cores += f", {usable} usable"
    except AttributeError:
        pass
    return f"{cpu_model()}, {cores}; {platform.system()} {platform.release()} {platform.machine()}"


def spikebus_version(binary):
    """`spikebus --version` and the repo's `git describe --always --dirty`, e.g.
    "spikebus 0.1.0 (git e563f7d-dirty)"."""
    try:
        sb = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        sb = "spikebus ?"
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = ""
    return sb + (f" (git {rev})" if rev else "")


def python_zmq_msgpack():
    """"Python X, pyzmq Y (libzmq Z), msgpack W"."""
    import msgpack
    import zmq

    return (f"Python {platform.python_version()}, pyzmq {zmq.__version__} (libzmq "
            f"{zmq.zmq_version()}), msgpack {'.'.join(map(str, msgpack.version))}")


def zmq_versions_line(binary):
    """The versions line of the bus benchmarks: spikebus (git), Python, pyzmq, libzmq, msgpack."""
    return f"{spikebus_version(binary)}; {python_zmq_msgpack()}"


def cpu_snapshot():
    """(machine's busy CPU seconds, this script's and its reaped children's CPU seconds, wall)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        busy = float("nan")
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic()


def others_line(before, after):
    """How much CPU other processes on the machine used while the benchmark ran."""
    wall = after[2] - before[2]
    other = (after[0] - before[0]) - (after[1] - before[1])
    return (f"other processes' CPU during the benchmark: {max(other, 0.0):.1f} s over {wall:.1f} s "
            f"of wall time (~{max(other, 0.0) / wall:.2f} cores on average; from /proc/stat "
            "minus this benchmark's own processes)")


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------------------------------------
# Tables

def text_table(columns, rows, right):
    """A plain-text table: a header, a dashed rule, the rows; the columns named in `right` are
    right-aligned, the others left-aligned; trailing spaces are cut."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(cells):
        return "  ".join(c.rjust(w) if columns[i] in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(columns, rows, right):
    """The same table in Markdown: the columns named in `right` right-aligned."""
    out = ["| " + " | ".join(columns) + " |",
           "| " + " | ".join("---:" if c in right else "---" for c in columns) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def free_port_block(n: int = 10) -> int:
    """A port P with P to P + n - 1 free on 127.0.0.1. A zmq broker binds P and P + 1 and
    hands the federates' cores ports above them (P + 5, P + 6, ... measured), and it cannot
    bind port 0 and report it: so the ports are probed and released, and P is drawn below
    the kernel's ephemeral range (32768 and up), where outgoing connections of other
    processes take their ports. A race remains with processes binding fixed ports there."""
    import random

    for _ in range(200):
        port = random.randrange(20000, 32700 - n)
        socks = []
        try:
            for p in range(port, port + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return port
    raise RuntimeError(f"no block of {n} free ports")
