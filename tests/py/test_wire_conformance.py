"""Wire conformance: every message real spikebus nodes send validates against its JSON Schema
(schemas/*.schema.json), and every request this test sends is what it claims to be.

Run: pytest tests/py/test_wire_conformance.py   (after `cargo build --release`)

Three nodes are started and driven once per control transport (fixture ``wire``: ``zmq``, the
endpoints below; ``unix``, each control channel on a ``unix://`` socket instead, its messages
in length-prefixed frames), each by two clients (``wire-a`` and ``wire-b``, two REQ sockets, or
two Unix-socket connections, naming themselves with ``client``):

- ``seed/tcp``: the seed model (tstop 50 ms), control and pub on tcp://127.0.0.1:0, one state
  sample per message; every request kind, every error code but ``too_large``, sync points of
  every reason (the FInitializeHandler types ``init_3``, ``init_0``, ``init_1``, ``init_2``,
  ``spike`` of the soma and of the NetStim, ``scatter_gather``, ``at``, ``every``, ``end``),
  each also as ``hello``'s ``pending``; takeovers at the start point and mid-run (the
  ``owner`` topic, with and without a previous owner) and ``not_owner`` for the client that
  does not own the run; a run to the ``end`` point and ``done`` (reason ``end``);
- ``exp2syn/ipc``: tests/models/exp2syn.toml (an Exp2Syn, two ExpSyns, a VecStim, NetStims),
  control and pub on ipc sockets in a temporary directory, ``--pub-batch 7``; driven from
  spike to spike (``schedule.on_spike``), events to a NetCon and a synapse, then ``stop``;
- ``seed/max-message``: ``--max-message 200``; requests bigger than that get ``too_large``.

A SUB socket subscribed to everything is connected (ZeroMQ handshake done) before the
controllers, and each node runs with ``--wait-subscribers 1``, so the whole stream is
received.  Every reply is validated against the schema chosen by its ``op`` (``hello.reply``,
``values.reply``, ``sync.reply``, ``done.reply``, ``error.reply``), the ``pending`` report
inside every ``hello`` also against ``sync.reply``, and every stream message against the
schema of its topic (``<topic>.pub``).  Messages are decoded with
``msgpack.unpackb(raw=False, strict_map_key=False)``.  The controllers close their sockets
after ``done``, and the node must then exit at once (it lingers only while one is connected).

Besides the schemas, rules that the README states but JSON Schema cannot check are applied
to every node message: NaN and infinity are never valid, counts (``step``, ``seq``,
``published``...) are integers (JSON Schema counts 3.0 as an integer), map keys are strings,
the reasons of one step boundary come in NEURON's order, a ``spike`` point's ``t`` is its
spike's.  ``test_messagepack_number_types`` reads the bytes as they came: counts as unsigned
integers in the smallest encoding, every other number a float 64, nil where a value is absent.

Each kind of message is a test case (``test_node_message_conforms[reply:error:not_owner]``,
``[pub:sync:scatter_gather]``...): it fails if no such message was seen, or with the schema
path, the validation error and the offending message for each one that does not conform.
Requests are checked before they are sent: an honest request must validate against its
request schema (and each action against action.schema.json); a deliberately malformed one
(sent to provoke ``bad_message`` or ``unknown_op``) must not.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import msgpack
import pytest
import zmq
from jsonschema import Draft202012Validator, validators

from helpers import ERROR_CODES, REPO_ROOT, ipc_endpoint, make_node, open_control, pack, unix_recv, unix_send, unpack
from schemas_util import validator

EXP2SYN = REPO_ROOT / "tests" / "models" / "exp2syn.toml"

# Bounds on every wait: generous for a loaded machine, finite for a hung node.
REPLY_TIMEOUT_MS = 30_000
STREAM_IDLE_TIMEOUT_S = 30.0
NODE_EXIT_TIMEOUT_S = 60.0
MAX_SYNC_POINTS = 500  # a driving loop that does not end is a failure, not a hang
LINGER_BOUND_S = 3.0  # the node's exit after its last controller disconnected (--linger is 5 s)

REASONS = ("start", "init_3", "init_0", "init_1", "init_2", "spike", "scatter_gather", "at", "every", "end")
# The reasons of one step boundary, in the order a report lists them (README, "Sync points").
BOUNDARY_ORDER = ("at", "init_2", "every", "end")
ACTIONS = ("set", "event", "schedule", "watch", "stop", "snapshot", "restore", "discard")
TOPICS = ("started", "state", "spike", "sync", "owner", "done", "hash", "restore")

REQUEST_SCHEMA = {"hello": "hello.request", "get": "get.request", "continue": "continue.request", "export": "export.request"}
REPLY_SCHEMA = {op: f"{op}.reply" for op in ("hello", "values", "sync", "done", "error", "exported")}
PUB_SCHEMA = {topic: f"{topic}.pub" for topic in TOPICS}

# Every kind of node message this test must see (one test case each).
NODE_KINDS = (
    ["reply:hello", "reply:values", "reply:exported", "reply:sync:snapshots", "reply:sync:restored"]
    + [f"reply:sync:{r}" for r in REASONS]
    + ["reply:done:end", "reply:done:stop"]
    + [f"reply:error:{c}" for c in ERROR_CODES]
    + ["pub:started", "pub:state:per-step", "pub:state:batched", "pub:spike", "pub:owner", "pub:hash", "pub:restore"]
    + [f"pub:sync:{r}" for r in REASONS]
    + ["pub:done:end", "pub:done:stop"]
)
# Every kind of request this test sends (requests that are not MessagePack maps aside).
REQUEST_KINDS = (
    [f"request:{op}" for op in REQUEST_SCHEMA] + [f"request:action:{a}" for a in ACTIONS] + ["request:malformed"]
)


# ---------------------------------------------------------------------------------------
# Validation


def _strict_integer(checker: Any, instance: Any) -> bool:
    # On the wire a count is a MessagePack integer; JSON Schema would also accept 3.0.
    return isinstance(instance, int) and not isinstance(instance, bool)


StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)

_VALIDATORS: dict[tuple[str, bool], Any] = {}


def schema_validator(message: str, strict: bool = False) -> Any:
    key = (message, strict)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = validator(message, StrictValidator if strict else Draft202012Validator)
    return _VALIDATORS[key]


def _path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _wire_value_faults(x: Any, where: str = "$") -> Iterator[str]:
    """NaN/infinity anywhere, and map keys that are not strings."""
    if isinstance(x, float) and not math.isfinite(x):
        yield f"{where}: {x!r} (NaN and infinity are never valid; common.schema.json#/$defs/finiteNumber)"
    elif isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str):
                yield f"{where}: map key {k!r} is not a string (README: string keys)"
            yield from _wire_value_faults(v, f"{where}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _wire_value_faults(v, f"{where}[{i}]")


def conformance_errors(schema: str | None, msg: Any, strict: bool = True) -> list[str]:
    """Why ``msg`` does not conform to ``<schema>.schema.json`` (empty if it does):
    each validation error with the path into the message and into the schema."""
    if schema is None:
        return ["no schema: not a message kind of protocol version 2"]
    errs = [
        f"{schema}.schema.json: at {_path(e.absolute_path)} (schema path "
        f"{'/'.join(map(str, e.absolute_schema_path))}): {e.message}"
        for e in sorted(schema_validator(schema).iter_errors(msg), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if errs or not strict:
        return errs
    errs += [
        f"{schema}.schema.json: at {_path(e.absolute_path)} (schema path "
        f"{'/'.join(map(str, e.absolute_schema_path))}): {e.message} (a count sent as a float; "
        "common.schema.json#/$defs/count: on the wire send a MessagePack integer)"
        for e in schema_validator(schema, strict=True).iter_errors(msg)
    ]
    errs += list(_wire_value_faults(msg))
    return errs


def short(x: Any, limit: int = 1500) -> str:
    s = repr(x)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"


# ---------------------------------------------------------------------------------------
# What was seen


@dataclass
class Seen:
    kind: str
    schema: str | None
    message: Any
    where: str
    must_be_valid: bool = True  # False for the deliberately malformed requests


@dataclass
class WireLog:
    seen: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    # Things the test expected and did not get (the provocation of a kind failed), by kind.
    missed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Wire rules beyond the schemas (id echo, frames, batch lengths, seq), by rule.
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    distinct: Counter = field(default_factory=Counter)  # messages, each counted once
    # Why a kind of stream message may be missing, by kind.
    hints: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Every node message as it came on the wire: (where, the MessagePack bytes).
    raw: list[tuple[str, bytes]] = field(default_factory=list)

    def __repr__(self) -> str:  # pytest shows fixtures' reprs in tracebacks: keep it short
        return f"WireLog({sum(map(len, self.seen.values()))} records)"

    def add(self, kind: str, schema: str | None, message: Any, where: str, must_be_valid: bool = True) -> None:
        self.seen[kind].append(Seen(kind, schema, message, where, must_be_valid))


def reply_kinds(rep: Any) -> list[str]:
    if not isinstance(rep, dict):
        return ["reply:other"]
    op = rep.get("op")
    if op in ("hello", "values", "exported"):
        return [f"reply:{op}"]
    if op == "sync":
        rs = rep.get("reasons")
        ks = [f"reply:sync:{r}" for r in rs if r in REASONS] if isinstance(rs, list) else []
        ks += [f"reply:sync:{k}" for k in ("snapshots", "restored") if k in rep and ks]
        return ks or ["reply:other"]
    if op == "done":
        return [f"reply:done:{rep['reason']}"] if rep.get("reason") in ("end", "stop") else ["reply:other"]
    if op == "error":
        return [f"reply:error:{rep['code']}"] if rep.get("code") in ERROR_CODES else ["reply:other"]
    return ["reply:other"]


# ---------------------------------------------------------------------------------------
# The stream


class Stream:
    """A SUB socket subscribed to everything, read by a thread until ``done`` (or until the
    stream has been idle for STREAM_IDLE_TIMEOUT_S).

    It is connected when the constructor returns (ZeroMQ's handshake with the node has
    succeeded, and its subscription goes out right after): the `owner` messages of takeovers
    at the start point are published before `started`, that is before `--wait-subscribers`
    waits, and only a subscriber already there gets them."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        monitor = self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            self.sock.connect(endpoint)
            assert monitor.poll(int(STREAM_IDLE_TIMEOUT_S * 1000), zmq.POLLIN), f"no handshake with {endpoint}"
            monitor.recv_multipart()
        finally:
            self.sock.disable_monitor()
            monitor.close(0)
        self.frames: list[list[bytes]] = []
        self.error: BaseException | None = None
        self.ended_by = "running"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            idle_since = time.monotonic()
            while True:
                if self.sock.poll(200, zmq.POLLIN):
                    frames = self.sock.recv_multipart()
                    self.frames.append(frames)
                    idle_since = time.monotonic()
                    if frames and frames[0] == b"done":
                        self.ended_by = "done"
                        return
                elif time.monotonic() - idle_since > STREAM_IDLE_TIMEOUT_S:
                    self.ended_by = f"idle for {STREAM_IDLE_TIMEOUT_S} s without `done`"
                    return
        except BaseException as e:  # reported by join()
            self.error = e
        finally:
            self.sock.close(0)

    def join(self) -> list[list[bytes]]:
        self._thread.join(STREAM_IDLE_TIMEOUT_S + 30)
        assert not self._thread.is_alive(), "the stream reader did not finish"
        if self.error:
            raise self.error
        return self.frames


