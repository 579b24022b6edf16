"""Typed views of the spikebus wire messages (protocol version 2, ``schemas/README.md``).

Every message on the wire is one MessagePack map with string keys.  The classes here are
thin, read-only views: each keeps the decoded map in ``raw`` so that fields a later node adds
are never lost, and exposes the fields of protocol version 2 with their types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "PROTOCOL_VERSION",
    "Spike",
    "Sync",
    "Done",
    "Values",
    "Param",
    "Schedule",
    "Watch",
    "Hello",
    "SpikebusError",
    "SpikebusTimeout",
    "NodeUnreachable",
    "ProtocolViolation",
    "parse_reply",
]

PROTOCOL_VERSION = 2
"""The protocol version this client speaks (sent in ``hello``)."""


class SpikebusError(Exception):
    """An ``error`` reply from the node.

    Attributes:
        code: the error code (``bad_message``, ``unknown_op``, ``protocol_mismatch``,
            ``unknown_name``, ``invalid_value``, ``not_writable``, ``event_in_past``,
            ``wrong_state``, ``not_owner``, ``too_large``).
        message: the node's human-readable explanation.
        field: the offending field (e.g. ``"actions[0].value"``) or ``None``.
        id: the request id the reply echoes (``None`` if the node could not read it).
        raw: the decoded reply map.
    """

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        id: int | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.field = field
        self.id = id
        self.raw: dict[str, Any] = dict(raw or {})
        where = f" (field {field})" if field else ""
        super().__init__(f"{code}: {message}{where}")


class SpikebusTimeout(TimeoutError):
    """No reply from the node after every retry of a request."""


class NodeUnreachable(SpikebusTimeout):
    """Nothing answered the first exchange (``hello``) within the connect timeout: no node
    listens at the endpoint, or it is busy running for another controller.

    Raised by the first request of a :class:`~spikebus_client.Controller` (within
    ``connect_timeout_ms``, 2 s by default) instead of waiting out the per-request timeout and
    its retries.

    Attributes:
        endpoint: the endpoint that did not answer.
        timeout_s: how long it was given, in seconds.
    """

    def __init__(self, endpoint: str, timeout_s: float, option: str = "--control") -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        super().__init__(
            f"no spikebus node answered at {endpoint} within {timeout_s:g} s "
            f"(is a node running with {option} at that endpoint? "
            f"a node started with `spikebus run {option} tcp://127.0.0.1:0` prints the port it bound)"
        )


class ProtocolViolation(RuntimeError):
    """The node sent something protocol version 2 does not allow (e.g. a reply to another
    request id, or a reply that is not a map).  Raised instead of guessing."""


@dataclass(frozen=True)
class Spike:
    """One spike: ``source`` (a section's detector or an artificial cell) at time ``t`` (ms)."""

    source: str
    """The source: a section (its detector) or an artificial cell."""
    t: float
    """The spike time, ms."""

    @classmethod
    def from_wire(cls, m: Mapping[str, Any]) -> "Spike":
        """The typed view of a decoded wire map."""
        return cls(source=str(m["source"]), t=float(m["t"]))


@dataclass(frozen=True)
class Sync:
    """The report of a sync point: the node is paused there until the next ``continue``.

    Attributes:
        id: the id of the request this report answers (``None`` in ``hello.pending``).
        t: NEURON's ``h.t`` inside the callback this point stands for, bit for bit (t_n at a
            step boundary and in ``scatter_gather``; the spike's time at a ``spike``).
        step: the step index n (t_n); step 0 is t = 0.
        reasons: why the node stopped here: ``start``, ``init_3``, ``init_0``, ``init_1``,
            ``init_2``, ``spike``, ``scatter_gather``, ``at``, ``every``, ``end`` (those of
            a step boundary may coincide: ``at``, ``init_2``, ``every``, ``end``, in that order).
        at: the scheduled ``at`` times this point answers, in NEURON's delivery order.
        spike: the spike this point answers (``reasons`` has ``spike``), else ``None``.
        values: the watched parameters and signals, by name.
        spikes: every spike since the previous report (when spikes are watched).
    """

    id: int | None
    t: float
    step: int
    reasons: tuple[str, ...]
    values: dict[str, float]
    spikes: tuple[Spike, ...]
    at: tuple[float, ...] = ()
    spike: Spike | None = None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    """The decoded map as it came (fields of later versions included)."""

    @classmethod
    def from_wire(cls, m: Mapping[str, Any]) -> "Sync":
        """The typed view of a decoded wire map."""
        spike = m.get("spike")
        return cls(
            id=m.get("id"),
            t=float(m["t"]),
            step=int(m["step"]),
            reasons=tuple(str(r) for r in m.get("reasons") or ()),
            values={str(k): float(v) for k, v in (m.get("values") or {}).items()},
            spikes=tuple(Spike.from_wire(s) for s in m.get("spikes") or ()),
            at=tuple(float(x) for x in m.get("at") or ()),
            spike=Spike.from_wire(spike) if spike else None,
            raw=dict(m),
        )

    def has(self, reason: str) -> bool:
        """True if ``reason`` is one of the reasons of this sync point."""
        return reason in self.reasons

    @property
    def is_start(self) -> bool:
        """The ``start`` point: before initialization (t = 0)."""
        return "start" in self.reasons

    @property
    def is_end(self) -> bool:
        """The ``end`` point: the run reached tstop; the next ``continue`` gets ``done``."""
        return "end" in self.reasons

    @property
    def hash(self) -> str | None:
        """The state hash here (when the watch asks for it: ``watch(hash=True)``)."""
        h = self.raw.get("hash")
        return None if h is None else str(h)

    @property
    def snapshots(self) -> tuple[int, ...]:
        """The ids of the snapshots the request that led here took."""
        return tuple(int(x) for x in self.raw.get("snapshots") or ())

    @property
    def restored(self) -> int | None:
        """The snapshot the request that led here restored (this is then its point)."""
        r = self.raw.get("restored")
        return None if r is None else int(r)

    @property
    def telemetry(self) -> dict[str, float] | None:
        """``{"wait": s, "sim": s}``: the exchange's wall times (``watch(telemetry=True)``)."""
        t = self.raw.get("telemetry")
        return None if t is None else {str(k): float(v) for k, v in t.items()}


@dataclass(frozen=True)
class Done:
    """The run is over (after the ``end`` point, a ``stop``, or a run that had to end); the
    node exits.

    Attributes:
        reason: ``end``, ``stop``, ``signal``, ``timeout``, ``io_error`` (an output could not
            be written) or ``limit`` (the run went past one of the node's limits).
        published: state-stream messages published.
        error: what could not be written or which limit was passed (``io_error``,
            ``limit``); ``None`` otherwise.
    """

    id: int | None
    """The id of the request answered (``None`` on the stream)."""
    reason: str
    t: float
    """The time the run ended at, ms."""
    step: int
    """The step index it ended at."""
    published: int
    error: str | None = None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    """The decoded map as it came."""

    @classmethod
    def from_wire(cls, m: Mapping[str, Any]) -> "Done":
        """The typed view of a decoded wire map."""
        return cls(
            id=m.get("id"),
            reason=str(m["reason"]),
            t=float(m["t"]),
            step=int(m["step"]),
            published=int(m.get("published", 0)),
            error=None if m.get("error") is None else str(m["error"]),
            raw=dict(m),
        )


@dataclass(frozen=True)
class Values:
    """The reply to ``get``: values read at (``t``, ``step``) without advancing."""

    id: int | None
    """The id of the ``get`` answered."""
    t: float
    """The pending sync point's t, ms."""
    step: int
    """The pending sync point's step."""
    values: dict[str, float]
    """The values read, by name."""
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    """The decoded map as it came (with ``hash``, the node's state digest)."""

    @classmethod
    def from_wire(cls, m: Mapping[str, Any]) -> "Values":
        """The typed view of a decoded wire map."""
        return cls(
            id=m.get("id"),
            t=float(m["t"]),
            step=int(m["step"]),
            values={str(k): float(v) for k, v in (m.get("values") or {}).items()},
            raw=dict(m),
        )

    def __getitem__(self, name: str) -> float:
        return self.values[name]


@dataclass(frozen=True)
class Param:
    """A model parameter as ``hello`` lists it."""

    name: str
    """NEURON's name, e.g. ``soma.gnabar_hh``."""
    unit: str
    """Its unit, e.g. ``S/cm2``."""
    writable: bool
    """Whether a running simulation accepts it (``set``)."""
    value: float
    """Its current value."""

    @classmethod
    def from_wire(cls, m: Mapping[str, Any]) -> "Param":
        """The typed view of a decoded wire map."""
        return cls(
            name=str(m["name"]),
            unit=str(m.get("unit", "")),
            writable=bool(m.get("writable", False)),
            value=float(m["value"]),
        )


@dataclass(frozen=True)
class Schedule:
    """The node's sync schedule (it outlives a controller)."""

    init: tuple[int, ...] = ()
    """FInitializeHandler types with a sync point."""
    every: int = 0
    """A sync at every Nth step boundary (0: off)."""
    scatter_gather: int = 0
    """A sync inside every Nth step (0: off)."""
    at: tuple[float, ...] = ()
    """The ``at`` times not yet reached."""
    on_spike: tuple[str, ...] = ()
    """Sources whose spikes are sync points."""

    @classmethod
    def from_wire(cls, m: Mapping[str, Any] | None) -> "Schedule":
        """The typed view of a decoded wire map."""
        m = m or {}
        return cls(
            init=tuple(int(x) for x in m.get("init") or ()),
            every=int(m.get("every", 0)),
            scatter_gather=int(m.get("scatter_gather", 0)),
            at=tuple(float(x) for x in m.get("at") or ()),
            on_spike=tuple(str(x) for x in m.get("on_spike") or ()),
        )


@dataclass(frozen=True)
class Watch:
    """What the node's sync reports carry."""

    values: tuple[str, ...] = ()
    """Parameters and signals each report carries."""
    spikes: bool = True
    """Whether reports carry the spikes since the previous one."""

    @classmethod
    def from_wire(cls, m: Mapping[str, Any] | None) -> "Watch":
        """The typed view of a decoded wire map."""
        m = m or {}
        return cls(
            values=tuple(str(x) for x in m.get("values") or ()),
            spikes=bool(m.get("spikes", True)),
        )


@dataclass(frozen=True)
class Hello:
    """The reply to ``hello``: who the node is, and where the run is.

    ``pending`` is the report of the sync point the node is paused at; a controller that
    connects mid-run carries on from there (after taking the run over).  ``client`` is the
    name the node knows the sender by; ``owner`` the client that owns the run (``None``
    before the first ``continue``).
    """

    id: int | None
    """The id of the ``hello`` answered."""
    protocol: int
    """The protocol version the node speaks."""
    node: str
    """The node's name and version."""
    client: str
    """The name the node knows the sender by."""
    owner: str | None
    """The client that owns the run (``None`` before the first ``continue``)."""
    model: str
    """The model (file path, or ``<seed>``)."""
    dt: float
    """The time step, ms."""
    tstop: float
    """The end of the run, ms."""
    t: float
    """The pending point's t, ms."""
    step: int
    """The pending point's step."""
    params: dict[str, Param]
    """Every parameter, by name."""
    signals: tuple[str, ...]
    """The recordable signals."""
    sources: tuple[str, ...]
    """The spike sources."""
    targets: tuple[str, ...]
    """What events can be sent to (synapses, artificial cells, NetCons)."""
    schedule: Schedule
    """The current sync schedule."""
    watch: Watch
    """What reports carry now."""
    pending: Sync
    """The report of the sync point the node is paused at."""
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    """The decoded map as it came."""

    @classmethod
    def from_wire(cls, m: Mapping[str, Any]) -> "Hello":
        """The typed view of a decoded wire map."""
        params = [Param.from_wire(p) for p in m.get("params") or ()]
        return cls(
            id=m.get("id"),
            protocol=int(m["protocol"]),
            node=str(m.get("node", "")),
            client=str(m.get("client", "")),
            owner=None if m.get("owner") is None else str(m["owner"]),
            model=str(m.get("model", "")),
            dt=float(m["dt"]),
            tstop=float(m["tstop"]),
            t=float(m["t"]),
            step=int(m["step"]),
            params={p.name: p for p in params},
            signals=tuple(str(s) for s in m.get("signals") or ()),
            sources=tuple(str(s) for s in m.get("sources") or ()),
            targets=tuple(str(s) for s in m.get("targets") or ()),
            schedule=Schedule.from_wire(m.get("schedule")),
            watch=Watch.from_wire(m.get("watch")),
            pending=Sync.from_wire(m["pending"]),
            raw=dict(m),
        )


def parse_reply(m: Any) -> Hello | Values | Sync | Done:
    """Turn a decoded reply map into its typed view; raise :class:`SpikebusError` for an
    ``error`` reply and :class:`ProtocolViolation` for anything unknown."""
    if not isinstance(m, dict):
        raise ProtocolViolation(f"reply is not a map: {m!r}")
    op = m.get("op")
    try:
        if op == "error":
            raise SpikebusError(
                code=str(m.get("code", "")),
                message=str(m.get("message", "")),
                field=m.get("field"),
                id=m.get("id"),
                raw=m,
            )
        if op == "sync":
            return Sync.from_wire(m)
        if op == "done":
            return Done.from_wire(m)
        if op == "values":
            return Values.from_wire(m)
        if op == "hello":
            return Hello.from_wire(m)
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolViolation(f"malformed {op!r} reply ({e!r}): {m!r}") from e
    raise ProtocolViolation(f"unknown reply op {op!r}: {m!r}")
