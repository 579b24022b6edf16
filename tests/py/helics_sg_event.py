#!/usr/bin/env python3
"""The golden callback program ``sg_event`` (tests/golden/programs.py) as a HELICS federate,
driving a spikebus node run with ``--helics`` (tests/py/test_helics.py writes its config).

NEURON's program, in ``CVode.extra_scatter_gather``, at every step::

    t = h.t
    if 2 <= t < 2.025:   NetCon.event to syn at t (weight 0.05) and at t + 0.3 (weight 0.02)
    if 6 <= t < 6.025:   nc's own event at t + 0.0125; nc.weight = 0.3
    if 6.1 <= t < 6.125: nc.weight = 0.1

Here the node publishes ``node/t`` at each step's scatter_gather point; this federate, half
a step later, answers through all three ways in: an event message ``{"target", "t",
"weight"}`` to the node's ``node/events`` endpoint (the event at t, and nc's own event,
without a weight), the input ``ctl/delay`` mapped to an event to syn of weight 0.02 at the
sync point's t plus the value (0.3), and the input ``ctl/weight`` mapped to ``nc.weight``.

Usage: helics_sg_event.py BROKER_ADDRESS STEP_NS LOG_FILE (the log: the t of every sync point
seen, as JSON).
"""

from __future__ import annotations

import json
import sys

import helics as h


def main(broker: str, step_ns: int, log: str) -> int:
    fi = h.helicsCreateFederateInfo()
    h.helicsFederateInfoSetCoreTypeFromString(fi, "zmq")
    h.helicsFederateInfoSetBroker(fi, broker)
    fed = h.helicsCreateCombinationFederate("ctl", fi)
    t_in = h.helicsFederateRegisterSubscription(fed, "node/t", "")
    end_in = h.helicsFederateRegisterSubscription(fed, "node/end", "")
    delay_out = h.helicsFederateRegisterGlobalPublication(fed, "ctl/delay", h.HELICS_DATA_TYPE_DOUBLE, "")
    weight_out = h.helicsFederateRegisterGlobalPublication(fed, "ctl/weight", h.HELICS_DATA_TYPE_DOUBLE, "")
    ep = h.helicsFederateRegisterGlobalEndpoint(fed, "ctl/port", "")
    h.helicsFederateEnterExecutingMode(fed)

    def event(target: str, te: float, weight: float | None = None) -> None:
        msg = {"target": target, "t": te} | ({} if weight is None else {"weight": weight})
        h.helicsEndpointSendBytesTo(ep, json.dumps(msg).encode(), "node/events")

    seen = []
    k = 0
    while True:
        h.helicsFederateRequestTime(fed, (k * step_ns + step_ns // 2) / 1e9)
        k += 1
        if not h.helicsInputIsUpdated(t_in):
            print(f"helics_sg_event: nothing from the node at sync point {k - 1}", file=sys.stderr)
            return 1
        t = h.helicsInputGetDouble(t_in)
        if h.helicsInputGetDouble(end_in) != 0.0:
            break
        seen.append(t)
        if 2 <= t < 2.025:
            event("syn", t, 0.05)
            h.helicsPublicationPublishDouble(delay_out, 0.3)
        if 6 <= t < 6.025:
            event("nc", t + 0.0125)
            h.helicsPublicationPublishDouble(weight_out, 0.3)
        if 6.1 <= t < 6.125:
            h.helicsPublicationPublishDouble(weight_out, 0.1)
    h.helicsFederateDisconnect(fed)
    h.helicsFederateFree(fed)
    h.helicsCloseLibrary()
    with open(log, "w", encoding="utf-8") as f:
        json.dump({"t": seen}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
