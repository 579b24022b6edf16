"""spikebus_client: steer and observe a spikebus node from Python.

spikebus is a co-simulation node that reproduces NEURON's fixed-step simulation bit for bit
and is steered over ZeroMQ (protocol version 2, ``schemas/README.md`` in the repository).
Each sync point sits where NEURON runs the callback it stands for.

- :class:`Controller`: a client of ``--control``: ``hello(takeover=False)``, ``get(names)``,
  ``cont(actions)`` returning a :class:`Sync` or :class:`Done`, ``act(...)``, ``stop()``, and
  the loop helper ``run(every_ms=...)``; errors raise :class:`SpikebusError`, and nothing
  answering the first exchange within 2 s raises :class:`NodeUnreachable`.
- action builders: :func:`set_`, :func:`event`, :func:`schedule`, :func:`watch`,
  :func:`stop`.
- :class:`Observer`: the SUB side of ``--pub``, yielding :class:`StreamMessage`.
- :class:`Node`: a node subprocess as a context manager (reads the ``listening`` line; stops
  the node gracefully, and never lets it outlive this process).
- :mod:`spikebus_client.aio`: the asyncio controller and observer;
  :mod:`spikebus_client.data`: files and stream as numpy arrays / pandas DataFrames;
  :mod:`spikebus_client.pytest_plugin`: the ``spikebus_node`` fixture;
  :mod:`spikebus_client.ros2_bridge`: a ROS 2 bridge.
- :func:`find_binary`: the node binary (``$SPIKEBUS``, a checkout's build, or the
  ``spikebus`` command installed with the wheel).

The NEURON program of the seed document, whose callback runs in every step::

    def update_interval():
        if int(h.t) % 50 == 0:
            ns.interval += 10

    h.CVode().extra_scatter_gather(0, update_interval)

becomes, over the bus (a ``scatter_gather`` sync point is where that callback runs)::

    from spikebus_client import Controller, set_

    with Controller("tcp://127.0.0.1:40123") as c:
        for sync in c.run(every_ms=0.025, kind="scatter_gather", watch_values=["ns.interval"]):
            if int(sync.t) % 50 == 0:
                c.act(set_("ns.interval", sync.values["ns.interval"] + 10))
    # the run has ended: c.done.reason == "end"
"""

import logging

from .actions import Action, discard, event, restore, schedule, set_, snapshot, stop, watch
from .controller import Controller, pack, steps_of, unpack
from .messages import (
    PROTOCOL_VERSION,
    Done,
    Hello,
    NodeUnreachable,
    Param,
    ProtocolViolation,
    Schedule,
    Spike,
    SpikebusError,
    SpikebusTimeout,
    Sync,
    Values,
    Watch,
    parse_reply,
)
from .node import Node, NodeError, find_binary, parse_listening
from .stream import TOPICS, Observer, StreamMessage

__version__ = "0.1.0"

# A library logs, the application decides where to (logging.basicConfig(level=...)).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Action",
    "Controller",
    "Done",
    "Hello",
    "Node",
    "NodeError",
    "NodeUnreachable",
    "Observer",
    "PROTOCOL_VERSION",
    "Param",
    "ProtocolViolation",
    "Schedule",
    "Spike",
    "SpikebusError",
    "SpikebusTimeout",
    "StreamMessage",
    "Sync",
    "TOPICS",
    "Values",
    "Watch",
    "discard",
    "event",
    "find_binary",
    "pack",
    "parse_listening",
    "parse_reply",
    "restore",
    "schedule",
    "set_",
    "snapshot",
    "steps_of",
    "stop",
    "unpack",
    "watch",
]
