"""A network of 120 cells written in plain NEURON Python, as a user would (for
tests/py/test_from_neuron.py): a Cell class (an hh soma and a passive dendrite of 3
segments, an ExpSyn on the dendrite, an inhibitory Exp2Syn on the soma), cells named by
their __repr__ (`Cell[7].soma`), 100 excitatory cells each exciting 5 others and 20
inhibitory cells each inhibiting 8, all chosen with a seeded random.Random, 12 NetStims
(half of them noisy) driving the first cells, and an IClamp on cell 0."""

import random

from neuron import h

h.load_file("stdrun.hoc")


class Cell:
    def __init__(self, gid, rng):
        self.gid = gid
        self.soma = h.Section(name="soma", cell=self)
        self.soma.L = self.soma.diam = 18.0 + 4.0 * rng.random()
        self.soma.insert("hh")
        self.soma.gnabar_hh = 0.11 + 0.02 * rng.random()
        self.dend = h.Section(name="dend", cell=self)
        self.dend.connect(self.soma(1))
        self.dend.L = 150.0
        self.dend.diam = 1.5
        self.dend.nseg = 3
        self.dend.Ra = 120.0
        self.dend.insert("pas")
        self.dend.g_pas = 0.0002
        self.dend.e_pas = -65.0
        self.exc = h.ExpSyn(self.dend(0.7))
        self.exc.tau = 2.0
        self.inh = h.Exp2Syn(self.soma(0.5))
        self.inh.tau1, self.inh.tau2, self.inh.e = 0.5, 6.0, -80.0

    def __repr__(self):
        return f"Cell[{self.gid}]"


rng = random.Random(20261127)
NE, NI = 100, 20
cells = [Cell(i, rng) for i in range(NE + NI)]
netcons = []
for pre in cells:
    n, syn_of, w = (5, "exc", 0.004) if pre.gid < NE else (8, "inh", 0.002)
    for post in rng.sample([c for c in cells if c is not pre], n):
        nc = h.NetCon(pre.soma(0.5)._ref_v, getattr(post, syn_of), sec=pre.soma)
        nc.threshold = -10.0
        nc.delay = rng.choice([1.0, 1.5, 2.0, 2.5])
        nc.weight[0] = w * (0.5 + rng.random())
        netcons.append(nc)
stims = []
for k in range(12):
    ns = h.NetStim()
    ns.interval, ns.number, ns.start = 8.0 + k, 20, 1.0 + 0.5 * k
    ns.noise = 0.7 if k % 2 else 0.0
    nc = h.NetCon(ns, cells[k * 3].exc)
    nc.weight[0] = 0.02
    nc.delay = 0.5
    stims.append((ns, nc))
clamp = h.IClamp(cells[0].soma(0.5))
clamp.delay, clamp.dur, clamp.amp = 5.0, 3.0, 0.3
h.tstop = 80.0
h.dt = 0.025
h.celsius = 10.0

spikebus_record = ["Cell[0].soma.v", "Cell[57].dend(0.9).v", "Cell[110].soma.m_hh", "ExpSyn[3].g", "Exp2Syn[101].g"]
