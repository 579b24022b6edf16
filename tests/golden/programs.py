"""Callback programs: NEURON programs written once, run two ways.

Each program here is a function of a *host*, the one thing that differs between the two ways:

- in NEURON 9.0.2 (``generate.py``'s ``NeuronHost``) the program registers real NEURON
  callbacks: ``FInitializeHandler``, ``CVode.event``, ``CVode.extra_scatter_gather``,
  ``NetCon.record(callback)``, stdrun's ``advance()`` hook, and calls ``NetCon.event``;
- over the bus (``tests/py/bus_host.py``'s ``BusHost``) the same calls become a spikebus
  schedule, sync points and ``set``/``event`` actions, through ``spikebus_client``.

The golden data of a program variant is NEURON's run; the bus run must give the same traces,
spikes and callback log (every callback's kind and ``h.t``, every value it read), bit for bit.

The host interface (what a program may use):

    sim.t                         h.t inside the running callback
    sim.get(name) -> float        a parameter or signal (spikebus names: "soma.v", "nc.weight")
    sim.set(name, value)          a parameter
    sim.event(target, te, w=None) NetCon.event(te): a NetCon's own event (w None), or an event
                                  of weight w to a synapse / artificial cell / NetCon's target
    sim.init(kind, cb)            FInitializeHandler(kind, cb), kind 0..3
    sim.at(T, cb)                 CVode.event(T, cb) (at set-up: registered at initialization,
                                  by a type-0 handler; in a callback: registered then)
    sim.scatter_gather(cb, n=1)   CVode.extra_scatter_gather(0, f), f calling cb every n steps
    sim.every(n, cb)              stdrun's per-step hook (code after fadvance() in advance(),
                                  and after finitialize() in init()), every n steps
    sim.on_spike(source, cb)      NetCon.record(cb) on the source's detector / artificial cell
    sim.at_end(cb)                code after h.run() returns

A program may define callbacks that register further callbacks (``sim.at`` from a callback).
Only ``set``, ``event`` and ``at`` act on the simulation; reads go through ``get``.
"""


def seed_interval(sim):
    """The seed document's program: every step, when int(h.t) % 50 == 0, ns.interval += 10."""

    def cb():
        if int(sim.t) % 50 == 0:
            sim.set("ns.interval", sim.get("ns.interval") + 10)

    sim.scatter_gather(cb)
    sim.at_end(lambda: sim.get("ns.interval"))


def spike_weight(sim):
    """NetCon.record on the soma: each soma spike scales nc.weight by 0.8 before the events
    of its step are delivered (issue 7, failure 1: ns.interval = 3.86)."""

    def cb():
        sim.set("nc.weight", sim.get("nc.weight") * 0.8)
        sim.get("syn.g")
        sim.get("soma.v")

    sim.on_spike("soma", cb)


def at_interval(sim):
    """CVode.event(7.5) sets ns.interval = 5 (issue 7, failure 2: ns.interval = 7.51)."""

    def cb():
        sim.get("ns.interval")
        sim.get("syn.g")
        sim.set("ns.interval", 5)

    sim.at(7.5, cb)


def sg_gnabar(sim):
    """extra_scatter_gather: at the first h.t >= 10, soma.gnabar_hh = 0.2 (issue 7, failure 3):
    set after the voltage update, it acts from the next step's currents."""
    done = []

    def cb():
        if not done and sim.t >= 10:
            done.append(sim.t)
            sim.get("soma.v")
            sim.set("soma.gnabar_hh", 0.2)

    sim.scatter_gather(cb)


def sg_synapse(sim):
    """extra_scatter_gather sets a synapse parameter (syn.tau) once, and syn.e later: the state
    update of the same step already uses the new tau."""

    def cb():
        if 10 <= sim.t < 10.025:
            sim.set("syn.tau", 3.0)
        if 30 <= sim.t < 30.025:
            sim.get("syn.g")
            sim.set("syn.e", -10.0)

    sim.scatter_gather(cb)


