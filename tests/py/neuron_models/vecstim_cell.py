"""A VecStim driving a synapse, with a second synapse driven by the cell's own spikes, in
plain NEURON Python (tests/py/test_from_neuron.py). VecStim is not built into NEURON: the
library compiled from tests/golden/mod (path in $SPIKEBUS_TEST_MECHLIB) is loaded first."""

import os

from neuron import h

h.nrn_load_dll(os.environ["SPIKEBUS_TEST_MECHLIB"])
h.load_file("stdrun.hoc")
soma = h.Section(name="soma")
soma.L = soma.diam = 20.0
soma.insert("hh")
syn = h.ExpSyn(soma(0.5))
syn.tau = 1.5
times = h.Vector([2.0, 2.0, 5.5, 9.25, 30.0])
vs = h.VecStim()
vs.play(times)
nc = h.NetCon(vs, syn)
nc.weight[0] = 0.02
fb = h.ExpSyn(soma(0.5))
fb.e, fb.tau = -80.0, 4.0
nc2 = h.NetCon(soma(0.5)._ref_v, fb, sec=soma)
nc2.threshold, nc2.delay, nc2.weight[0] = 0.0, 3.0, 0.01
h.tstop = 25.0  # VecStim's time 30 is after tstop: read by running on
spikebus_names = {syn: "syn", fb: "fb", vs: "vs"}
spikebus_record = ["soma.v", "syn.g", "fb.i"]
