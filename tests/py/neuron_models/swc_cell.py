"""A cell from an SWC file in plain NEURON Python (tests/py/test_from_neuron.py): NEURON's
Import3d reads tests/models/swc/random_219.swc (a branched soma, four neurite types), hh in
the somas, pas elsewhere, nseg by the d_lambda rule (the NEURON book's geom_nseg), a NetStim
driving an Exp2Syn on an apical branch, a current step into the soma."""

import os

from neuron import h

h.load_file("stdrun.hoc")
h.load_file("import3d.hoc")

SWC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "swc", "random_219.swc")
reader = h.Import3d_SWC_read()
reader.quiet = 1
reader.input(SWC)
h.Import3d_GUI(reader, 0).instantiate(None)

for sec in h.allsec():
    sec.Ra = 100.0
    sec.cm = 1.0
    if sec.name().startswith("soma"):
        sec.insert("hh")
    else:
        sec.insert("pas")
        sec.g_pas = 5e-5
        sec.e_pas = -65.0
    sec.nseg = int((sec.L / (0.1 * h.lambda_f(100, sec=sec)) + 0.9) / 2) * 2 + 1

syn = h.Exp2Syn(h.apic[4](0.5))
syn.tau1, syn.tau2 = 0.3, 3.0
ns = h.NetStim()
ns.interval, ns.number, ns.start = 4.0, 6, 2.0
nc = h.NetCon(ns, syn)
nc.weight[0] = 0.05
stim = h.IClamp(h.soma[0](0.5))
stim.delay, stim.dur, stim.amp = 20.0, 5.0, 1.0
h.tstop = 40.0

spikebus_names = {syn: "syn", ns: "ns", stim: "stim"}
spikebus_record = ["soma[0].v", "apic[4](0.5).v", "dend[1].v", "syn.g", "stim.i"]
