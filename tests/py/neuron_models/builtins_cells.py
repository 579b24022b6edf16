"""NEURON's built-ins of issue 12 and per-segment values, in plain NEURON Python as a user
writes them (tests/py/test_from_neuron.py):

- a cell (hh soma, a tapered dendrite with pas and hh) whose dendrite's diam, cm, g_pas,
  e_pas, gnabar_hh and one segment's ena are set segment by segment (a loop over `dend`,
  and `dend(0.9).ena = ...`), excited by an AlphaSynapse and by an IntFire4 through an
  ExpSyn, and whose spikes drive an IntFire2;
- IntFire1, IntFire2, IntFire4 driven by NetStims (one noisy), IntFire1 driving IntFire4;
- a cell held by an SEClamp (three levels) and one by a VClamp (its dur[]/amp[] arrays, a
  changed gain and tau2), each with a dendrite whose g_pas varies along it.
"""

from neuron import h

h.load_file("stdrun.hoc")

soma = h.Section(name="soma")
soma.L = soma.diam = 20.0
soma.insert("hh")
dend = h.Section(name="dend")
dend.connect(soma(1))
dend.L, dend.nseg = 300.0, 7
dend.insert("pas")
dend.insert("hh")
for i, seg in enumerate(dend):
    seg.diam = 3.0 - 0.3 * i
    seg.cm = 1.0 + 0.1 * i
    seg.g_pas = 0.0001 * (1 + i % 3)
    seg.e_pas = -65.0 - i
    seg.gnabar_hh = 0.12 / (1 + i)
dend.gkbar_hh = 0.012
dend(0.9).ena = 45.0

alpha = h.AlphaSynapse(dend(0.3))
alpha.onset, alpha.tau, alpha.gmax = 4.0, 1.5, 0.03
exc = h.ExpSyn(soma(0.5))
exc.tau = 2.0

drive = h.NetStim()
drive.interval, drive.number, drive.start, drive.noise = 3.1, 40, 1.0, 0.4
if1 = h.IntFire1()
if1.tau, if1.refrac = 6.0, 3.0
if2 = h.IntFire2()
if2.taus, if2.taum, if2.ib = 12.0, 5.0, 0.3
if4 = h.IntFire4()
if4.taue, if4.taui1, if4.taui2, if4.taum = 3.0, 8.0, 16.0, 25.0

ncs = []


def connect(src, tgt, delay, weight):
    nc = h.NetCon(src, tgt)
    nc.delay, nc.weight[0] = delay, weight
    ncs.append(nc)
    return nc


connect(drive, if1, 1.0, 0.45)
connect(drive, if2, 0.5, 0.3)
connect(drive, if4, 2.0, 0.6)
connect(if1, if4, 1.5, 0.5)
connect(if4, exc, 1.0, 0.04)
spike = h.NetCon(soma(0.5)._ref_v, if2, sec=soma)
spike.threshold, spike.delay, spike.weight[0] = -10.0, 2.0, -0.4

clamped = h.Section(name="clamped")
clamped.L = clamped.diam = 15.0
clamped.insert("hh")
cdend = h.Section(name="cdend")
cdend.connect(clamped(1))
cdend.L, cdend.diam, cdend.nseg = 200.0, 1.5, 4
cdend.insert("pas")
for i, seg in enumerate(cdend):
    seg.g_pas = 0.0002 + 0.0001 * i
se = h.SEClamp(clamped(0.5))
se.dur1, se.amp1, se.dur2, se.amp2, se.dur3, se.amp3, se.rs = 5.0, -70.0, 15.0, -25.0, 20.0, -85.0, 2.0

vsoma = h.Section(name="vsoma")
vsoma.L = vsoma.diam = 15.0
vsoma.insert("hh")
vc = h.VClamp(vsoma(0.5))
for i, (d, a) in enumerate([(4.0, -60.0), (12.0, -5.0), (10.0, -75.0)]):
    vc.dur[i], vc.amp[i] = d, a
vc.gain, vc.tau2 = 5e4, 0.05

h.tstop = 45.0
spikebus_names = {alpha: "alpha", exc: "exc", drive: "drive", if1: "if1", if2: "if2", if4: "if4", se: "se",
                  vc: "vc"}
spikebus_record = ["soma.v", "dend(0.3).v", "dend(0.9).v", "dend(0.9).ina", "alpha.i", "exc.g", "if1.m", "if2.m",
                   "if4.m", "if4.e", "clamped.v", "se.i", "se.vc", "cdend(0.9).v", "vsoma.v", "vc.i", "vc.vo"]