def sg_celsius(sim):
    """extra_scatter_gather raises celsius twice: hh's tables are rebuilt only when the next
    step begins, while exact rates use the new temperature at once."""

    def cb():
        if 5 <= sim.t < 5.025:
            sim.set("celsius", 16.3)
        if 12 <= sim.t < 12.025:
            sim.get("soma.m_hh")
            sim.set("celsius", 22.0)

    sim.scatter_gather(cb)


def sg_event(sim):
    """extra_scatter_gather injects events: at h.t = t_n an event at h.t (delivered at the end
    of the same step) and one at h.t + 0.3; a NetCon's own event (its weight read at delivery)."""

    def cb():
        t = sim.t
        if 2 <= t < 2.025:
            sim.event("syn", t, 0.05)
            sim.event("syn", t + 0.3, 0.02)
        if 6 <= t < 6.025:
            sim.event("nc", t + 0.0125)
            sim.set("nc.weight", 0.3)
        if 6.1 <= t < 6.125:
            sim.set("nc.weight", 0.1)

    sim.scatter_gather(cb)


def sg_and_every(sim):
    """extra_scatter_gather and the per-step hook together: the scatter-gather callback sees
    v_{n+1} before the states, the per-step hook the state after the step's events."""

    def sg():
        if int(sim.t * 40) % 97 == 0:
            sim.get("soma.v")
            sim.get("soma.m_hh")
        if 8 <= sim.t < 8.025:
            sim.set("syn.tau", 5.0)

    def step():
        if int(sim.t * 40) % 101 == 0:
            sim.get("soma.v")
            sim.get("syn.g")
        if 4 <= sim.t < 4.025:
            sim.set("nc.weight", 0.2)

    sim.scatter_gather(sg)
    sim.every(1, step)


def sg_every_3(sim):
    """Every third step: scatter-gather callbacks and per-step hooks with n = 3."""

    def sg():
        sim.set("soma.gl_hh", sim.get("soma.gl_hh") * 1.001)

    def step():
        sim.get("soma.v")

    sim.scatter_gather(sg, 3)
    sim.every(3, step)


def at_window(sim):
    """Events before, at and after an `at` time within one half-step window, and two `at`
    times in one step: the callbacks run at the end of the step that delivered them."""

    def start():
        sim.event("syn", 5.005, 0.01)
        sim.event("syn", 5.01, 0.02)
        sim.event("syn", 5.012, 0.03)

    def at1():
        sim.get("syn.g")
        sim.set("nc.weight", 0.05)

    def at2():
        sim.get("syn.g")
        sim.get("nc.weight")

    sim.init(1, start)
    sim.at(5.01, at1)
    sim.at(5.011, at2)
    sim.at(5.03, at2)


def at_netstim_time(sim):
    """`at` times equal to NetStim times: 20 (a multiple of dt, which CVode.event moves to
    19.99375) and 7.51 (not a multiple: the same time as the NetStim's event)."""

    def cb():
        sim.get("syn.g")
        sim.set("ns.interval", sim.get("ns.interval") + 0.5)

    sim.at(7.51, cb)
    sim.at(20.0, cb)


def at_registered_late(sim):
    """CVode.event registered from callbacks: from an `at` callback and from a spike."""

    def later():
        sim.get("soma.v")
        sim.set("syn.tau", 8.0)

    def first():
        sim.at(sim.t + 2.5, later)
        sim.at(sim.t + 0.0125, later)

    def spike():
        sim.at(sim.t + 1.0, later)

    sim.at(3.0, first)
    sim.on_spike("soma", spike)


def spike_and_at(sim):
    """A spike sync and an `at` sync in the same step (soma spike at 3.85, at 3.86)."""

    def spike():
        sim.get("syn.g")
        sim.set("syn.tau", 10.0)

    def at():
        sim.get("syn.g")
        sim.set("syn.tau", 20.0)

    sim.on_spike("soma", spike)
    sim.at(3.86, at)


def spike_event(sim):
    """A spike callback injects events: at its own time (delivered in the same window) and one
    step later; another changes the NetCon delay, which the spike's own events already use."""

    def soma():
        sim.event("syn", sim.t, 0.05)
        sim.event("syn", sim.t + 0.025, 0.01)

    def ns():
        sim.set("nc.delay", sim.get("nc.delay") + 0.5)

    sim.on_spike("soma", soma)
    sim.on_spike("ns", ns)


