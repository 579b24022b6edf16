"""Builders for the actions of a ``continue`` request (``schemas/README.md``, "continue").

Each returns the plain map that goes on the wire, so actions can be inspected, logged or
built by hand.  Fields left as ``None`` are not sent (the node keeps its current setting).
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["Action", "set_", "event", "schedule", "watch", "stop"]

#: One action of a ``continue`` request: a map with ``op`` and its fields.
Action = dict[str, Any]


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

    ``target`` is a synapse or artificial cell (``weight`` required), or a NetCon (``weight``
    may be omitted: the NetCon's own weight and target are used).
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
    init: bool | None = None,
) -> Action:
    """Change the sync schedule; arguments left as ``None`` keep the node's setting.

    Args:
        every: pause every N steps (0 = off; 1 = every step, like ``extra_scatter_gather``).
        add_at: pause at the first step point with t_n + dt/2 >= T, for each T.
        remove_at: cancel previously added times.
        on_spike: pause after each spike of these sources (``[]`` = off).
        init: pause at the ``init`` point (after INITIAL blocks).
    """
    a: Action = {"op": "schedule"}
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"every must be an integer >= 0, got {every!r}")
        a["every"] = every
    if add_at is not None:
        a["add_at"] = [_number(x) for x in add_at]
    if remove_at is not None:
        a["remove_at"] = [_number(x) for x in remove_at]
    if on_spike is not None:
        if isinstance(on_spike, str):
            raise TypeError("on_spike is a list of source names, not one string")
        a["on_spike"] = [str(s) for s in on_spike]
    if init is not None:
        a["init"] = bool(init)
    return a


def watch(values: Iterable[str] | None = None, spikes: bool | None = None) -> Action:
    """Choose what sync reports carry: the listed parameters/signals, and (``spikes``)
    every spike since the previous report."""
    a: Action = {"op": "watch"}
    if values is not None:
        if isinstance(values, str):
            raise TypeError("values is a list of names, not one string")
        a["values"] = [str(v) for v in values]
    if spikes is not None:
        a["spikes"] = bool(spikes)
    return a


def stop() -> Action:
    """End the run now: the node writes its files, replies ``done`` (reason ``stop``) and
    exits 0."""
    return {"op": "stop"}