def check_report(log: WireLog, where: str, msg: Any) -> None:
    """Rules of a sync report the schemas cannot state (README, "Sync points"): reasons of one
    step boundary coincide in NEURON's order (`at`, `init_2`, `every`, `end`; any other reason
    is a point of its own, which the schemas check), and a `spike` point's `t` is its spike's."""
    if not isinstance(msg, dict):
        return
    reasons = msg.get("reasons")
    if isinstance(reasons, list) and len(reasons) > 1:
        ranks = [BOUNDARY_ORDER.index(r) if r in BOUNDARY_ORDER else -1 for r in reasons]
        if -1 in ranks or ranks != sorted(ranks):
            log.violations["coinciding reasons in NEURON's order: at, init_2, every, end"].append(
                f"{where}: reasons {reasons}"
            )
    spike = msg.get("spike")
    if isinstance(spike, dict) and spike.get("t") != msg.get("t"):
        log.violations["a spike point's t is its spike's time"].append(f"{where}: t {msg.get('t')!r}, spike {spike}")


def body(report: dict) -> dict:
    """The report's fields the stream repeats: not the reply's `snapshots` and `restored`,
    which answer the request."""
    return {k: v for k, v in report.items() if k not in ("op", "id", "seq", "snapshots", "restored")}


def check_stream_syncs(log: WireLog, label: str, frames: list[list[bytes]], sync_points: list[dict]) -> None:
    """README, the state stream: `sync` at each sync point, with the fields of the sync report
    (without `id`).  Each sync point the controller saw must be on the stream, in order."""
    published = []
    for fr in frames:
        if len(fr) == 2 and fr[0] == b"sync":
            try:
                m = unpack(fr[1])
            except Exception:
                continue
            if isinstance(m, dict):
                published.append(body(m))
    want = [body(r) for r in sync_points]
    pending = list(published)
    for w in want:
        if w in pending:
            del pending[: pending.index(w) + 1]
            continue
        what = (
            f"{label}: the controller was told of the sync point {short(w, 400)}, but no `sync` stream "
            "message carries it (schemas/README.md, the state stream: `sync` at each sync point, "
            "with the fields of the sync report without `id`)"
        )
        log.violations["a stream `sync` for each sync point"].append(what)
        for r in w.get("reasons") or ["?"]:
            log.hints[f"pub:sync:{r}"].append(what)
    if len(published) > len(want):
        log.violations["a stream sync for each sync point, and no other"].append(
            f"{label}: {len(published)} stream syncs, {len(want)} sync points told to the controller"
        )