def netstim_spike(sim):
    """NetCon.record on a NetStim: the callback runs inside its NET_RECEIVE, before it draws
    the next interval, so a new interval applies to the very next spike."""

    def cb():
        sim.set("ns.interval", sim.get("ns.interval") * 0.9)
        sim.get("syn.g")

    sim.on_spike("ns", cb)


def init_handlers(sim):
    """FInitializeHandler types 3, 0, 1, 2: each reads where it runs and acts there."""

    def t3():
        sim.get("soma.v")
        sim.set("v_init", -70.0)

    def t0():
        sim.get("soma.v")
        sim.get("soma.m_hh")
        sim.set("ns.start", 1.0)

    def t1():
        sim.get("soma.m_hh")
        sim.get("syn.g")
        sim.event("syn", 0.0, 0.02)
        sim.event("nc", 0.5)

    def t2():
        sim.get("syn.g")
        sim.get("soma.v")
        sim.set("syn.tau", 5.0)

    sim.init(3, t3)
    sim.init(0, t0)
    sim.init(1, t1)
    sim.init(2, t2)


def ball_stick_program(sim):
    """A multi-compartment cell: scatter-gather reads along the dendrite and changes g_pas,
    a soma spike callback sets the dendrite's threshold, an `at` time reads the middle."""

    def sg():
        if int(sim.t * 40) % 200 == 0:
            sim.get("dend(0.1).v")
            sim.get("dend(0.9).v")
        if 20 <= sim.t < 20.025:
            sim.set("dend.g_pas", 0.0004)

    def spike():
        sim.get("dend(0.5).v")
        sim.set("dend.threshold", -30.0)

    sim.scatter_gather(sg)
    sim.on_spike("soma", spike)
    sim.at(40.0, lambda: sim.get("soma.v"))


def segments_program(sim):
    """Per-segment values over the bus: scatter-gather sets one segment's g_pas, then another's
    gnabar_hh and diam; a soma spike sets one segment's cm; reads go through single segments."""

    def sg():
        if 10 <= sim.t < 10.025:
            sim.get("dend(0.3).g_pas")
            sim.set("dend(0.3).g_pas", 0.002)
        if 15 <= sim.t < 15.025:
            sim.set("dend(0.7).gnabar_hh", 0.1)
            sim.set("dend(0.9).diam", 0.6)
            sim.get("dend(0.9).diam")
            sim.get("dend(0.5).diam")

    def spike():
        sim.get("dend(0.5).cm")
        sim.set("dend(0.5).cm", 1.5)
        sim.get("dend(0.5).v")

    sim.scatter_gather(sg)
    sim.on_spike("soma", spike)
    sim.at(25.0, lambda: sim.get("dend(0.3).i_pas"))


def intfire_program(sim):
    """IntFire2 cells steered during a run: events injected into a cell (each moves its planned
    firing, net_move), a parameter set from scatter-gather, a spike callback reading states and
    setting the bias current; the states read at an `at` time."""

    def sg():
        t = sim.t
        if 20 <= t < 20.025:
            sim.event("b", t + 0.5, 0.4)
            sim.event("c", t + 0.5, -0.3)
            sim.event("b", t + 0.5, 0.2)
        if 60 <= t < 60.025:
            sim.set("b.taum", 4.0)
            sim.set("a.ib", 1.5)

    def spike():
        sim.get("c.m")
        sim.get("c.i")
        sim.set("c.ib", sim.get("c.ib") + 0.01)

    sim.scatter_gather(sg)
    sim.on_spike("c", spike)
    sim.at(100.0, lambda: (sim.get("b.m"), sim.get("b.i")))


PROGRAMS = {
    f.__name__: f
    for f in [
        seed_interval,
        spike_weight,
        at_interval,
        sg_gnabar,
        sg_synapse,
        sg_celsius,
        sg_event,
        sg_and_every,
        sg_every_3,
        at_window,
        at_netstim_time,
        at_registered_late,
        spike_and_at,
        spike_event,
        netstim_spike,
        init_handlers,
        ball_stick_program,
        segments_program,
        intfire_program,
    ]
}
