"""NEURON's own run of a model script, for tests/py/test_from_neuron.py: runs SCRIPT as
`spikebus from-neuron` does (stdrun loaded first, then the script as __main__), records the
signals the script names in `spikebus_record` and the spikes of every section's detector
(its 0.5 node, its NetCons' threshold or NEURON's default 10) and every artificial cell,
runs h.run() and writes them as JSON (floats written with repr: read back exactly).

Names are resolved here, independently of from_neuron.py: sections by sec.name(), objects by
hname(), either renamed by the script's `spikebus_names`.

Usage: python neuron_reference.py SCRIPT OUT.json   (in a Python with NEURON 9.0.2)
"""

import json
import os
import runpy
import sys

from neuron import h


def main(script, out):
    h.load_file("stdrun.hoc")
    sys.argv = [script]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    env = runpy.run_path(script, run_name="__main__")
    renamed = {}
    for obj, name in env.get("spikebus_names", {}).items():
        renamed[obj.name() if type(obj).__name__ == "Section" else obj.hname()] = name
    sections = {renamed.get(s.name(), s.name()): s for s in h.allsec()}
    objects, artificial = {}, []
    mt = h.MechanismType(1)
    for i in range(int(mt.count())):
        mt.select(i)
        tname = h.ref("")
        mt.selected(tname)
        for o in h.List(tname[0]):
            name = renamed.get(o.hname(), o.hname())
            objects[name] = o
            if not o.has_loc():  # an artificial cell
                artificial.append(name)

    def ref(signal):
        obj, var = signal.rsplit(".", 1)
        if obj.endswith(")"):
            sec, x = obj[:-1].rsplit("(", 1)
            return getattr(sections[sec](float(x)), "_ref_" + var)
        if obj in sections:
            return getattr(sections[obj](0.5), "_ref_" + var)
        return getattr(objects[obj], "_ref_" + var)

    signals = ["t"] + list(env.get("spikebus_record", []))
    traces = {}
    for sig in signals:
        traces[sig] = h.Vector()
        traces[sig].record(h._ref_t if sig == "t" else ref(sig))
    spikes, keep = {}, []
    for name, sec in sections.items():
        nc = h.NetCon(sec(0.5)._ref_v, None, sec=sec)
        spikes[name] = h.Vector()
        nc.record(spikes[name])
        keep.append(nc)
    for name in artificial:
        nc = h.NetCon(objects[name], None)
        spikes[name] = h.Vector()
        nc.record(spikes[name])
        keep.append(nc)
    h.run()
    with open(out, "w") as f:
        json.dump({"signals": signals, "traces": {k: list(v) for k, v in traces.items()},
                   "spikes": {k: list(v) for k, v in spikes.items() if len(v)}}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