def record_stream(log: WireLog, label: str, frames: list[list[bytes]], state_kind: str, batch: int) -> None:
    seqs: list[int] = []
    signals: list[str] | None = None
    for i, fr in enumerate(frames):
        where = f"{label}: stream message #{i}"
        if len(fr) != 2:
            log.violations["two frames per stream message"].append(f"{where}: {len(fr)} frames {short(fr, 300)}")
            if len(fr) < 2:
                continue
        try:
            topic = fr[0].decode("ascii")
        except UnicodeDecodeError:
            log.violations["ASCII topic"].append(f"{where}: topic {fr[0]!r}")
            topic = repr(fr[0])
        try:
            msg = unpack(fr[1])
        except Exception as e:
            log.add("pub:other", None, fr[1], f"{where} (topic {topic!r}): not MessagePack: {e}")
            continue
        log.distinct[f"pub:{topic}"] += 1
        log.raw.append((f"{where} (topic {topic!r})", fr[1]))
        check_report(log, f"{where} (topic {topic!r})", msg)
        schema = PUB_SCHEMA.get(topic)
        if topic == "state":
            kinds = [state_kind]
        elif topic == "sync" and isinstance(msg, dict) and isinstance(msg.get("reasons"), list):
            kinds = [f"pub:sync:{r}" for r in msg["reasons"] if r in REASONS] or ["pub:other"]
        elif topic == "done" and isinstance(msg, dict) and msg.get("reason") in ("end", "stop"):
            kinds = [f"pub:done:{msg['reason']}"]
        elif topic in ("started", "spike", "owner", "hash", "restore"):
            kinds = [f"pub:{topic}"]
        else:
            kinds = ["pub:other"]
        for k in kinds:
            log.add(k, schema, msg, f"{where} (topic {topic!r})")
        if not isinstance(msg, dict):
            continue
        if isinstance(msg.get("seq"), int):
            seqs.append(msg["seq"])
        if topic == "started" and isinstance(msg.get("signals"), list):
            signals = msg["signals"]
        if topic == "state":
            lists = {k: v for k, v in msg.items() if k != "seq"}
            lengths = {k: len(v) for k, v in lists.items() if isinstance(v, list)}
            if len(set(lengths.values())) != 1 or not 1 <= next(iter(lengths.values()), 0) <= batch:
                log.violations["state lists of one length <= --pub-batch"].append(
                    f"{where}: lengths {lengths} (--pub-batch {batch})"
                )
            if signals is not None and set(lists) != {"step", "t", *signals}:
                log.violations["state keys are step, t and started.signals"].append(
                    f"{where}: keys {sorted(lists)}, started.signals {signals}"
                )
    if not frames or frames[-1][0] != b"done":
        log.violations["the stream ends with done"].append(f"{label}: last topic {frames[-1][0] if frames else None!r}")
    if not seqs or seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1][:5]
        log.violations["seq counts every message (no loss: nothing dropped)"].append(
            f"{label}: {len(seqs)} messages, first seq {seqs[:1]}, breaks {gaps}"
        )


# ---------------------------------------------------------------------------------------
# MessagePack as sent: the number types the README promises


# Counts (README, Transport): MessagePack unsigned integers in the smallest encoding; every
# other number a float 64, even when integral.  A field is a count by its name: a value under
# one of these keys, or an item of a list under one (`state`'s `step`, `schedule.init`);
# nothing under `values` (watched names are not field names).
COUNT_FIELDS = frozenset(
    {"id", "step", "protocol", "every", "scatter_gather", "init", "seq", "published", "hash_every", "exchanges",
     "snapshots", "restored", "snapshot", "bytes"}
)
# Where nil stands for an absent value.
NIL_FIELDS = frozenset({"id", "spike", "owner", "previous", "error"})


@dataclass
class Scalar:
    path: tuple  # map keys (str) and list indices (int) from the top
    fmt: int  # the format byte
    value: Any


