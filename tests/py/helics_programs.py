#!/usr/bin/env python3
"""Golden callback programs (tests/golden/programs.py) as HELICS federates, driving a spikebus
node run with ``--helics`` (tests/py/test_helics.py writes the node's config).

Each federate runs half a step behind the node: granted the time of sync point k's step n
plus half a step, it reads what the node published there (``node/t``, ``node/end`` and the
program's values) and answers as NEURON's callback would, at a time the node receives
before it is granted the next sync point's time.

``sg_event`` (``extra_scatter_gather`` at every step)::

    t = h.t
    if 2 <= t < 2.025:   NetCon.event to syn at t (weight 0.05) and at t + 0.3 (weight 0.02)
    if 6 <= t < 6.025:   nc's own event at t + 0.0125; nc.weight = 0.3
    if 6.1 <= t < 6.125: nc.weight = 0.1

answered through all three ways in: an event message ``{"target", "t", "weight"}`` to the
node's ``node/events`` endpoint (the event at t, and nc's own event, without a weight), the
input ``ctl/delay`` mapped to an event to syn of weight 0.02 at the sync point's t plus the
value (0.3), and the input ``ctl/weight`` mapped to ``nc.weight``.

``sg_every_3`` (``extra_scatter_gather`` every third step): ``soma.gl_hh *= 1.001``, read
from ``node/gl`` and answered on ``ctl/gl``.

Usage: helics_programs.py PROGRAM BROKER_ADDRESS STEP_NS LOG_FILE (the log, as JSON: the t
of every sync point seen, and the values the callbacks read).
"""

from __future__ import annotations

import json
import sys

import helics as h


def sg_event(fed, reads):
    delay_out = h.helicsFederateRegisterGlobalPublication(fed, "ctl/delay", h.HELICS_DATA_TYPE_DOUBLE, "")
    weight_out = h.helicsFederateRegisterGlobalPublication(fed, "ctl/weight", h.HELICS_DATA_TYPE_DOUBLE, "")
    ep = h.helicsFederateRegisterGlobalEndpoint(fed, "ctl/port", "")

    def event(target: str, te: float, weight: float | None = None) -> None:
        msg = {"target": target, "t": te} | ({} if weight is None else {"weight": weight})
        h.helicsEndpointSendBytesTo(ep, json.dumps(msg).encode(), "node/events")

    def callback(t: float) -> None:
        if 2 <= t < 2.025:
            event("syn", t, 0.05)
            h.helicsPublicationPublishDouble(delay_out, 0.3)
        if 6 <= t < 6.025:
            event("nc", t + 0.0125)
            h.helicsPublicationPublishDouble(weight_out, 0.3)
        if 6.1 <= t < 6.125:
            h.helicsPublicationPublishDouble(weight_out, 0.1)

    return 1, callback


def sg_every_3(fed, reads):
    gl_in = h.helicsFederateRegisterSubscription(fed, "node/gl", "")
    gl_out = h.helicsFederateRegisterGlobalPublication(fed, "ctl/gl", h.HELICS_DATA_TYPE_DOUBLE, "")

    def callback(t: float) -> None:
        gl = h.helicsInputGetDouble(gl_in)
        reads.append(gl)
        h.helicsPublicationPublishDouble(gl_out, gl * 1.001)

    return 3, callback


PROGRAMS = {"sg_event": sg_event, "sg_every_3": sg_every_3}


def main(program: str, broker: str, step_ns: int, log: str) -> int:
    fi = h.helicsCreateFederateInfo()
    h.helicsFederateInfoSetCoreTypeFromString(fi, "zmq")
    h.helicsFederateInfoSetBroker(fi, broker)
    fed = h.helicsCreateCombinationFederate("ctl", fi)
    t_in = h.helicsFederateRegisterSubscription(fed, "node/t", "")
    end_in = h.helicsFederateRegisterSubscription(fed, "node/end", "")
    reads: list[float] = []
    every, callback = PROGRAMS[program](fed, reads)
    h.helicsFederateEnterExecutingMode(fed)
    seen = []
    n = 0  # the step of the sync point answered next
    while True:
        h.helicsFederateRequestTime(fed, (n * step_ns + step_ns // 2) / 1e9)
        if not h.helicsInputIsUpdated(t_in):
            print(f"helics_programs: nothing from the node at step {n}", file=sys.stderr)
            return 1
        t = h.helicsInputGetDouble(t_in)
        if h.helicsInputGetDouble(end_in) != 0.0:
            break
        seen.append(t)
        callback(t)
        n += every
    h.helicsFederateDisconnect(fed)
    h.helicsFederateFree(fed)
    h.helicsCloseLibrary()
    with open(log, "w", encoding="utf-8") as f:
        json.dump({"t": seen, "reads": reads}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
