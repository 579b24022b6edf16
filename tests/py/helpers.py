"""Helpers shared by the Python tests (tests/py): paths, starting a node, ipc endpoints,
MessagePack as a controller speaks it, the spec's error codes, and the golden data
(tests/golden/README.md) with bit-for-bit comparisons of a run's output files.

Importing this module puts ``examples-py/`` on ``sys.path`` (the client library is used from
there, without installation).  Fixtures are in conftest.py; schema loading in schemas_util.py.
"""

from __future__ import annotations

import base64
import csv
import json
import socket
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import msgpack

if TYPE_CHECKING:
    from spikebus_client import Node

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples-py"
GOLDEN = REPO_ROOT / "tests" / "golden"

if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

# The error codes of the spec (schemas/README.md; common.schema.json#/$defs/errorCode), in its order.
ERROR_CODES = (
    "bad_message",
    "unknown_op",
    "protocol_mismatch",
    "unknown_name",
    "invalid_value",
    "not_writable",
    "event_in_past",
    "wrong_state",
    "not_owner",
    "too_large",
    "unknown_snapshot",
    "snapshot_limit",
    "io_error",
)


# ---------------------------------------------------------------------------------------
# Nodes and endpoints


def make_node(spikebus_bin: Path, args: Sequence[Any], start_timeout: float = 30.0) -> Node:
    """A :class:`spikebus_client.Node` for ``spikebus run ARGS...``, run from the repository
    root; not started yet."""
    from spikebus_client import Node

    return Node([str(a) for a in args], binary=spikebus_bin, cwd=REPO_ROOT, start_timeout=start_timeout)


def ipc_endpoint(d: Path, name: str, prefix: str = "sb") -> tuple[str, str | None]:
    """``ipc://D/NAME.sock``, or, if that path is too long for a Unix socket, the same name in
    a fresh short temporary directory (``mkdtemp(prefix=prefix)``) -> (endpoint, that directory
    or None); the caller removes the directory."""
    path = d / f"{name}.sock"
    short_dir = None
    if len(str(path)) > 90:  # sun_path holds 107 bytes
        short_dir = tempfile.mkdtemp(prefix=prefix)
        path = Path(short_dir) / f"{name}.sock"
    return f"ipc://{path}", short_dir


# ---------------------------------------------------------------------------------------
# MessagePack


def pack(obj: Any) -> bytes:
    """MessagePack as a controller sends it (str as str, floats as doubles)."""
    return msgpack.packb(obj, use_bin_type=True, use_single_float=False)


def unpack(data: bytes) -> Any:
    """A node message decoded leniently (any map keys), so that a faulty one can be reported."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


# ---------------------------------------------------------------------------------------
# Golden data and output files


@dataclass
class Golden:
    signals: list[str]  # "t" first
    traces: dict[str, list[float]]
    spikes: dict[str, list[float]]
    final: dict[str, float]
    set: dict[str, float]


def decode_trace(s: str) -> list[float]:
    """base64(zlib(little-endian f64 array)) -> floats (tests/golden/README.md)."""
    b = zlib.decompress(base64.b64decode(s))
    return list(struct.unpack("<%dd" % (len(b) // 8), b))


def load_golden(name: str) -> Golden:
    with open(GOLDEN / f"{name}.json", encoding="utf-8") as f:
        d = json.load(f)
    return Golden(
        signals=list(d["signals"]),
        traces={k: decode_trace(v) for k, v in d["traces"].items()},
        spikes={k: [float(x) for x in v] for k, v in d["spikes"].items()},
        final=dict(d.get("final") or {}),
        set=dict(d.get("set") or {}),
    )


def read_traces(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    """traces.csv -> (header, {column: values})."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    cols: dict[str, list[float]] = {h: [] for h in header}
    for r in rows[1:]:
        assert len(r) == len(header), f"{path}: row of {len(r)} fields, header has {len(header)}"
        for h, x in zip(header, r):
            cols[h].append(float(x))
    return header, cols


def read_spikes(path: Path) -> list[tuple[str, float]]:
    """spikes.csv -> [(source, t)] in file order."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["source", "t"], f"{path}: header {rows[0]}"
    return [(r[0], float(r[1])) for r in rows[1:]]


def spikes_by_source(spikes: Iterable[tuple[str, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for s, t in spikes:
        out.setdefault(s, []).append(t)
    return out


def bits(xs: Sequence[float]) -> bytes:
    return struct.pack("<%dd" % len(xs), *xs)


def assert_same_doubles(got: Sequence[float], want: Sequence[float], what: str) -> None:
    """Equal as doubles, bit for bit (so -0.0 != 0.0), with the first difference named."""
    assert len(got) == len(want), f"{what}: {len(got)} values, expected {len(want)}"
    if bits(got) != bits(want):
        k = next(i for i, (a, b) in enumerate(zip(got, want)) if struct.pack("<d", a) != struct.pack("<d", b))
        raise AssertionError(f"{what}: first difference at index {k}: {got[k]!r} != {want[k]!r}")


def assert_matches_golden(out: Path, g: Golden) -> None:
    """traces.csv and spikes.csv equal NEURON's reference bit for bit."""
    header, cols = read_traces(out / "traces.csv")
    assert header == g.signals, f"traces.csv header {header}, golden {g.signals}"
    for name in g.signals:
        assert_same_doubles(cols[name], g.traces[name], f"traces.csv column {name}")
    spikes = read_spikes(out / "spikes.csv")
    ts = [t for _, t in spikes]
    assert ts == sorted(ts), "spikes.csv is not in time order"
    got = spikes_by_source(spikes)
    for source, want in g.spikes.items():
        assert_same_doubles(got.get(source, []), want, f"spikes of {source}")
    assert set(got) <= set(g.spikes), f"spikes of unknown sources: {set(got) - set(g.spikes)}"


def open_control(ctx: Any, endpoint: str, zmq_type: int, timeout_ms: int) -> Any:
    """A control connection without the client library: for ``unix://PATH`` a Unix-domain
    stream socket with a receive timeout of ``timeout_ms``, else a ZeroMQ socket of
    ``zmq_type`` (REQ, DEALER) with no linger, connected to ``endpoint``."""
    if endpoint.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout_ms / 1000)
        s.connect(endpoint[len("unix://") :])
        return s
    import zmq

    z = ctx.socket(zmq_type)
    z.setsockopt(zmq.LINGER, 0)
    z.connect(endpoint)
    return z


def unix_send(s: socket.socket, data: bytes) -> None:
    """One frame of the unix:// control channel: a 4-byte big-endian length, then the message."""
    s.sendall(struct.pack(">I", len(data)) + data)


def unix_recv(s: socket.socket) -> bytes:
    """One frame's message from the unix:// control channel. Raises TimeoutError when the
    socket's timeout passes, ConnectionError when the node closes the connection."""

    def read(n: int) -> bytes:
        data = b""
        while len(data) < n:
            got = s.recv(n - len(data))
            if not got:
                raise ConnectionError("the node closed the connection")
            data += got
        return data

    return read(struct.unpack(">I", read(4))[0])