def msgpack_scalars(data: bytes) -> list[Scalar]:
    """Every scalar of one MessagePack value, with its path and its format byte, read from the
    bytes (a decoder would not tell float 32 from 64, nor 5 from 5.0).  Map keys must be str
    (else ValueError, as for anything that is not one complete MessagePack value)."""
    out: list[Scalar] = []
    i = 0

    def take(n: int) -> bytes:
        nonlocal i
        if i + n > len(data):
            raise ValueError(f"truncated at byte {i}")
        b = data[i : i + n]
        i += n
        return b

    def uint(n: int) -> int:
        return int.from_bytes(take(n), "big")

    def read(path: tuple, as_key: bool = False) -> Any:
        m = take(1)[0]
        if m <= 0x7F or m >= 0xE0:
            v: Any = m if m <= 0x7F else m - 0x100
        elif 0xA0 <= m <= 0xBF or m in (0xD9, 0xDA, 0xDB):
            n = m & 0x1F if m <= 0xBF else uint({0xD9: 1, 0xDA: 2, 0xDB: 4}[m])
            v = take(n).decode("utf-8")
        elif as_key:
            raise ValueError(f"{path}: a map key of format 0x{m:02x}, not a str")
        elif 0x80 <= m <= 0x8F or m in (0xDE, 0xDF):
            n = m & 0x0F if m <= 0x8F else uint(2 if m == 0xDE else 4)
            for _ in range(n):
                k = read(path, as_key=True)
                read(path + (k,))
            return None
        elif 0x90 <= m <= 0x9F or m in (0xDC, 0xDD):
            n = m & 0x0F if m <= 0x9F else uint(2 if m == 0xDC else 4)
            for k in range(n):
                read(path + (k,))
            return None
        elif m in (0xCC, 0xCD, 0xCE, 0xCF):
            v = uint({0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[m])
        elif m in (0xD0, 0xD1, 0xD2, 0xD3):
            v = int.from_bytes(take({0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[m]), "big", signed=True)
        elif m == 0xCA:
            v = struct.unpack(">f", take(4))[0]
        elif m == 0xCB:
            v = struct.unpack(">d", take(8))[0]
        elif m in (0xC0, 0xC2, 0xC3):
            v = {0xC0: None, 0xC2: False, 0xC3: True}[m]
        elif m in (0xC4, 0xC5, 0xC6):
            v = take(uint({0xC4: 1, 0xC5: 2, 0xC6: 4}[m]))
        else:  # ext types, 0xc1
            raise ValueError(f"{path}: format 0x{m:02x} has no place in the protocol")
        if not as_key:
            out.append(Scalar(path, m, v))
        return v

    read(())
    if i != len(data):
        raise ValueError(f"{len(data) - i} bytes after the message")
    if not data or not (0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)):
        raise ValueError("not a map")
    return out


def smallest_uint_format(n: int) -> int:
    if n <= 0x7F:
        return n  # positive fixint: the format byte is the value
    return 0xCC if n <= 0xFF else 0xCD if n <= 0xFFFF else 0xCE if n <= 0xFFFFFFFF else 0xCF


def field_of(path: tuple) -> tuple[str | None, bool]:
    """The name of the field a scalar belongs to (its key, or the key of the list holding it),
    and whether it sits under a `values` map."""
    keys = [p for p in path if isinstance(p, str)]
    return (keys[-1] if keys else None), "values" in keys[:-1]


def number_type_faults(data: bytes, seen: Counter) -> list[str]:
    """What in one node message breaks the README's number types; ``seen`` counts what was
    checked (so that a test can tell it saw every case)."""
    try:
        scalars = msgpack_scalars(data)
    except (ValueError, UnicodeDecodeError) as e:
        return [f"not one MessagePack map with str keys: {e}"]
    faults = []
    for x in scalars:
        name, in_values = field_of(x.path)
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in x.path)
        if x.fmt in (0xC4, 0xC5, 0xC6):
            faults.append(f"{where}: bin (0x{x.fmt:02x}) where the README promises UTF-8 str")
        elif x.value is None:
            seen[f"nil {name}"] += 1
            if name not in NIL_FIELDS:
                faults.append(f"{where}: nil, which stands only for an absent {'/'.join(sorted(NIL_FIELDS))}")
        elif isinstance(x.value, bool) or isinstance(x.value, (str, bytes)):
            continue
        elif name in COUNT_FIELDS and not in_values:
            if not isinstance(x.value, int) or x.value < 0 or x.fmt != smallest_uint_format(x.value):
                faults.append(
                    f"{where}: a count sent as 0x{x.fmt:02x} ({x.value!r}); the README wants an unsigned "
                    f"integer in the smallest encoding (0x{smallest_uint_format(int(abs(x.value))):02x})"
                )
            else:
                seen["count " + ("fixint" if x.fmt <= 0x7F else f"0x{x.fmt:02x}")] += 1
        elif x.fmt != 0xCB:
            faults.append(f"{where}: a number sent as 0x{x.fmt:02x} ({x.value!r}); the README wants a float 64 (0xcb)")
        else:
            seen["float 64 integral" if float(x.value).is_integer() else "float 64"] += 1
    return faults


# ---------------------------------------------------------------------------------------
# The controller side


def cont(*actions: dict) -> dict:
    return {"op": "continue", "actions": list(actions)}


def set_(name: str, value: float) -> dict:
    return {"op": "set", "name": name, "value": value}


def event(target: str, t: float, weight: float | None = None) -> dict:
    a = {"op": "event", "target": target, "t": t}
    if weight is not None:
        a["weight"] = weight
    return a


def schedule(**fields: Any) -> dict:
    return {"op": "schedule", **fields}


def watch(**fields: Any) -> dict:
    return {"op": "watch", **fields}


STOP = {"op": "stop"}


def valid_request(msg: Any) -> bool:
    """Whether ``msg`` is a valid request: valid by the schema of its ``op`` (a map whose
    ``op`` is no request is valid by none)."""
    schema = REQUEST_SCHEMA.get(msg.get("op")) if isinstance(msg, dict) else None
    return schema is not None and schema_validator(schema).is_valid(msg)


