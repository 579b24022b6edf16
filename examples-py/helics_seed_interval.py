#!/usr/bin/env python3
"""The seed document's callback program as a HELICS federate, steering a spikebus node that
runs as another federate (``spikebus run --helics examples-py/helics/seed_interval.json``).

The NEURON program registers, with ``h.CVode().extra_scatter_gather(0, update_interval)``, a
callback that runs at every time step::

    def update_interval():
        if int(h.t) % 50 == 0:
            ns.interval += 10

The node's config makes its sync point the ``scatter_gather`` position of every step (HELICS
time n x 25 us for step n) and publishes ``spikebus/t`` (NEURON's ``h.t`` there),
``spikebus/ns.interval`` and ``spikebus/end``; it applies ``seed/ns.interval`` to
``ns.interval`` at the sync point the value answers. This federate runs half a step behind:
granted the time of step n plus 12.5 us, it reads what the node published at step n and
answers exactly as the callback would (the node, waiting for the time of step n + 1, is
granted it only after this answer). It also receives the node's spikes as messages at
``seed/spikes``.

Start a broker, the node and this federate (any order; ``pip install helics==3.6.1``)::

    helics_broker --federates=2 --core_type=zmq --port=23404 &
    HELICS_LIBRARY=... target/release/spikebus run --helics examples-py/helics/seed_interval.json \\
        --set soma.threshold=0 --out out &
    python3 examples-py/helics_seed_interval.py --broker tcp://127.0.0.1:23404

The node's ``out/traces.csv`` and ``out/spikes.csv`` are then NEURON's run of the seed
program, bit for bit (``tests/golden/seed_interval.json``; ``tests/py/test_helics.py``).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The seed document's per-step callback as a HELICS federate.")
    p.add_argument("--broker", default="tcp://127.0.0.1:23404", help="the broker's address (default: %(default)s)")
    p.add_argument("--core-type", default="zmq", help="HELICS core type (default: %(default)s)")
    p.add_argument("--core-init", default="", help="extra HELICS core options")
    p.add_argument("--name", default="seed", help="this federate's name and key prefix (default: %(default)s)")
    p.add_argument("--node", default="spikebus", help="the node's key prefix (default: %(default)s)")
    p.add_argument("--dt", type=float, default=0.025, help="the node's dt, ms (default: %(default)s)")
    p.add_argument("--time-scale", type=float, default=1e-3, help="HELICS seconds per ms (default: %(default)s)")
    p.add_argument("--log", metavar="FILE", help="write what this federate saw (spikes, final ns.interval) as JSON")
    args = p.parse_args(argv)

    import helics as h

    step_ns = round(args.dt * args.time_scale * 1e9)
    fi = h.helicsCreateFederateInfo()
    h.helicsFederateInfoSetCoreTypeFromString(fi, args.core_type)
    h.helicsFederateInfoSetCoreInitString(fi, args.core_init)
    if args.broker:
        h.helicsFederateInfoSetBroker(fi, args.broker)
    fed = h.helicsCreateCombinationFederate(args.name, fi)
    t_in = h.helicsFederateRegisterSubscription(fed, f"{args.node}/t", "")
    interval_in = h.helicsFederateRegisterSubscription(fed, f"{args.node}/ns.interval", "")
    end_in = h.helicsFederateRegisterSubscription(fed, f"{args.node}/end", "")
    interval_out = h.helicsFederateRegisterGlobalPublication(fed, f"{args.name}/ns.interval", h.HELICS_DATA_TYPE_DOUBLE, "")
    spikes_ep = h.helicsFederateRegisterGlobalEndpoint(fed, f"{args.name}/spikes", "")
    h.helicsFederateEnterExecutingMode(fed)

    spikes: dict[str, list[float]] = {}
    syncs = 0
    final_interval = None
    status = 0
    k = 0
    while True:
        # Half a step after sync point k (HELICS time k x step): the node has published sync
        # point k there and asked for the next sync point's time, which HELICS grants it only
        # once this federate has answered (published at this time, before the next step's).
        h.helicsFederateRequestTime(fed, (k * step_ns + step_ns // 2) / 1e9)
        k += 1
        while h.helicsEndpointHasMessage(spikes_ep):
            m = json.loads(h.helicsMessageGetString(h.helicsEndpointGetMessage(spikes_ep)))
            spikes.setdefault(m["source"], []).append(m["t"])
        if not h.helicsInputIsUpdated(t_in):
            print(f"helics_seed_interval: no value from the node at step {k}: it left the federation", file=sys.stderr)
            status = 1
            break
        t = h.helicsInputGetDouble(t_in)
        interval = h.helicsInputGetDouble(interval_in)
        if h.helicsInputGetDouble(end_in) != 0.0:
            final_interval = interval  # the end point: code after h.run()
            break
        syncs += 1
        # The callback, at the scatter_gather point of step k-1 (h.t = t).
        if int(t) % 50 == 0:
            h.helicsPublicationPublishDouble(interval_out, interval + 10)
    h.helicsFederateDisconnect(fed)
    h.helicsFederateFree(fed)
    h.helicsCloseLibrary()
    counts = ", ".join(f"{s} {len(v)}" for s, v in sorted(spikes.items()))
    print(f"helics_seed_interval: {syncs} sync points; final ns.interval={final_interval!r}; spikes: {counts}", flush=True)
    if args.log:
        with open(args.log, "w", encoding="utf-8") as f:
            json.dump({"syncs": syncs, "final_interval": final_interval, "spikes": spikes}, f)
    return status


if __name__ == "__main__":
    sys.exit(main())
