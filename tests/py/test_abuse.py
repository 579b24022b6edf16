"""Abuse: hundreds of malformed messages sent to a waiting node; each is answered with an
``error`` and changes nothing, and the seed controller's run is still bitwise NEURON's.

The node is ``spikebus run --control tcp://127.0.0.1:0 --set soma.threshold=0 --out d``, or
``--control unix://PATH`` (the default ``--max-message``, 1 MiB).  Malformed messages are
generated with a seeded RNG: the seed is printed and put into every failure message, and
``SPIKEBUS_ABUSE_SEED=N`` replays it.
They are:

- at the ``start`` point, before any controller action: a burst of at least ``START_BURST``;
- mid-run, while an in-test controller runs the seed program (the callback of
  ``examples-py/seed_interval.py``: ``schedule scatter_gather=1``, ``watch ns.interval``, and
  at each sync point with ``int(t) % 50 == 0`` set ``ns.interval`` to the watched value + 10):
  a burst of at least ``RUN_BURST`` between two ``continue`` requests at each step of
  ``BURST_STEPS`` (a ``scatter_gather`` point, inside the step).

The malformed messages carry the controller's ``client`` name (``CLIENT``) where they are
maps: they come from the run's owner, so that each is refused for its own fault, not for its
sender (a ``continue`` from anyone else is refused with ``not_owner`` before its actions are
looked at; that is a kind of its own, sent mid-run).

Each burst starts from a catalogue, every kind of garbage (``KINDS``) with every option of
each of its choices at least once (about 240 messages; the values that depend on the point,
such as times in the past, are the point's), and is filled up with random kinds:
random bytes, truncated and bit-flipped valid requests, valid requests with bytes after them,
MessagePack values that are not maps, maps with missing, mistyped and unknown fields, unknown
ops, NaN and infinities, negative and huge numbers, numbers sent as strings, nesting 50 to
5000 levels deep, strings up to 900 kB, messages over (and exactly at) the 1 MiB limit,
multi-frame messages, other protocol versions (a takeover among them), events and sync times
in the past, unknown names, a structural parameter (``soma.nseg``), ``stop`` followed by a bad
action, ``client`` names that are empty, too long or hold control characters, ``takeover``,
``init`` and ``scatter_gather`` of the wrong type, FInitializeHandler types outside 0 to 3,
continues from a client that does not own the run.

For each message (schemas/README.md):

- exactly one reply comes, and it is an ``error`` (valid against ``error.reply``) whose code
  is in the spec's table and, where the spec determines it, the right one (``too_large`` for a
  message over the limit, ``protocol_mismatch`` for another version, ``bad_message`` for what
  is not MessagePack or not a map, ``not_writable`` for ``soma.nseg``, ``not_owner`` for
  another client's ``continue``...), and whose ``id`` is
  the request's where the request has a readable one (``null`` where it has none);
- the state ``hash`` of a ``get`` sent right after it is the one before the burst (and
  ``hello``, ``id`` aside, is identical before and after the burst).

The test runs on both control transports (``[zmq]``, ``[unix]``).  Over ZeroMQ the messages
are sent on a DEALER socket with REQ's envelope (an empty delimiter frame; on the wire the
same as a REQ socket), over the Unix socket in length-prefixed frames on one connection; either
way a second reply to a message would be received in place of the reply to the ``get`` that
follows it.  (Multi-frame messages are ZeroMQ's: not sent over the Unix socket.)  Generated messages that might be valid
requests (for the random kinds: a map whose ``op`` is ``hello``, ``get`` or ``continue``, as
str or bin, or 0, 1 or 2, which a decoder might read as variant indices) are discarded.
Every ``continue`` of the catalogue ends with a surely wrong action (an unknown parameter):
the first fault is still the expected one, and a node that wrongly took the actions before
it for valid refuses the request all the same (the wrong code is reported and the run goes
on unharmed).  Where the spec leaves the validity to the node (a huge but finite value, an
event at time 1e308), the surely wrong action's ``unknown_name`` is accepted too.

Replies other than the expected error are collected and reported together at the end (by
kind, with the first occurrence); a reply that shows the node ran (``sync``, ``done``), a
changed hash, or a missing reply fails at once.

At the end, ``traces.csv`` and ``spikes.csv`` equal ``tests/golden/seed_interval.json`` bit
for bit, and the final ``ns.interval`` is NEURON's.  Nothing sleeps; every wait is bounded.
"""

from __future__ import annotations

import math
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import msgpack
import pytest
import zmq

from helpers import ERROR_CODES, Golden, assert_matches_golden, bits, load_golden, open_control, unix_recv, unix_send, unpack
from helpers import pack as P
from schemas_util import validator

REPLY_TIMEOUT_MS = 30_000
NODE_EXIT_TIMEOUT = 60.0
MAX_MESSAGE = 1 << 20  # the node's default --max-message
START_BURST = 500
RUN_BURST = 100
BURST_STEPS = (0, 5000, 12345)
CLIENT = "abuse-ctl"  # the controller's name: the run's owner
SEED_STEPS = 20_000
DT = 0.025

ANY = frozenset(ERROR_CODES)
# The requests' ops, and what a lenient decoder might take for them (serde reads a variant
# from its index too): random garbage that decodes to a map with one of these is not sent.
VALID_OPS = {b"hello", b"get", b"continue", 0, 1, 2}

_env_seed = os.environ.get("SPIKEBUS_ABUSE_SEED")
SEED = int(_env_seed) if _env_seed else random.SystemRandom().randrange(1 << 32)

ERROR_REPLY = validator("error.reply")


def could_be_valid(data: bytes) -> bool:
    """Conservatively: might the node take ``data`` for a valid request?  (A map whose op is
    a request's, as str or bin: the node accepts both.)"""
    try:
        obj = msgpack.unpackb(data, raw=True, strict_map_key=False)
    except Exception:
        return False
    return isinstance(obj, dict) and obj.get(b"op") in VALID_OPS


def codes_by_first_byte(data: bytes) -> frozenset[str]:
    """The acceptable codes for garbage: a message that does not start with a map header is
    surely not a map (bad_message); one that does may fail in any way."""
    return ANY if data and (0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)) else frozenset({"bad_message"})


# ---------------------------------------------------------------------------------------
# Malformed messages