class Session:
    """A REQ socket to one node, named ``client`` on every request it sends, that records
    every request and reply in the log.  The sessions of one node share ``sync_points``."""

    def __init__(
        self, log: WireLog, label: str, ctx: zmq.Context, endpoint: str, client: str, sync_points: list[dict]
    ) -> None:
        self.log = log
        self.label = f"{label} ({client})"
        self.client = client
        self.unix = endpoint.startswith("unix://")
        self.sock = open_control(ctx, endpoint, zmq.REQ, REPLY_TIMEOUT_MS)
        self.next_id = 1
        self.done = False
        # The sync points the node's controllers were told of, in order: the start point (the
        # first hello's pending), then each sync reply; the stream must carry each one.
        self.sync_points = sync_points

    def close(self) -> None:
        if self.unix:
            self.sock.close()
        else:
            self.sock.close(0)

    def _exchange(self, data: bytes, what: str) -> Any:
        if self.unix:
            unix_send(self.sock, data)
            try:
                frames = [unix_recv(self.sock)]
            except TimeoutError:
                raise AssertionError(f"{self.label}: no reply within {REPLY_TIMEOUT_MS} ms to {what}") from None
            except ConnectionError:
                raise AssertionError(f"{self.label}: the node closed the connection instead of answering {what}") from None
        else:
            self.sock.send(data)
            replied = self.sock.poll(REPLY_TIMEOUT_MS, zmq.POLLIN)
            assert replied, f"{self.label}: no reply within {REPLY_TIMEOUT_MS} ms to {what}"
            frames = self.sock.recv_multipart()
        if len(frames) != 1:
            self.log.violations["one frame per reply"].append(f"{self.label}: {len(frames)} frames answering {what}")
        try:
            rep = unpack(frames[-1])
        except Exception as e:
            rep = frames[-1]
            self.log.add("reply:other", None, rep, f"{self.label}: reply to {what}: not MessagePack: {e}")
            return rep
        where = f"{self.label}: reply to {what}"
        self.log.distinct[f"reply:{rep.get('op') if isinstance(rep, dict) else '?'}"] += 1
        self.log.raw.append((where, frames[-1]))
        check_report(self.log, where, rep)
        if isinstance(rep, dict) and isinstance(rep.get("pending"), dict):
            check_report(self.log, f"{where}, its `pending`", rep["pending"])
        for k in reply_kinds(rep):
            self.log.add(k, REPLY_SCHEMA.get(rep.get("op")) if isinstance(rep, dict) else None, rep, where)
        if isinstance(rep, dict) and rep.get("op") == "hello" and isinstance(rep.get("pending"), dict):
            pending = rep["pending"]
            for k in reply_kinds(pending):
                self.log.add(k, "sync.reply", pending, f"{where}, its `pending`")
            if not self.sync_points:
                self.sync_points.append(pending)
        if isinstance(rep, dict) and rep.get("op") == "sync":
            self.sync_points.append(rep)
        if isinstance(rep, dict) and rep.get("op") == "done":
            self.done = True
        return rep

    def request(self, msg: dict, expect: str | tuple[str, ...] | None = None, note: str = "") -> Any:
        """Send an honest request (it must validate against its request schema) and return the
        reply.  ``expect``: the reply kinds it is meant to provoke (e.g. ``"reply:error:unknown_name"``
        or ``("reply:sync", "reply:done:end")``, matched as prefixes)."""
        if "id" not in msg:
            msg = {**msg, "id": self.next_id}
            self.next_id += 1
        if "client" not in msg:
            msg = {**msg, "client": self.client}
        op = msg.get("op")
        schema = REQUEST_SCHEMA[op]
        errs = conformance_errors(schema, msg, strict=False)
        assert not errs, f"{self.label}: the test's own request does not conform: {short(msg)}\n" + "\n".join(errs)
        self.log.add(f"request:{op}", schema, msg, f"{self.label}: sent")
        for i, a in enumerate(msg.get("actions") or []):
            aerrs = conformance_errors("action", a, strict=False)
            assert not aerrs, f"{self.label}: action {i} of the test's own request does not conform: {a!r}\n" + (
                "\n".join(aerrs)
            )
            self.log.add(f"request:action:{a['op']}", "action", a, f"{self.label}: sent in {short(msg, 300)}")
        rep = self._exchange(pack(msg), short(msg, 300))
        # A message over --max-message is not read at all, so its id cannot be (README: null then).
        unread = isinstance(rep, dict) and rep.get("code") == "too_large" and rep.get("id") is None
        if isinstance(rep, dict) and rep.get("id") != msg["id"] and not unread:
            self.log.violations["a reply echoes the request's id"].append(
                f"{self.label}: request id {msg['id']}, reply id {rep.get('id')!r}: "
                f"{short(msg, 300)} -> {short(rep, 300)}"
            )
        self._expect(expect, msg, rep, note)
        return rep

    def malformed(self, msg: Any, expect: str, note: str = "") -> Any:
        """Send a request that is deliberately not valid by the request schemas (the node must
        refuse it); a map is checked to be schema-invalid before it is sent."""
        if isinstance(msg, bytes):
            data, what = msg, f"bytes {msg[:40]!r}"
        else:
            schema = REQUEST_SCHEMA.get(msg.get("op")) if isinstance(msg, dict) else None
            assert not valid_request(msg), (
                f"{self.label}: a request meant to be malformed validates against {schema}: {short(msg)}"
            )
            where = f"{self.label}: sent ({note or expect})"
            self.log.add("request:malformed", schema, msg, where, must_be_valid=False)
            data, what = pack(msg), short(msg, 300)
        rep = self._exchange(data, what)
        if isinstance(rep, dict):
            sent_id = msg.get("id") if isinstance(msg, dict) else None
            readable = isinstance(sent_id, int) and not isinstance(sent_id, bool) and sent_id >= 0
            if rep.get("id") is not None and (not readable or rep["id"] != sent_id):
                self.log.violations["a reply echoes the request's id (null if unreadable)"].append(
                    f"{self.label}: sent id {sent_id!r}, reply id {rep.get('id')!r}: {what} -> {short(rep, 300)}"
                )
        self._expect(expect, msg, rep, note)
        return rep

    def _expect(self, expect: str | tuple[str, ...] | None, msg: Any, rep: Any, note: str) -> None:
        if expect is None:
            return
        wants = (expect,) if isinstance(expect, str) else expect
        got = reply_kinds(rep)
        if not any(k.startswith(w) for w in wants for k in got):
            self.log.missed[wants[0]].append(
                f"{self.label}: {note + ': ' if note else ''}sent {short(msg, 300)}, expected {' or '.join(wants)}, "
                f"got {short(rep, 500)}"
            )


def t_of(rep: Any) -> float:
    return float(rep["t"]) if isinstance(rep, dict) and isinstance(rep.get("t"), (int, float)) else 0.0


def is_sync(rep: Any) -> bool:
    return isinstance(rep, dict) and rep.get("op") == "sync"


def reasons_of(rep: Any) -> list[str]:
    return list(rep.get("reasons") or []) if isinstance(rep, dict) else []


# ---------------------------------------------------------------------------------------
# The three runs


