"""Builders for the actions of a ``continue`` request (``schemas/README.md``, "continue").

Each returns the plain map that goes on the wire, so actions can be inspected, logged or
built by hand.  Fields left as ``None`` are not sent (the node keeps its current setting).
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["Action", "set_", "event", "schedule", "watch", "stop", "snapshot", "restore", "discard"]

Action = dict[str, Any]
"""One action of a ``continue`` request: a map with ``op`` and its fields."""


def _number(x: float | int) -> float | int:
    # bool is an int in Python, but never a number on the wire.
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"expected a number, got {x!r}")
    return x


def set_(name: str, value: float | int) -> Action:
    """Set a parameter by NEURON's name (``ns.interval``, ``nc.weight``, ``syn.tau``...).

    At the ``start`` point it takes effect in initialization; later, from the next
    computation that uses it.
    """
    return {"op": "set", "name": str(name), "value": _number(value)}


def event(target: str, t: float, weight: float | None = None) -> Action:
    """Deliver an event at time ``t`` (ms, >= the current t) to ``target``, as NEURON's
    ``NetCon.event(t)``.

    ``target`` is a synapse or artificial cell (``weight`` required), or a NetCon: without
    ``weight`` it is that NetCon's own event (its target gets the NetCon's weight as it is at
    delivery, as in NEURON); with ``weight``, that weight goes to the NetCon's target.
    """
    a: Action = {"op": "event", "target": str(target), "t": _number(t)}
    if weight is not None:
        a["weight"] = _number(weight)
    return a


def schedule(
    every: int | None = None,
    add_at: Iterable[float] | None = None,
    remove_at: Iterable[float] | None = None,
    on_spike: Iterable[str] | None = None,
    init: Iterable[int] | None = None,
    scatter_gather: int | None = None,
) -> Action:
    """Change the sync schedule; arguments left as ``None`` keep the node's setting.

    Each sync kind sits where NEURON runs the callback it stands for (``schemas/README.md``):

    Args:
        every: a sync at the boundary of every Nth step (0 = off): the state at t_n after its
            events, where stdrun's ``advance()`` returns (NEURON code after ``fadvance()``).
        add_at: a sync for each time T, as ``CVode.event(T, callback)``: at the end of the
            step whose events reach T.
        remove_at: cancel previously added times.
        on_spike: a sync at each spike of these sources (``[]`` = off), as
            ``NetCon.record(callback)``: before the spike's NetCon events are queued.
        init: FInitializeHandler types (0, 1, 2, 3) to sync at during initialization.
        scatter_gather: a sync inside every Nth step (0 = off), as
            ``CVode.extra_scatter_gather(0, f)``: v already updated, states not yet.
    """
    a: Action = {"op": "schedule"}
    for key, n in (("every", every), ("scatter_gather", scatter_gather)):
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"{key} must be an integer >= 0, got {n!r}")
            a[key] = n
    if add_at is not None:
        a["add_at"] = [_number(x) for x in add_at]
    if remove_at is not None:
        a["remove_at"] = [_number(x) for x in remove_at]
    if on_spike is not None:
        if isinstance(on_spike, str):
            raise TypeError("on_spike is a list of source names, not one string")
        a["on_spike"] = [str(s) for s in on_spike]
    if init is not None:
        if isinstance(init, (bool, int)):
            raise TypeError("init is a list of FInitializeHandler types, e.g. [1]")
        kinds = [int(k) for k in init]
        if any(k not in (0, 1, 2, 3) for k in kinds):
            raise ValueError(f"FInitializeHandler types are 0, 1, 2, 3; got {kinds}")
        a["init"] = kinds
    return a


def watch(
    values: Iterable[str] | None = None,
    spikes: bool | None = None,
    hash: bool | None = None,
    hash_every: int | None = None,
    telemetry: bool | None = None,
) -> Action:
    """Choose what sync reports carry: the listed parameters/signals, (``spikes``) every
    spike since the previous report, (``hash``) the state hash, (``telemetry``) the
    exchange's wait and simulation times; ``hash_every`` N > 0 publishes the state hash on the
    stream every N steps."""
    a: Action = {"op": "watch"}
    if values is not None:
        if isinstance(values, str):
            raise TypeError("values is a list of names, not one string")
        a["values"] = [str(v) for v in values]
    for key, flag in (("spikes", spikes), ("hash", hash), ("telemetry", telemetry)):
        if flag is not None:
            a[key] = bool(flag)
    if hash_every is not None:
        if isinstance(hash_every, bool) or not isinstance(hash_every, int) or hash_every < 0:
            raise ValueError(f"hash_every must be an integer >= 0, got {hash_every!r}")
        a["hash_every"] = hash_every
    return a


def stop() -> Action:
    """End the run now: the node writes its files, replies ``done`` (reason ``stop``) and
    exits 0."""
    return {"op": "stop"}


def _id(x: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise ValueError(f"a snapshot id is an integer >= 0, got {x!r}")
    return x


def snapshot() -> Action:
    """Keep the whole state of the run here, in the node; the reply's ``snapshots`` (and
    :attr:`Sync.snapshots`) gives its id."""
    return {"op": "snapshot"}


def restore(id: int) -> Action:
    """Go back to snapshot ``id`` (the last action of its request): the reply is the report
    of the snapshot's sync point, and the run goes on from there bit for bit as it did."""
    return {"op": "restore", "id": _id(id)}


def discard(id: int) -> Action:
    """Forget snapshot ``id`` (its memory is freed)."""
    return {"op": "discard", "id": _id(id)}