@dataclass
class Bad:
    kind: str
    frames: list[bytes]
    codes: frozenset[str]  # the acceptable error codes
    ids: tuple[int | None, ...] | None  # the acceptable reply ids (None: any)

    def describe(self) -> str:
        size = sum(map(len, self.frames))
        head = self.frames[0][:64] if self.frames else b""
        return f"{self.kind} ({len(self.frames)} frame(s), {size} bytes, starting {head!r})"


@dataclass
class Point:
    """Where the node is paused: the start point, or a sync point at step/t."""

    start: bool
    step: int
    t: float


SENTINEL = {"op": "set", "name": "no_such.param", "value": 1.0}  # surely unknown_name


class Gen:
    """Builders of malformed messages, one per kind, for a given point."""

    def __init__(self, rng: random.Random, point: Point, next_id: Callable[[], int]) -> None:
        self.rng = rng
        self.pt = point
        self.next_id = next_id
        # pick(): per call site, the options not yet drawn in this round, and whether a
        # round has been completed; the call sites used since touched was cleared.
        self._left: dict[tuple[str, int], list[int]] = {}
        self.cycled: dict[tuple[str, int], bool] = {}
        self.touched: set[tuple[str, int]] = set()

    def pick(self, options: Sequence[Any]) -> Any:
        """One of ``options``, drawn without replacement per call site (the caller's line):
        calling a kind len(options) times sends every option once (see make_burst)."""
        f = sys._getframe(1)
        key = (f.f_code.co_name, f.f_lineno)
        left = self._left.get(key)
        if not left:
            left = list(range(len(options)))
            self.rng.shuffle(left)
            self._left[key] = left
            self.cycled.setdefault(key, False)
        i = left.pop()
        if not left:
            self.cycled[key] = True
        self.touched.add(key)
        return options[i]

    # -- helpers -----------------------------------------------------------------------

    def one(self, kind: str, msg: Any, codes: Any, with_id: bool = True, ids: Any = "echo") -> Bad:
        """A structured request: a map (``id`` added, and the owner's ``client`` unless it
        has one) packed as is."""
        i = None
        if isinstance(msg, dict) and "client" not in msg:
            msg = {**msg, "client": CLIENT}
        if with_id and isinstance(msg, dict):
            i = self.next_id()
            msg = {**msg, "id": i} if self.rng.random() < 0.5 else {"id": i, **msg}
        codes = frozenset([codes] if isinstance(codes, str) else codes)
        if ids == "echo":
            ids = (i,)
        return Bad(kind, [P(msg)], codes, ids)

    def cont(self, kind: str, actions: list[Any], codes: Any, lenient: bool = False) -> Bad:
        """A continue with these actions, and the sentinel (an unknown parameter) after them,
        so that a node that wrongly took them for valid refuses the request all the same
        (with unknown_name: the check of the code then fails, but the run goes on unharmed).
        ``lenient``: the spec leaves the actions' validity to the node, so unknown_name (the
        sentinel's) is acceptable too."""
        codes = set([codes] if isinstance(codes, str) else codes)
        if lenient:
            codes.add("unknown_name")
        return self.one(kind, {"op": "continue", "actions": [*actions, SENTINEL]}, codes)

    def past(self) -> float:
        """A time before the current one."""
        t = self.pt.t
        return self.pick([t - 1.0, math.nextafter(t, -math.inf), t - 100.0, -1.0, -1e308])

    def past_codes(self, x: float) -> frozenset[str]:
        # A negative time may also be called an invalid value.
        return frozenset({"event_in_past"} | ({"invalid_value"} if x < 0 else set()))

    def valid_requests(self) -> list[dict[str, Any]]:
        """Valid requests at this point (to truncate and to flip bits in: never sent as is)."""
        i = self.next_id()
        reqs: list[dict[str, Any]] = [
            {"op": "hello", "id": i, "client": CLIENT, "protocol": 2},
            {"op": "hello", "id": i, "client": CLIENT, "protocol": 2, "takeover": True},
            {"op": "get", "id": i, "names": ["ns.interval", "soma.v", "syn.g"]},
            {"op": "continue", "id": i, "actions": []},
            {"op": "continue", "id": i, "actions": [{"op": "set", "name": "ns.interval", "value": 30.0}]},
            {
                "op": "continue",
                "id": i,
                "actions": [
                    {
                        "op": "schedule",
                        "every": 1,
                        "scatter_gather": 3,
                        "init": [0, 2],
                        "add_at": [self.pt.t + 100.0],
                        "on_spike": ["soma"],
                    },
                    {"op": "watch", "values": ["soma.v", "ns.interval"], "spikes": True},
                ],
            },
            {"op": "continue", "id": i, "actions": [{"op": "stop"}]},
        ]
        if not self.pt.start:
            reqs.append(
                {
                    "op": "continue",
                    "id": i,
                    "actions": [{"op": "event", "target": "syn", "t": self.pt.t + 1.0, "weight": 0.05}],
                }
            )
        for r in reqs:
            r.setdefault("client", CLIENT)
        return reqs

    def deep(self, depth: int, kind: str) -> bytes:
        if kind == "array":
            return b"\x91" * depth + b"\xc0"
        return b"\x81\xa1k" * depth + b"\xc0"  # {"k": {"k": ... nil}}

    @staticmethod
    def raw_map(pairs: Sequence[tuple[str, bytes]]) -> bytes:
        """A map of these (key, packed value) pairs; a continue gets the owner's client."""
        if ("op", P("continue")) in pairs:
            pairs = [*pairs, ("client", P(CLIENT))]
        assert len(pairs) < 16
        return bytes([0x80 | len(pairs)]) + b"".join(P(k) + v for k, v in pairs)

    # -- the kinds ---------------------------------------------------------------------

    def random_bytes(self) -> Bad:
        while True:
            data = self.rng.randbytes(self.rng.randint(0, 2000))
            if self.rng.random() < 0.3 and data:  # start like a map, to get past the first byte
                data = bytes([self.rng.choice([0x80 | self.rng.randint(0, 15), 0xDE, 0xDF])]) + data[1:]
            if not could_be_valid(data):
                return Bad("random bytes", [data], codes_by_first_byte(data), None)

    def truncated(self) -> Bad:
        req = P(self.pick(self.valid_requests()))
        cut = self.rng.randrange(len(req))
        kind = f"truncated valid request ({cut} of {len(req)} bytes)"
        return Bad(kind, [req[:cut]], frozenset({"bad_message"}), (None,))

    def bit_flipped(self) -> Bad:
        while True:
            req = bytearray(P(self.pick(self.valid_requests())))
            for _ in range(self.rng.randint(1, 3)):
                k = self.rng.randrange(len(req) * 8)
                req[k // 8] ^= 1 << (k % 8)
            data = bytes(req)
            if not could_be_valid(data):
                return Bad("bit-flipped valid request", [data], codes_by_first_byte(data), None)

    def trailing(self) -> Bad:
        req = self.pick(self.valid_requests())
        junk = self.pick([b"\xc0", b"\x80", P(req), self.rng.randbytes(self.rng.randint(1, 50))])
        return Bad("valid request + trailing bytes", [P(req) + junk], frozenset({"bad_message"}), (None, req["id"]))

    def not_a_map(self) -> Bad:
        value = self.pick(
            [
                None,
                True,
                0,
                -1,
                2**64 - 1,
                -(2**63),
                math.nan,
                -math.inf,
                "",
                "hello",
                "continue",
                b"\x00\x01",
                [],
                ["op", "continue"],
                [{"op": "continue", "actions": []}],
                [[[[]]]],
                msgpack.ExtType(5, b"abc"),
            ]
        )
        return Bad(f"not a map: {value!r}", [P(value)], frozenset({"bad_message"}), (None,))

    def no_op(self) -> Bad:
        body = self.pick([{}, {"names": ["soma.v"]}, {"actions": []}, {"protocol": 2}, {"OP": "get", "names": []}])
        return self.one(f"map without op: {body!r}", body, "bad_message")

    def op_wrong_type(self) -> Bad:
        op = self.pick([None, 0, 1, 2, 3, -1, 1.5, True, False, ["get"], {"get": 1}, b"\xff\xfe", b"get "])
        # The ops 0, 1, 2 carry the fields of hello, get, continue (the requests' order): a
        # decoder that reads a variant from its index would take them for valid requests (a
        # continue gets the sentinel: such a node must still not run).
        bodies: list[dict[str, Any]] = [{"protocol": 2}, {"names": []}, {"actions": [SENTINEL]}]
        body = bodies[op] if op in (0, 1, 2) and not isinstance(op, bool) else self.pick(bodies)
        # A bin where a str is expected: the node may read it as a str (then the op is unknown).
        codes = {"bad_message", "unknown_op"} if isinstance(op, bytes) else "bad_message"
        return self.one(f"op of the wrong type: {op!r}", {"op": op, **body}, codes)

    def unknown_op(self) -> Bad:
        op = self.pick(["", "jump", "HELLO", "Get", "continue ", "stop", "set", "sync", "error", "get\x00", "x" * 5000])
        return self.one(f"unknown op {op[:20]!r}", {"op": op, "names": [], "actions": []}, "unknown_op")

    def other_version(self) -> Bad:
        v = self.pick([0, 1, 3, 255, 65536, 2**32 - 1, 2**32, 2**63, 2**64 - 1])
        # Another version is refused whatever else the hello holds (a takeover included).
        extra = self.pick(
            [{}, {"zzz": [1, 2]}, {"names": 5}, {"actions": [{"op": "stop"}]}, {"takeover": True, "client": "usurper"}]
        )
        return self.one(f"hello of protocol {v} {extra}", {"op": "hello", "protocol": v, **extra}, "protocol_mismatch")

    def bad_hello(self) -> Bad:
        case = self.pick(["missing", "string", "nil", "list", "unknown field", "negative", "fraction", "nan"])
        msg: dict[str, Any] = {"op": "hello"}
        codes = "bad_message"
        if case == "string":
            msg["protocol"] = "1"
        elif case == "nil":
            msg["protocol"] = None
        elif case == "list":
            msg["protocol"] = [1]
        elif case == "unknown field":
            msg.update(protocol=2, zzz=1)
        elif case == "negative":
            msg["protocol"] = -1
            codes = {"bad_message", "protocol_mismatch"}
        elif case == "fraction":
            msg["protocol"] = 1.5
            codes = {"bad_message", "protocol_mismatch"}
        elif case == "nan":
            msg["protocol"] = math.nan
            codes = {"bad_message", "protocol_mismatch"}
        return self.one(f"hello with protocol {case}", msg, codes)

    def bad_id(self) -> Bad:
        i = self.pick([-1, -(2**63), 1.5, 7.0, "7", [7], {"id": 7}, True, math.nan])
        body = self.pick([{"op": "get", "names": ["nope"]}, {"op": "get"}, {"op": "continue", "actions": 3}])
        return self.one(f"id {i!r}", {"id": i, **body}, "bad_message", with_id=False, ids=(None,))

    def bad_get(self) -> Bad:
        case = self.pick(["missing", "string", "int", "nil", "list of ints", "unknown field", "map"])
        names: Any = {"string": "soma.v", "int": 5, "nil": None, "list of ints": [1, 2], "map": {"soma.v": 1}}.get(case)
        msg: dict[str, Any] = {"op": "get"}
        if case == "unknown field":
            msg.update(names=["soma.v"], zzz=True)
        elif case != "missing":
            msg["names"] = names
        return self.one(f"get with names {case}", msg, "bad_message")

    def unknown_names(self) -> Bad:
        name = self.pick(["nope", "", "soma.", ".v", "soma.vv", "soma(0.5).vv", "Soma.v", "soma.v ", "ns.interval\x00"])
        where = self.pick(["get", "set", "watch", "on_spike", "event"])
        if where == "get":
            return self.one(f"get of unknown name {name!r}", {"op": "get", "names": ["soma.v", name]}, "unknown_name")
        if where == "set":
            a = {"op": "set", "name": name, "value": 1.0}
            return self.cont(f"set of unknown name {name!r}", [a], "unknown_name")
        if where == "watch":
            return self.cont(f"watch of unknown name {name!r}", [{"op": "watch", "values": [name]}], "unknown_name")
        if where == "on_spike":
            a = {"op": "schedule", "on_spike": [name]}
            return self.cont(f"on_spike of unknown source {name!r}", [a], "unknown_name")
        a = {"op": "event", "target": name, "t": self.pt.t + 1.0, "weight": 0.1}
        return self.cont(f"event to unknown target {name!r}", [a], "wrong_state" if self.pt.start else "unknown_name")

    def not_what_it_is(self) -> Bad:
        """Names of the wrong kind: a signal set as a parameter, a target that is a source."""
        case = self.pick(["set signal", "on_spike target", "event to source"])
        if case == "set signal":
            return self.cont("set of a signal", [{"op": "set", "name": "soma.v", "value": -65.0}], "unknown_name")
        if case == "on_spike target":
            return self.cont("on_spike of a target", [{"op": "schedule", "on_spike": ["syn"]}], "unknown_name")
        a = {"op": "event", "target": "soma", "t": self.pt.t + 1.0, "weight": 0.1}
        return self.cont("event to a section", [a], "wrong_state" if self.pt.start else "unknown_name")

    def bad_actions(self) -> Bad:
        actions = self.pick([{"op": "stop"}, "stop", 3, None, True, {"0": {"op": "stop"}}])
        return self.one(f"actions {actions!r}", {"op": "continue", "actions": actions}, "bad_message")

    def bad_action(self) -> Bad:
        a = self.pick(
            [
                5,
                None,
                "stop",
                [],
                ["set", "ns.interval", 30.0],
                {},
                {"name": "ns.interval", "value": 30.0},
                {"op": None},
                {"op": 1},
                {"op": ["stop"]},
                {"op": 0, "name": "ns.interval", "value": 30.0},
                {"op": 4},
                {"op": "stop", "extra": None},
                ["stop"],
                ["schedule", 1],
                {"op": "set", "name": "ns.interval"},
                {"op": "set", "value": 30.0},
                {"op": "set", "name": 5, "value": 30.0},
                {"op": "set", "name": "ns.interval", "value": None},
                {"op": "set", "name": "ns.interval", "value": [30.0]},
                {"op": "set", "name": "ns.interval", "value": 30.0, "zzz": 1},
                {"op": "event", "target": "syn", "weight": 0.1},
                {"op": "event", "t": self.pt.t + 1, "weight": 0.1},
                {"op": "event", "target": "syn", "t": self.pt.t + 1, "weight": "0.1"},
                {"op": "schedule", "every": -1},
                {"op": "schedule", "every": 1.5},
                {"op": "schedule", "every": -(2**63)},
                {"op": "schedule", "every": math.inf},
                {"op": "schedule", "every": math.nan},
                {"op": "schedule", "add_at": 5.0},
                {"op": "schedule", "add_at": ["5"]},
                {"op": "schedule", "on_spike": "soma"},
                {"op": "schedule", "init": "yes"},
                {"op": "schedule", "init": 1},
                {"op": "schedule", "zzz": 1},
                {"op": "watch", "values": "soma.v"},
                {"op": "watch", "spikes": "yes"},
                {"op": "watch", "values": [1]},
                {"op": "stop", "now": True},
                {"op": "stop", "id": 1},
            ]
        )
        good = {"op": "set", "name": "ns.interval", "value": 25.0}
        actions = self.pick([[a], [good, a], [a, good], [good, good, a]])
        return self.cont(f"action of the wrong shape {a!r}", actions, "bad_message")

    def unknown_action(self) -> Bad:
        op = self.pick(["jump", "", "SET", "continue", "hello", "get", "x" * 3000])
        return self.cont(f"unknown action {op[:20]!r}", [{"op": "watch", "spikes": True}, {"op": op}], "unknown_op")

    def string_numbers(self) -> Bad:
        case = self.pick(["set value", "event t", "event weight", "every", "add_at", "remove_at", "protocol"])
        if case == "protocol":
            return self.one("protocol as a string", {"op": "hello", "protocol": "2"}, "bad_message")
        a: dict[str, Any] = {
            "set value": {"op": "set", "name": "ns.interval", "value": "30"},
            "event t": {"op": "event", "target": "syn", "t": str(self.pt.t + 1), "weight": 0.1},
            "event weight": {"op": "event", "target": "syn", "t": self.pt.t + 1, "weight": "0.1"},
            "every": {"op": "schedule", "every": "1"},
            "add_at": {"op": "schedule", "add_at": ["100.0"]},
            "remove_at": {"op": "schedule", "remove_at": ["100.0"]},
        }[case]
        return self.cont(f"number as a string: {case}", [a], "bad_message")

    def non_finite(self) -> Bad:
        x = self.pick([math.nan, math.inf, -math.inf, -math.nan])
        name = self.pick(["ns.interval", "syn.tau", "dt", "tstop", "v_init", "soma.gnabar_hh", "celsius", "nc.weight"])
        case = self.pick(["set", "set", "event t", "event weight", "add_at"])
        if case == "set":
            return self.cont(f"set {name} = {x}", [{"op": "set", "name": name, "value": x}], "invalid_value")
        if case == "event t":
            a = {"op": "event", "target": "syn", "t": x, "weight": 0.1}
            if self.pt.start:
                codes = {"wrong_state"}
            else:  # NaN and -inf are not after now either
                codes = {"invalid_value"} | ({"event_in_past"} if not x > 0 else set())
            return self.cont(f"event at t = {x}", [a], codes)
        if case == "event weight":
            a = {"op": "event", "target": "syn", "t": self.pt.t + 1.0, "weight": x}
            return self.cont(f"event of weight {x}", [a], "wrong_state" if self.pt.start else "invalid_value")
        codes = {"invalid_value"} | ({"event_in_past"} if not x > 0 else set())
        return self.cont(f"sync at {x}", [{"op": "schedule", "add_at": [x]}], codes)

    def out_of_range(self) -> Bad:
        """Finite values the spec or the node refuses (the spec's own example: syn.tau -1),
        and negative or huge ones whose fate the node decides (then unknown_name, the
        sentinel's, is acceptable too)."""
        case = self.pick(["syn.tau", "positive", "huge", "huge int", "tiny"])
        if case == "syn.tau":
            v = self.pick([-1.0, 0.0, -1e308, -(2**63)])
            return self.cont(f"set syn.tau = {v}", [{"op": "set", "name": "syn.tau", "value": v}], "invalid_value")
        name = self.pick(["ns.interval", "dt", "syn.tau", "soma.L", "soma.diam", "soma.Ra"])
        v = {
            "positive": self.pick([-1.0, -1e-300, 0.0, -1e308, -(2**63)]),
            "huge": self.pick([1e308, 1.7976931348623157e308]),
            "huge int": 2**64 - 1,
            "tiny": 5e-324,
        }[case]
        return self.cont(f"set {name} = {v}", [{"op": "set", "name": name, "value": v}], "invalid_value", lenient=True)

    def huge_but_finite(self) -> Bad:
        case = self.pick(["event", "add_at", "every", "weight"])
        if case == "event":
            a = {"op": "event", "target": "syn", "t": 1e308, "weight": 0.1}
        elif case == "weight":
            a = {"op": "event", "target": "syn", "t": self.pt.t + 1.0, "weight": -1e308}
        elif case == "add_at":
            a = {"op": "schedule", "add_at": [1e308, 2.0**63]}
        else:
            a = {"op": "schedule", "every": 2**64 - 1}
        if self.pt.start and case in ("event", "weight"):
            return self.cont(f"huge {case} at start", [a], "wrong_state")
        return self.cont(f"huge {case}", [a], "invalid_value", lenient=True)

    def past_times(self) -> Bad:
        x = self.past()
        case = self.pick(["event", "event to nc", "add_at"])
        if case == "add_at":
            codes = self.past_codes(x) if not self.pt.start else frozenset({"event_in_past", "invalid_value"})
            return self.cont(f"sync at {x!r} (now {self.pt.t!r})", [{"op": "schedule", "add_at": [x]}], codes)
        a: dict[str, Any] = {"op": "event", "target": "syn", "t": x, "weight": 0.05}
        if case == "event to nc":
            a = {"op": "event", "target": "nc", "t": x}
        codes = "wrong_state" if self.pt.start else self.past_codes(x)
        return self.cont(f"{case} at {x!r} (now {self.pt.t!r})", [a], codes)

    def passed_sync(self) -> Bad:
        """A sync time at the current step point: passed (t_n + dt/2 >= T), or, at start,
        the node has not stepped (any T >= 0 is allowed): then only a remove_at of an
        unscheduled time."""
        if self.pt.start:
            T = self.pick([1.0, 123.456, 0.0])
            return self.cont(f"remove_at {T} (not scheduled)", [{"op": "schedule", "remove_at": [T]}], "invalid_value")
        T = self.pick([self.pt.t, self.pt.t + DT / 4])
        a = {"op": "schedule", "add_at": [T]}
        return self.cont(f"add_at {T!r} at t={self.pt.t!r}", [a], {"event_in_past", "invalid_value"})

    def unscheduled_remove(self) -> Bad:
        T = self.pt.t + self.pick([1.0, 77.125, 1e6])
        return self.cont(f"remove_at {T} (not scheduled)", [{"op": "schedule", "remove_at": [T]}], "invalid_value")

    def structural(self) -> Bad:
        v = self.pick([1, 1.0, 3, 100, 0, -1, 1.5])
        return self.cont(f"set soma.nseg = {v}", [{"op": "set", "name": "soma.nseg", "value": v}], {"not_writable"})

    def event_at_start(self) -> Bad:
        """At start any event is refused (wrong_state), before its values are looked at."""
        if not self.pt.start:
            return self.past_times()
        a = self.pick(
            [
                {"op": "event", "target": "syn", "t": 5.0, "weight": 0.1},
                {"op": "event", "target": "nc", "t": 0.0},
                {"op": "event", "target": "ns", "t": 1.0, "weight": 1.0},
                {"op": "event", "target": "syn", "t": 5.0},
            ]
        )
        return self.cont(f"event at start {a}", [a], "wrong_state")

    def stop_then_bad(self) -> Bad:
        """stop first, a bad action after it: nothing is applied, the node must not exit."""
        bad = self.pick([SENTINEL, {"op": "set", "name": "soma.nseg", "value": 2.0}, {"op": "jump"}])
        code = {"no_such.param": "unknown_name", "soma.nseg": "not_writable"}.get(bad.get("name", ""), "unknown_op")
        actions = [{"op": "set", "name": "ns.interval", "value": 1.0}, {"op": "stop"}, bad]
        return self.cont(f"stop then {bad}", actions, code)

    def deep_nesting(self) -> Bad:
        depth = self.pick([50, 51, 100, 1000, self.rng.randint(50, 5000), 5000])
        shape = self.pick(["array", "map"])
        inner = self.deep(depth, shape)
        where = self.pick(["top", "actions", "names", "value", "action field"])
        i = self.next_id()
        if where == "top":
            return Bad(f"{shape}s nested {depth} deep", [inner], frozenset({"bad_message"}), (None,))
        if where == "actions":
            data = self.raw_map([("op", P("continue")), ("id", P(i)), ("actions", inner)])
        elif where == "names":
            data = self.raw_map([("op", P("get")), ("id", P(i)), ("names", b"\x91" + inner)])
        elif where == "value":
            action = self.raw_map([("op", P("set")), ("name", P("ns.interval")), ("value", inner)])
            data = self.raw_map([("id", P(i)), ("op", P("continue")), ("actions", b"\x91" + action)])
        else:
            action = self.raw_map([("op", P("watch")), ("zzz", inner)])
            data = self.raw_map([("op", P("continue")), ("actions", b"\x91" + action), ("id", P(i))])
        return Bad(f"{shape}s nested {depth} deep in {where}", [data], frozenset({"bad_message"}), (None, i))

    def long_string(self) -> Bad:
        n = self.pick([10_000, 65_536, self.rng.randint(100_000, 900_000)])
        unit = self.pick(["x", "ns.interval", "\u00e9", "\U0001f600"])
        s = unit * max(1, n // len(unit.encode()))  # n bytes or so, well under the limit
        case = self.pick(["op", "name", "get", "watch", "field", "target"])
        if case == "op":
            return self.one(f"op of {len(s)} chars", {"op": s, "names": []}, "unknown_op")
        if case == "name":
            a = {"op": "set", "name": s, "value": 1.0}
            return self.cont(f"set of a name of {len(s)} chars", [a], "unknown_name")
        if case == "get":
            return self.one(f"get of a name of {len(s)} chars", {"op": "get", "names": [s]}, "unknown_name")
        if case == "watch":
            a = {"op": "watch", "values": ["soma.v", s]}
            return self.cont(f"watch of a name of {len(s)} chars", [a], "unknown_name")
        if case == "target":
            a = {"op": "event", "target": s, "t": self.pt.t + 1.0, "weight": 0.1}
            code = "wrong_state" if self.pt.start else "unknown_name"
            return self.cont(f"event to a target of {len(s)} chars", [a], code)
        return self.one(f"unknown field of {len(s)} chars", {"op": "get", "names": [], s: 1}, "bad_message")

    def too_large(self) -> Bad:
        """Over --max-message but under the socket's limit (twice it: a request longer than
        that costs its connection, tests/rust/redteam.rs): read, answered too_large."""
        case = self.pick(["valid actions", "random", "get", "limit + 1"])
        if case == "random":
            return Bad("1.5 MB of random bytes", [self.rng.randbytes(1_500_000)], frozenset({"too_large"}), (None,))
        i = self.next_id()
        if case == "valid actions":
            # Otherwise valid: 40,000 sets of ns.interval (~1.4 MB).
            actions = [{"op": "set", "name": "ns.interval", "value": 20.0 + k % 7} for k in range(40_000)]
            data = P({"op": "continue", "id": i, "actions": actions})
        elif case == "get":
            data = P({"op": "get", "id": i, "names": ["soma.v"] * 200_000})
        else:
            data = self.sized_get(i, MAX_MESSAGE + 1)
        assert MAX_MESSAGE < len(data) < 2 * MAX_MESSAGE
        return Bad(f"{case}, {len(data)} bytes (> {MAX_MESSAGE})", [data], frozenset({"too_large"}), (None, i))

    def at_the_limit(self) -> Bad:
        """Exactly --max-message bytes is not too large: the request is read (and refused
        for its unknown name)."""
        i = self.next_id()
        data = self.sized_get(i, MAX_MESSAGE)
        return Bad(f"get of exactly {len(data)} bytes", [data], frozenset({"unknown_name"}), (i,))

    @staticmethod
    def sized_get(i: int, size: int) -> bytes:
        base = len(P({"op": "get", "id": i, "names": ["a" * 100_000]}))
        data = P({"op": "get", "id": i, "names": ["a" * (100_000 + size - base)]})
        assert len(data) == size, (len(data), size)
        return data

    def multi_frame(self) -> Bad:
        req = self.pick(self.valid_requests())
        frames = self.pick(
            [
                [P(req), b"x"],
                [P(req), P(req)],
                [P(req), b""],
                [b"", P(req)],
                [P(req), self.rng.randbytes(100), self.rng.randbytes(10)],
                [P(req)[:5], P(req)[5:]],
            ]
        )
        ids = (None,) if not frames[0] or len(frames[0]) < len(P(req)) else (None, req["id"])
        return Bad(f"{len(frames)} frames of {req['op']}", frames, frozenset({"bad_message"}), ids)

    def bad_strings(self) -> Bad:
        """Invalid UTF-8 in str, and bin where str is expected (node's choice)."""
        case = self.pick(["name", "op"])
        i = self.next_id()
        if case == "name":
            action = self.raw_map([("op", P("set")), ("name", b"\xa4\xff\xfe\xfd\xfc"), ("value", P(1.0))])
            data = self.raw_map([("op", P("continue")), ("id", P(i)), ("actions", b"\x91" + action)])
            return Bad("name of invalid UTF-8", [data], frozenset({"bad_message", "unknown_name"}), (i,))
        data = self.raw_map([("op", b"\xa3\xff\xfe\xfd"), ("id", P(i)), ("names", b"\x90")])
        return Bad("op of invalid UTF-8", [data], frozenset({"bad_message", "unknown_op"}), (i,))

    def bad_client(self) -> Bad:
        """A ``client`` that is no name: 1 to 64 bytes of UTF-8 without control characters, not
        beginning with ``peer-`` (the node's names for unnamed clients).  (nil is not sent: the
        node reads it as an absent name.)"""
        c = self.pick(
            ["", "x" * 65, "\u00e9" * 33, "agent\n7", "agent\x007", "\x7f", "agent\u00857", "peer-00", 7, True, ["a"], {"a": 1}]
        )
        body = self.pick(
            [{"op": "hello", "protocol": 2}, {"op": "get", "names": []}, {"op": "continue", "actions": [SENTINEL]}]
        )
        return self.one(f"{body['op']} from client {str(c)[:20]!r}", {**body, "client": c}, "bad_message")

    def bad_takeover(self) -> Bad:
        v = self.pick(["yes", 1, 0, None, [True], {"x": True}, 1.0])
        return self.one(f"takeover {v!r}", {"op": "hello", "protocol": 2, "takeover": v}, "bad_message")

    def bad_schedule_v2(self) -> Bad:
        """``init`` (a list of FInitializeHandler types) and ``scatter_gather`` (a count) of the
        wrong type.  (nil is not sent: the node reads it as an absent field.)"""
        field, v = self.pick(
            [("init", x) for x in (True, False, 1, "0,1", [-1], [1.5], ["1"], [None], [[1]], [True], {"0": 1})]
            + [("scatter_gather", x) for x in (-1, 1.5, "1", True, math.inf, math.nan, [1], -(2**63))]
        )
        return self.cont(f"schedule {field} = {v!r}", [{"op": "schedule", field: v}], "bad_message")

    def init_out_of_range(self) -> Bad:
        """FInitializeHandler types are 0 to 3: any other count is invalid_value."""
        k = self.pick([4, 5, 7, 100, 255, 256, 2**32, 2**64 - 1])
        kinds = self.pick([[k], [0, k], [3, 2, 1, 0, k]])
        return self.cont(f"init types {kinds}", [{"op": "schedule", "init": kinds}], "invalid_value")

    def not_the_owner(self) -> Bad:
        """A continue from another client than the owner: refused before its actions, valid
        or not (a stop included).  At start nobody owns the run yet: a bad client name then."""
        if self.pt.start:
            return self.bad_client()
        actions = self.pick([[], [{"op": "stop"}], [{"op": "set", "name": "ns.interval", "value": 1.0}], [SENTINEL]])
        who = self.pick(["intruder", CLIENT + " ", CLIENT.upper(), "peer00"])
        return self.one(f"continue from {who!r}", {"op": "continue", "client": who, "actions": actions}, "not_owner")

    def duplicate_keys(self) -> Bad:
        i = self.next_id()
        case = self.pick(["op", "names", "actions"])
        if case == "op":
            data = self.raw_map([("op", P("get")), ("op", P("continue")), ("id", P(i)), ("names", b"\x90")])
        elif case == "names":
            data = self.raw_map([("op", P("get")), ("id", P(i)), ("names", b"\x90"), ("names", P(["soma.v"]))])
        else:  # (whichever a lenient decoder kept, the continue is refused all the same)
            other = P([{"op": "set", "name": "no_such.other", "value": 1.0}])
            data = self.raw_map([("op", P("continue")), ("id", P(i)), ("actions", P([SENTINEL])), ("actions", other)])
        return Bad(f"duplicate key {case}", [data], frozenset({"bad_message"}), (None, i))


KINDS: dict[str, Callable[[Gen], Bad]] = {
    name: getattr(Gen, name)
    for name in (
        "random_bytes",
        "truncated",
        "bit_flipped",
        "trailing",
        "not_a_map",
        "no_op",
        "op_wrong_type",
        "unknown_op",
        "other_version",
        "bad_hello",
        "bad_id",
        "bad_get",
        "unknown_names",
        "not_what_it_is",
        "bad_actions",
        "bad_action",
        "unknown_action",
        "string_numbers",
        "non_finite",
        "out_of_range",
        "huge_but_finite",
        "past_times",
        "passed_sync",
        "unscheduled_remove",
        "structural",
        "event_at_start",
        "stop_then_bad",
        "deep_nesting",
        "long_string",
        "too_large",
        "at_the_limit",
        "multi_frame",
        "bad_strings",
        "bad_client",
        "bad_takeover",
        "bad_schedule_v2",
        "init_out_of_range",
        "not_the_owner",
        "duplicate_keys",
    )
}
# Random draws after the one of each kind: mostly the cheap, varied kinds.
WEIGHTS = {name: 1.0 for name in KINDS}
WEIGHTS.update(random_bytes=8.0, truncated=5.0, bit_flipped=8.0, too_large=0.3, at_the_limit=0.2, long_string=0.5)


# Kinds a transport cannot carry: a Unix-socket frame is one message, multi-frame messages
# are ZeroMQ's.
NOT_ON = {"unix": {"multi_frame"}, "zmq": set()}


def make_burst(
    rng: random.Random, point: Point, n: int, next_id: Callable[[], int], transport: str = "zmq"
) -> list[Bad]:
    """The catalogue (each kind until every option of each of its choices has been drawn
    once), then random kinds up to ``n`` messages, in a random order (kinds the transport
    cannot carry left out)."""
    g = Gen(rng, point, next_id)
    msgs: list[Bad] = []
    kinds = {name: kind for name, kind in KINDS.items() if name not in NOT_ON[transport]}
    for kind in kinds.values():
        g.touched.clear()
        for _ in range(500):
            msgs.append(kind(g))
            if all(g.cycled[k] for k in g.touched):
                break
    names = list(kinds)
    extra = rng.choices(names, weights=[WEIGHTS[k] for k in names], k=max(0, n - len(msgs)))
    msgs += [kinds[k](g) for k in extra]
    rng.shuffle(msgs)
    return msgs


# ---------------------------------------------------------------------------------------
# The sender


class Channel:
    """One connection to the node, sending a message (as frames) and receiving one reply's
    body: a DEALER socket speaking REQ's envelope (ZeroMQ), or a Unix socket speaking
    length-prefixed frames (unix), on which a second reply to a message would likewise be read
    in place of the next one's."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.unix = endpoint.startswith("unix://")
        self.sock = open_control(ctx, endpoint, zmq.DEALER, REPLY_TIMEOUT_MS)

    def close(self) -> None:
        if self.unix:
            self.sock.close()
        else:
            self.sock.close(0)

    def exchange(self, frames: list[bytes], what: str) -> bytes:
        if self.unix:
            assert len(frames) == 1, f"{what}: a unix frame is one message"
            unix_send(self.sock, frames[0])
            try:
                return unix_recv(self.sock)
            except TimeoutError:
                pytest.fail(f"seed {SEED}: no reply within {REPLY_TIMEOUT_MS} ms to {what}", pytrace=False)
            except ConnectionError:
                pytest.fail(f"seed {SEED}: the node closed the connection", pytrace=False)
        self.sock.send_multipart([b"", *frames])
        if not self.sock.poll(REPLY_TIMEOUT_MS, zmq.POLLIN):
            pytest.fail(f"seed {SEED}: no reply within {REPLY_TIMEOUT_MS} ms to {what}", pytrace=False)
        reply = self.sock.recv_multipart()
        assert len(reply) == 2 and reply[0] == b"", f"seed {SEED}: {what}: reply frames {[f[:40] for f in reply]!r}"
        return reply[1]


class Abuser:
    """A Channel that sends each malformed message, checks its one reply, then checks with a
    `get` that the state hash is unchanged."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.chan = Channel(ctx, endpoint)
        self._id = 1_000_000
        self.sent = 0
        self.codes: dict[str, int] = {}
        #: Replies other than the expected error, by kind of message (checked at the end of
        #: the test, so that one wrong reply does not hide the others).
        self.wrong: dict[str, list[str]] = {}

    def next_id(self) -> int:
        self._id += 1
        return self._id

    def close(self) -> None:
        self.chan.close()

    def exchange(self, frames: list[bytes], what: str) -> dict[str, Any]:
        m = unpack(self.chan.exchange(frames, what))
        assert isinstance(m, dict), f"seed {SEED}: {what}: reply is not a map: {m!r}"
        return m

    def state(self, what: str) -> tuple[Any, Any, str]:
        i = self.next_id()
        v = self.exchange([P({"op": "get", "id": i, "names": []})], f"the get after {what}")
        assert v.get("op") == "values" and v.get("id") == i, (
            f"seed {SEED}: after {what}, the reply to a get (id {i}) is {v!r}: the message got a second reply, "
            "or the get was refused"
        )
        return v["t"], v["step"], v["hash"]

    def hello(self) -> dict[str, Any]:
        h = self.exchange([P({"op": "hello", "id": self.next_id(), "client": CLIENT, "protocol": 2})], "hello")
        assert h.get("op") == "hello", f"seed {SEED}: hello answered {h!r}"
        h.pop("id")
        return h

    def burst(self, msgs: list[Bad], where: str) -> None:
        hello0 = self.hello()
        state0 = self.state(f"nothing ({where})")
        for k, bad in enumerate(msgs):
            what = f"message {k} of the burst {where}: {bad.describe()}"
            r = self.exchange(bad.frames, what)
            # A sync or done: the node took it for a continue and ran (the state check below
            # would fail anyway, but this says why).
            assert r.get("op") not in ("sync", "done"), f"seed {SEED}: {what}: answered with {str(r)[:500]}"
            errs = [e.message for e in ERROR_REPLY.iter_errors(r)]
            wrong = None
            if r.get("op") != "error":
                wrong = f"not refused: answered with {str(r)[:200]}"
            elif errs:
                wrong = f"the error reply {str(r)[:200]} is not an error.reply: {errs}"
            elif r["code"] not in bad.codes:
                wrong = (
                    f"code {r['code']!r} ({str(r.get('message'))[:120]!r}, field {r.get('field')!r}), "
                    f"expected one of {sorted(bad.codes)}"
                )
            elif bad.ids is not None and r["id"] not in bad.ids:
                wrong = f"reply id {r['id']!r}, expected one of {bad.ids}"
            if wrong:
                self.wrong.setdefault(bad.kind, []).append(f"{what}: {wrong}")
            state = self.state(what)
            assert state == state0, f"seed {SEED}: {what}: the state changed: (t, step, hash) {state0} -> {state}"
            self.sent += 1
            code = r.get("code", f"(a {r.get('op')} reply)")
            self.codes[code] = self.codes.get(code, 0) + 1
        assert self.hello() == hello0, f"seed {SEED}: hello differs after the burst {where}"


# ---------------------------------------------------------------------------------------
# Golden data (tests/golden/README.md)


def check_against_golden(out: Path, g: Golden) -> None:
    """traces.csv and spikes.csv equal NEURON's bit for bit (helpers.assert_matches_golden), the
    seed in the failure message."""
    try:
        assert_matches_golden(out, g)
    except AssertionError as e:
        pytest.fail(f"seed {SEED}: {e}", pytrace=False)


# ---------------------------------------------------------------------------------------
# The test


def test_malformed_messages_change_nothing(start_node, control, transport: str, tmp_path: Path) -> None:
    print(f"abuse seed: {SEED} (replay with SPIKEBUS_ABUSE_SEED={SEED}), transport {transport}")
    rng = random.Random(SEED)
    out = tmp_path / "d"
    node = start_node(["--control", control("tcp"), "--set", "soma.threshold=0", "--out", str(out)])
    ctx = zmq.Context()
    abuser = Abuser(ctx, node.control)
    req = Channel(ctx, node.control)
    next_ctl_id = iter(range(1, 1 << 62))

    def call(msg: dict[str, Any]) -> dict[str, Any]:
        i = next(next_ctl_id)
        r = unpack(req.exchange([P({**msg, "id": i, "client": CLIENT})], str(msg)))
        assert r.get("id") == i, f"seed {SEED}: reply {r!r} to request id {i}"
        return r

    try:
        # The start point: before any controller action.
        # The controller owns the run from the start (a takeover, as nobody has continued
        # yet), so that the burst's refused continues, which carry its name, find the owner
        # set.  (A refused continue claims no unowned run: test_bus.py.)
        h = call({"op": "hello", "protocol": 2, "takeover": True})
        assert h["pending"]["reasons"] == ["start"] and h["owner"] == CLIENT, h
        abuser.burst(make_burst(rng, Point(True, 0, 0.0), START_BURST, abuser.next_id, transport), "at start")
        assert node.returncode is None, "the node exited during the abuse"

        # The seed program, with bursts between continues.
        r = call({"op": "continue", "actions": [
            {"op": "schedule", "scatter_gather": 1},
            {"op": "watch", "values": ["ns.interval"], "spikes": True},
        ]})  # fmt: skip
        prev = -1
        final_interval = None
        while r.get("op") == "sync":
            step = r["step"]
            assert step == prev + 1, f"seed {SEED}: sync at step {step} after {prev}"
            prev = step
            if step in BURST_STEPS:
                burst = make_burst(rng, Point(False, step, r["t"]), RUN_BURST, abuser.next_id, transport)
                abuser.burst(burst, f"at step {step}")
                v = call({"op": "get", "names": ["ns.interval"]})
                assert bits([v["values"]["ns.interval"]]) == bits([r["values"]["ns.interval"]])
                assert (v["t"], v["step"]) == (r["t"], step)
            if "end" in r["reasons"]:
                final_interval = call({"op": "get", "names": ["ns.interval"]})["values"]["ns.interval"]
                r = call({"op": "continue"})
                break
            actions = []
            if "scatter_gather" in r["reasons"] and int(r["t"]) % 50 == 0:
                actions.append({"op": "set", "name": "ns.interval", "value": r["values"]["ns.interval"] + 10})
            r = call({"op": "continue", "actions": actions})
        assert r.get("op") == "done" and r["reason"] == "end" and r["step"] == SEED_STEPS, f"seed {SEED}: {r!r}"
    finally:
        abuser.close()
        req.close()
        ctx.term()
    assert node.wait(NODE_EXIT_TIMEOUT) == 0, node.stderr
    print(f"abuse: {abuser.sent} malformed messages answered, codes {dict(sorted(abuser.codes.items()))}")
    assert abuser.sent >= START_BURST + RUN_BURST * len(BURST_STEPS)
    golden = load_golden("seed_interval")
    check_against_golden(out, golden)
    assert final_interval == golden.final["ns.interval"]
    if abuser.wrong:
        n = sum(map(len, abuser.wrong.values()))
        shown = "\n".join(f"- {len(w)} x {kind}; first: {w[0]}" for kind, w in sorted(abuser.wrong.items()))
        pytest.fail(
            f"seed {SEED}: {n} of {abuser.sent} malformed messages got a reply other than the expected error "
            f"(none changed the state: the hash held, and the run is still NEURON's):\n{shown}",
            pytrace=False,
        )