def drive_seed(s: Session, s2: Session) -> None:
    """Seed model to tstop = 50 ms: every request and error kind, sync points of every reason
    (the four FInitializeHandler types, spikes of a section and of a NetStim, scatter_gather,
    at, every, end), takeovers back and forth between two clients (the `owner` topic, with
    and without a previous owner), `not_owner`, the `end` point and `done`."""
    s.request({"op": "hello", "protocol": 2}, "reply:hello", "hello before anyone owns the run")
    s.request({"op": "hello", "protocol": 1}, "reply:error:protocol_mismatch")
    s.request({"op": "hello", "protocol": 0, "id": 77}, "reply:error:protocol_mismatch")
    s.request({"op": "hello", "protocol": 3, "takeover": True}, "reply:error:protocol_mismatch", "a takeover of v3")
    s.request({"op": "get", "names": ["ns.interval", "soma.v", "soma(0.5).v", "syn.g", "dt"]}, "reply:values")
    s.request({"op": "get", "names": []}, "reply:values", "an empty get")
    s.request({"op": "get", "names": ["soma.nope"]}, "reply:error:unknown_name")
    # Takeovers at the start point: s2 takes the run nobody owns, then s takes it back.
    s2.request({"op": "hello", "protocol": 2, "takeover": True}, "reply:hello", "a takeover of an unowned run")
    s.request(cont(schedule(every=1)), "reply:error:not_owner", "a continue while s2 owns the run")
    s.request({"op": "hello", "protocol": 2, "takeover": True}, "reply:hello", "taking the run back")
    s2.request({"op": "hello", "protocol": 2}, "reply:hello", "a reader's hello")

    # bad_message: not MessagePack, not a map, fields of the wrong type or missing.
    s.malformed(b"\xc1 this is not MessagePack", "reply:error:bad_message")
    s.malformed(msgpack.packb([1, 2, 3]), "reply:error:bad_message", "an array, not a map")
    s.malformed(msgpack.packb("continue"), "reply:error:bad_message", "a string, not a map")
    s.malformed({"op": "get", "id": 101, "names": "soma.v"}, "reply:error:bad_message", "names as a string")
    s.malformed({"op": "hello", "id": 102}, "reply:error:bad_message", "hello without protocol")
    s.malformed({"op": "continue", "id": 103, "actions": "all of them"}, "reply:error:bad_message")
    s.malformed(cont(set_("ns.interval", "fast")) | {"id": 104}, "reply:error:bad_message", "a string value")
    s.malformed(cont(schedule(every=1.5)) | {"id": 105}, "reply:error:bad_message", "a fractional every")
    s.malformed(cont(schedule(every=-1)) | {"id": 106}, "reply:error:bad_message", "a negative every")
    s.malformed(cont(watch(spikes=1)) | {"id": 107}, "reply:error:bad_message", "spikes as a number")
    s.malformed(cont({"op": "event", "target": "syn"}) | {"id": 108}, "reply:error:bad_message", "an event without t")
    s.malformed({"op": "continue", "id": "seven"}, "reply:error:bad_message", "an id that is a string")
    s.malformed({"op": "continue", "id": 109, "action": []}, "reply:error:bad_message", "an unknown field")
    s.malformed(cont(schedule(init=True)) | {"id": 112}, "reply:error:bad_message", "init as a bool (protocol 1)")
    s.malformed(cont(schedule(init=[-1])) | {"id": 113}, "reply:error:bad_message", "a negative init type")
    s.malformed(cont(schedule(scatter_gather=0.5)) | {"id": 114}, "reply:error:bad_message", "a fractional count")
    s.malformed({"op": "get", "id": 115, "names": [], "client": ""}, "reply:error:bad_message", "an empty client")
    s.malformed({"op": "get", "id": 116, "names": [], "client": "c" * 65}, "reply:error:bad_message", "65 chars")
    s.malformed({"op": "hello", "id": 117, "protocol": 2, "client": "a\nb"}, "reply:error:bad_message", "a newline")
    s.malformed({"op": "hello", "id": 118, "protocol": 2, "takeover": "yes"}, "reply:error:bad_message")
    # unknown_op
    s.malformed({"op": "jump", "id": 110}, "reply:error:unknown_op")
    s.malformed(cont({"op": "teleport"}) | {"id": 111}, "reply:error:unknown_op", "an unknown action")

    # Refused although schema-valid (examples/*.request/refused).
    s.request({"op": "hello", "protocol": 2, "client": "\u00e9" * 33}, "reply:error:bad_message", "66 bytes")
    s.request(cont(event("syn", 1.0, 0.1)), "reply:error:wrong_state", "an event at start")
    s.request(cont(schedule(init=[4])), "reply:error:invalid_value", "an FInitializeHandler type 4")
    s.request(cont(set_("syn.tau", -1.0)), "reply:error:invalid_value")
    s.request(cont(set_("syn.tau", 0)), "reply:error:invalid_value", "an integer 0")
    s.request(cont(schedule(remove_at=[77.0])), "reply:error:invalid_value", "removing an unscheduled time")
    s.request(cont(set_("soma.nseg", 3)), "reply:error:not_writable")
    s.request(cont(set_("soma.v", 1.0)), "reply:error:unknown_name", "setting a signal")
    s.request(cont(set_("ns.interval", 999.0), set_("nope", 1.0)), "reply:error:unknown_name")
    s.request(cont(schedule(on_spike=["nowhere"])), "reply:error:unknown_name")
    s.request(cont(watch(values=["soma.nope"])), "reply:error:unknown_name")
    s.request(cont(schedule(add_at=[-1.0])), "reply:error:event_in_past", "a negative time at start")

    watched = ["soma.v", "soma(0.5).v", "ns.interval", "syn.g", "nc.weight"]
    rep = s.request(
        cont(
            set_("ns.interval", 15.0),
            schedule(
                init=[0, 1, 2, 3], every=400, scatter_gather=500, add_at=[0.0, 12.5, 33.3], remove_at=[],
                on_spike=["soma", "ns"],
            ),
            watch(values=watched, spikes=True),
        ),
        "reply:sync:init_3",
        "schedule every kind of sync point",
    )  # fmt: skip
    owner, other = s, s2
    phase = 0
    for _ in range(MAX_SYNC_POINTS):
        if not is_sync(rep):
            break
        t, reasons = t_of(rep), reasons_of(rep)
        # Each kind of point as hello's `pending`, and a reader's get.
        owner.request({"op": "hello", "protocol": 2}, "reply:hello", "hello mid-run")
        other.request({"op": "get", "names": watched}, "reply:values", "a reader's get")
        actions: list[dict] = []
        expect: Any = "reply:sync"
        if "end" in reasons:
            owner.request(cont(event("syn", t + 1.0, 0.1)), "reply:error:wrong_state", "an event after the end point")
            expect = "reply:done:end"
        elif "init_3" in reasons:
            owner.request(cont(event("syn", 0.0, 0.01)), "reply:error:wrong_state", "an event at init_3")
        elif "init_0" in reasons:
            actions = [event("syn", 0.0, 0.01)]
        elif "init_2" in reasons:
            actions = [schedule(init=[])]
        elif phase == 0 and t >= 10.0:
            phase = 1
            owner.request(cont(event("syn", t - 1.0, 0.1)), "reply:error:event_in_past")
            owner.request(cont(set_("nc.weight", 0.5), event("syn", t - 0.5, 0.1)), "reply:error:event_in_past")
            owner.request(cont(schedule(add_at=[t - 1.0])), "reply:error:event_in_past", "add_at in the past")
            owner.request(cont(event("syn", t + 1.0)), "reply:error:invalid_value", "an event to a synapse, no weight")
            owner.request(cont(event("nope", t + 1.0, 0.1)), "reply:error:unknown_name")
            owner.request(cont(set_("soma.nseg", 2)), "reply:error:not_writable", "mid-run")
            actions = [
                event("syn", t + 0.5, 0.02),
                event("nc", t + 1.0),
                event("ns", t + 2.0, 1.0),
                schedule(remove_at=[33.3], add_at=[45.0, 47]),
                watch(spikes=False),
            ]
        elif phase == 1 and t >= 20.0:
            # The other client takes over; the previous owner is refused from now on.
            phase = 2
            other.request(cont(set_("nc.weight", 0.3)), "reply:error:not_owner", "the reader continues")
            other.request({"op": "hello", "protocol": 2, "takeover": True}, "reply:hello", "a takeover mid-run")
            owner.request(cont(), "reply:error:not_owner", "the previous owner continues")
            owner, other = other, owner
            actions = [watch(values=["soma.v", "syn.g"], spikes=True), set_("nc.weight", 0.12)]
        elif phase == 2 and t >= 30.0:
            phase = 3
            other.request({"op": "hello", "protocol": 2, "takeover": True}, "reply:hello", "taking the run back")
            owner, other = other, owner
            actions = [schedule(on_spike=[], remove_at=[47.0])]
        rep = owner.request(cont(*actions), expect)
    assert owner.done, f"{owner.label}: the run did not end with `done`: last reply {short(rep)}"


def drive_exp2syn(s: Session, s2: Session) -> None:
    """exp2syn.toml: spike to spike with events to a NetCon and to the Exp2Syn, then `stop`."""
    h = s.request({"op": "hello", "protocol": 2}, "reply:hello")
    params = [p["name"] for p in h.get("params", []) if isinstance(p, dict)]
    signals = list(h.get("signals", []))
    s.request({"op": "get", "names": params[:4] + signals[:4] + ["soma(0.5).v"]}, "reply:values")
    s.request(cont(set_("soma.nseg", 2)), "reply:error:not_writable")
    s.request(cont(event("nc1", 1.0)), "reply:error:wrong_state", "an event to a NetCon at start")
    rep = s.request(
        cont(
            set_("syn2.tau2", 6.0),
            schedule(on_spike=["vs", "soma"], every=0, init=[]),
            watch(values=["syn2.g", "syn2.A", "syn2.B", "soma.v"], spikes=True),
        ),
        "reply:sync:spike",
    )
    first = True
    for _ in range(MAX_SYNC_POINTS):
        if not is_sync(rep):
            break
        t = t_of(rep)
        s.request({"op": "hello", "protocol": 2}, "reply:hello", "hello mid-run")
        if t >= 35.0 or "end" in reasons_of(rep):
            rep = s.request(cont(STOP), "reply:done:stop")
            break
        actions: list[dict] = []
        if first:
            first = False
            actions = [event("nc1", t + 0.5), event("syn2", t + 1.0, 0.002), set_("nc1.weight", 0.005)]
        rep = s.request(cont(*actions), "reply:sync")
    assert s.done, f"{s.label}: the run did not end with `done`: last reply {short(rep)}"


def drive_max_message(s: Session, s2: Session) -> None:
    """--max-message 200: bigger (schema-valid) requests get `too_large`."""
    s.request({"op": "hello", "protocol": 2}, "reply:hello")
    big_get = {"op": "get", "id": 500, "names": ["soma.v"] * 40}
    assert len(msgpack.packb(big_get)) > 200
    s.request(big_get, "reply:error:too_large")
    big_cont = cont(watch(values=["soma(0.5).v"] * 30)) | {"id": 501}
    assert len(msgpack.packb(big_cont)) > 200
    s.request(big_cont, "reply:error:too_large")
    s.request({"op": "get", "names": ["soma.v"]}, "reply:values", "a small get still works")
    s.request(cont(STOP), "reply:done:stop")


def drive_snapshots(s: Session, s2: Session) -> None:
    """Snapshots, restore, discard, export, the state hash in reports and on the stream,
    telemetry, and their refusals; then `stop`."""
    s.request({"op": "hello", "protocol": 2}, "reply:hello")
    rep = s.request(
        cont(schedule(every=40), watch(values=["soma.v"], hash=True, hash_every=40, telemetry=True)), "reply:sync:every"
    )
    rep = s.request(cont({"op": "snapshot"}), "reply:sync:snapshots", "a snapshot")
    s.request({"op": "export", "snapshot": 0, "file": "zero.snap"}, "reply:exported")
    s2.request({"op": "export", "snapshot": 7, "file": "seven.snap"}, "reply:error:unknown_snapshot", "export, unknown")
    s.request({"op": "export", "snapshot": 0, "file": "taken"}, "reply:error:io_error", "a directory is in the way")
    s.request(cont({"op": "restore", "id": 9}), "reply:error:unknown_snapshot")
    s.request(cont(*[{"op": "snapshot"}] * 65), "reply:error:snapshot_limit", "65 snapshots, 64 allowed")
    s.request(cont({"op": "restore", "id": 0}, set_("syn.tau", 3.0)), "reply:error:invalid_value", "restore not last")
    rep = s.request(cont(), "reply:sync:every")
    rep = s.request(cont({"op": "restore", "id": 0}), "reply:sync:restored")
    s.request({"op": "hello", "protocol": 2}, "reply:hello", "hello holding a snapshot")
    s2.request({"op": "get", "names": ["soma.v"]}, "reply:values")
    rep = s.request(cont({"op": "discard", "id": 0}), "reply:sync:every")
    s.request(cont(STOP), "reply:done:stop")


@dataclass
class Run:
    label: str
    args: list[str]
    drive: Any
    state_kind: str | None = None  # with --pub: the kind of its state messages
    batch: int = 1


@pytest.fixture(scope="module", params=["zmq", "unix"])
def wire(request: pytest.FixtureRequest, spikebus_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> WireLog:
    """The three runs, their control channel over ZeroMQ (``zmq``: tcp, ipc, tcp) or over
    Unix sockets with length-prefixed frames (``unix``): every test below runs on both."""
    unix = request.param == "unix"
    log = WireLog()
    d = tmp_path_factory.mktemp("wire")
    ctl_ipc, short1 = ipc_endpoint(d, "ctl", prefix="sbw")
    pub_ipc, short2 = ipc_endpoint(d, "pub", prefix="sbw")

    def ctl_unix(name: str) -> str:
        # Beside the ipc sockets (a directory short enough for a socket path).
        return f"unix://{Path(ctl_ipc[len('ipc://') :]).parent / name}.sock"

    tcp = "tcp://127.0.0.1:0"
    runs = [
        Run(
            "seed/unix" if unix else "seed/tcp",
            ["--control", ctl_unix("seed") if unix else tcp, "--pub", tcp, "--wait-subscribers", "1",
             "--set", "soma.threshold=0", "--set", "tstop=50", "--out", d / "seed"],
            drive_seed, "pub:state:per-step", 1,
        ),
        Run(
            "exp2syn/unix" if unix else "exp2syn/ipc",
            [EXP2SYN, "--control", ctl_unix("exp2syn") if unix else ctl_ipc, "--pub", pub_ipc, "--wait-subscribers",
             "1", "--pub-batch", "7", "--out", d / "exp2syn"],
            drive_exp2syn, "pub:state:batched", 7,
        ),
        Run("seed/max-message" + ("/unix" if unix else ""),
            ["--control", ctl_unix("big") if unix else tcp, "--max-message", "200", "--out", d / "big"],
            drive_max_message),
        Run(
            "seed/snapshots",
            ["--control", "tcp://127.0.0.1:0", "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "1",
             "--set", "tstop=5", "--snapshot-dir", d / "snaps", "--out", d / "snapshots"],
            drive_snapshots, "pub:state:per-step", 1,
        ),
    ]  # fmt: skip
    (d / "snaps" / "taken").mkdir(parents=True)
    ctx = zmq.Context()
    try:
        for run in runs:
            node = make_node(spikebus_bin, run.args).start()
            stream = None
            sessions: list[Session] = []
            try:
                if run.state_kind:
                    stream = Stream(ctx, node.pub)  # before the controller: --wait-subscribers 1
                points: list[dict] = []
                sessions = [Session(log, run.label, ctx, node.control, c, points) for c in ("wire-a", "wire-b")]
                run.drive(*sessions)
                # The node lingers after `done` while a controller is connected: it must exit
                # at once when they are gone (the default --linger is 5 s).
                for x in sessions:
                    x.close()
                closed = time.monotonic()
                rc = node.wait(NODE_EXIT_TIMEOUT_S)
                if rc != 0:
                    log.violations["the node exits 0 after done"].append(
                        f"{run.label}: status {rc}: {node.stderr[-2000:]}"
                    )
                if time.monotonic() - closed > LINGER_BOUND_S:
                    log.violations["the node exits once no controller is connected"].append(
                        f"{run.label}: exited {time.monotonic() - closed:.1f} s after its controllers disconnected"
                    )
                if stream is not None:
                    frames = stream.join()
                    record_stream(log, run.label, frames, run.state_kind, run.batch)
                    check_stream_syncs(log, run.label, frames, points)
            finally:
                for x in sessions:
                    x.close()
                node.kill()
    finally:
        ctx.term()
        import shutil

        for sd in (short1, short2):
            if sd:
                shutil.rmtree(sd, ignore_errors=True)
    return log


# ---------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_node_message_conforms(kind: str, wire: WireLog) -> None:
    """Every node message of this kind validates against its schema (and at least one was seen)."""
    seen = wire.seen.get(kind, [])
    assert seen, f"no {kind} message was seen: the test failed to provoke one. " + (
        "; ".join(wire.missed.get(kind, []) + wire.hints.get(kind, [])) or "(no request expected it)"
    )
    bad = []
    for x in seen:
        errs = conformance_errors(x.schema, x.message)
        if errs:
            bad.append(f"- {x.where}\n  message: {short(x.message)}\n  " + "\n  ".join(errs))
    assert not bad, f"{len(bad)} of {len(seen)} {kind} messages do not conform:\n" + "\n".join(bad[:10])


@pytest.mark.parametrize("kind", REQUEST_KINDS)
def test_requests_sent_are_honest(kind: str, wire: WireLog) -> None:
    """The test's own requests of this kind validate against their schemas (the malformed
    ones deliberately do not)."""
    seen = wire.seen.get(kind, [])
    assert seen, f"no {kind} request was sent"
    for x in seen:
        ok = valid_request(x.message) if x.kind.startswith("request:") and "action:" not in x.kind else (
            schema_validator(x.schema).is_valid(x.message)
        )
        assert ok == x.must_be_valid, (
            f"{x.where}: {short(x.message)} is {'' if ok else 'not '}valid by {x.schema or 'any request schema'}"
        )


def test_provocations_got_what_they_expected(wire: WireLog) -> None:
    """Each request got the kind of reply it was built to provoke."""
    missed = [m for ms in wire.missed.values() for m in ms]
    assert not missed, f"{len(missed)} requests got another reply than expected:\n" + "\n".join(missed)


def test_no_unrecognized_messages(wire: WireLog) -> None:
    """No reply or stream message of an op, topic, reason or code that protocol v2 lacks."""
    other = wire.seen.get("reply:other", []) + wire.seen.get("pub:other", [])
    assert not other, "\n".join(f"- {x.where}: {short(x.message)}" for x in other[:10])


def test_wire_rules_beyond_the_schemas(wire: WireLog) -> None:
    """README rules JSON Schema cannot express: replies echo the request id, one frame per
    reply and two per stream message, state lists of equal length keyed by the started
    signals, consecutive seq, a stream `sync` for each sync point (the report's fields), the
    stream ends with done, the node exits 0."""
    bad = [f"{rule}: {v}" for rule, vs in wire.violations.items() for v in vs]
    assert not bad, f"{len(bad)} violations:\n" + "\n".join(bad[:30])


def test_messagepack_number_types(wire: WireLog) -> None:
    """README, Transport: in every node message, counts (`id`, `step`, `protocol`, `every`,
    `scatter_gather`, `init` types, `seq`, `published`) are MessagePack unsigned
    integers in the smallest encoding; every other number is a float 64 (0xcb), never a float
    32 nor an integer, even when integral (`t` = 0.0, `tstop` = 50.0, a parameter of 15.0);
    absent values are nil (`id`, `spike`, `owner`, `error`, and the owner topic's `previous`); strings
    are str, never bin.  Checked on the bytes as they came."""
    seen: Counter = Counter()
    bad = []
    for where, data in wire.raw:
        faults = number_type_faults(data, seen)
        if faults:
            bad.append(f"- {where}:\n  " + "\n  ".join(faults[:5]))
    assert not bad, f"{len(bad)} of {len(wire.raw)} node messages break the number types:\n" + "\n".join(bad[:10])
    print(f"{len(wire.raw)} node messages, scalars checked: {dict(sorted(seen.items()))}")
    # Every case was met: counts of one and of two bytes (steps and seqs past 255), integral
    # floats, and each nil the README names.
    for case in ("count fixint", "count 0xcc", "count 0xcd", "float 64", "float 64 integral",
                 "nil id", "nil spike", "nil owner", "nil previous"):  # fmt: skip
        assert seen[case] > 0, f"no {case} was checked: {dict(seen)}"


def test_number_type_check_can_fail() -> None:
    """The check above refuses what a careless encoder sends: a step as a float or a signed or
    oversized integer, a time as an integer or a float 32, bin for str, nil elsewhere."""
    good = msgpack.packb({"op": "sync", "id": None, "t": 0.0, "step": 300, "values": {"soma.v": -65.0}})
    assert number_type_faults(good, Counter()) == []
    for bad in (
        msgpack.packb({"step": 3.0}),
        b"\x81\xa4step\xd0\x05",  # int 8
        b"\x81\xa4step\xcd\x00\x05",  # uint 16 for 5
        msgpack.packb({"t": 0}),
        msgpack.packb({"t": 1.5}, use_single_float=True),
        msgpack.packb({"values": {"step": 1}}),
        msgpack.packb({"node": b"spikebus"}, use_bin_type=True),
        msgpack.packb({"t": None}),
        msgpack.packb({1: 2}),
    ):
        assert number_type_faults(bad, Counter()), bad


def test_report_counts(wire: WireLog) -> None:
    """Print how many messages of each kind were validated (pytest -rP shows it)."""
    print("messages validated, by kind (a sync report with n reasons counts under each):")
    for kind in REQUEST_KINDS + NODE_KINDS:
        print(f"  {kind:32s} {len(wire.seen.get(kind, [])):6d}")
    print("distinct messages:", dict(sorted(wire.distinct.items())))
