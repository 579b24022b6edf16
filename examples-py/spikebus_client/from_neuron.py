"""spikebus from-neuron: a model built in NEURON, written as a spikebus model file.

Runs the user's own NEURON script (Python) in this process, then walks what it built --
sections (geometry, 3-d points, connections), density mechanisms, point processes,
artificial cells, NetCons and the run settings -- and writes the model file
(docs/model-format.md) that runs bit for bit as NEURON 9.0.2 runs the same model with its
fixed step. Whatever spikebus cannot run exactly is named, each thing on its own line, and
nothing is written: the tool refuses rather than approximates.

Usage (in a Python that has NEURON and the script's mechanisms)::

    spikebus from-neuron [--python PY] SCRIPT [--out MODEL.toml] [--record SIG,...] [-- ARGS]
    python -m spikebus_client.from_neuron SCRIPT [--out MODEL.toml] [--record SIG,...] [-- ARGS]

The script runs as ``__main__`` with ``sys.argv = [SCRIPT, *ARGS]``. Module-level names it
may define for the tool:

- ``spikebus_names``: a dict from NEURON objects (point processes, artificial cells, NetCons,
  sections) to the names they get in the model file; otherwise NEURON's names (``soma``,
  ``Cell[3].dend[0]``, ``ExpSyn[0]``, ``NetCon[12]``);
- ``spikebus_record``: the signals of ``[record]`` (spikebus names, e.g. ``"soma(0.5).v"``,
  ``"ExpSyn[0].g"``); ``--record`` overrides it.

Range variables (diam, cm, a mechanism's parameters) are written as one number when every
segment of the section has the same value, else as a list with one value per segment.

``Vector.play`` cannot be translated: NEURON has no accessor for a play's target or values.
It can be seen, though: NEURON's SaveState file lists every play and record with its kind
(:func:`_playrecord_types`), so a model with plays is refused (write them as ``[play.NAME]``
tables, docs/model-format.md).

What NEURON does not let a script see, the tool cannot translate or refuse: Python
callbacks (``FInitializeHandler``, ``CVode.extra_scatter_gather``, code between
``fadvance`` calls), ``NetCon.event`` calls, and changes the script makes after it returns. A model that uses them runs differently in spikebus: port that part to a
controller (the bus).

Adding a mechanism is one entry in :data:`DENSITY`, :data:`POINT` or :data:`ARTIFICIAL`
(the names and parameters spikebus has for it).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import runpy
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["ARTIFICIAL", "DENSITY", "POINT", "Artificial", "Density", "Point", "Section", "Translation",
           "Untranslatable", "Walk", "convert", "main", "model_text"]

# --- What spikebus has: one entry per mechanism -------------------------------------------


@dataclass(frozen=True)
class Density:
    """A density mechanism spikebus has.

    Attributes:
        params: its PARAMETERs, NEURON's names without the suffix (the model file's key is
            ``NAME_MECH``, e.g. ``gnabar_hh``).
        ions: the ion variables it reads, (ion mechanism, variable), written as section keys
            (hh reads ``ena`` of ``na_ion`` and ``ek`` of ``k_ion``).
    """

    params: Tuple[str, ...]
    ions: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Point:
    """A point process spikebus has.

    Attributes:
        params: its parameters (the model file's keys are NEURON's names).
        arrays: its array parameters, (name, length): NEURON's ``obj.dur[i]``, written as a
            list (VClamp's ``dur = [...]``).
    """

    params: Tuple[str, ...]
    arrays: Tuple[Tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Artificial:
    """An artificial cell spikebus has.

    Attributes:
        params: its parameters (the model file's keys are NEURON's names).
        extra: reads what is not a parameter, ``extra(obj, walk) -> {key: value}`` (NetStim's
            stream ids, VecStim's times); raises :class:`Untranslatable`.
        fixed_globals: GLOBALs of its mod file that spikebus holds at NEURON's default,
            (name, default): a model whose value differs is refused (IntFire4's ``eps``,
            ``taueps``, in NEURON ``h.eps_IntFire4``).
    """

    params: Tuple[str, ...]
    extra: Optional[Callable[[Any, "Walk"], Dict[str, Any]]] = None
    fixed_globals: Tuple[Tuple[str, float], ...] = ()


def _netstim_ids(ns: Any, walk: "Walk") -> Dict[str, Any]:
    """The Random123 stream of its noise, as NEURON has it (docs/model-format.md)."""
    ids = ns.ranvar.get_ids()
    return {"id1": int(ids[0]), "id2": int(ids[1]), "id3": int(ids[2])}


def _vecstim_times(vs: Any, walk: "Walk") -> Dict[str, Any]:
    """NEURON has no accessor for the Vector a VecStim plays: its times are read by running
    the model (see :meth:`Walk._vecstim_times`)."""
    return {"times": walk._vecstim_times(vs)}


DENSITY: Dict[str, Density] = {
    "hh": Density(params=("gnabar", "gkbar", "gl", "el"), ions=(("na_ion", "ena"), ("k_ion", "ek"))),
    "pas": Density(params=("g", "e")),
}
"""Density mechanisms: NEURON's name -> what spikebus has."""

POINT: Dict[str, Point] = {
    "ExpSyn": Point(params=("tau", "e")),
    "Exp2Syn": Point(params=("tau1", "tau2", "e")),
    "IClamp": Point(params=("del", "dur", "amp")),
    "AlphaSynapse": Point(params=("onset", "tau", "gmax", "e")),
    "SEClamp": Point(params=("dur1", "amp1", "dur2", "amp2", "dur3", "amp3", "rs")),
    # e0, vo0, vi0 are PARAMETERs too, but VClamp's INITIAL overwrites them: nothing to read.
    "VClamp": Point(params=("gain", "rstim", "tau1", "tau2", "fac"), arrays=(("dur", 3), ("amp", 3))),
}
"""Point processes (with a location in a section): NEURON's name -> what spikebus has."""

ARTIFICIAL: Dict[str, Artificial] = {
    "NetStim": Artificial(params=("interval", "number", "start", "noise"), extra=_netstim_ids),
    "VecStim": Artificial(params=(), extra=_vecstim_times),
    "IntFire1": Artificial(params=("tau", "refrac")),
    "IntFire2": Artificial(params=("taus", "taum", "ib")),
    # intfire4.mod's PARAMETER ib is not RANGE (a GLOBAL) and its code never reads it.
    "IntFire4": Artificial(params=("taue", "taui1", "taui2", "taum"),
                           fixed_globals=(("eps", 1e-6), ("taueps", 0.01))),
}
"""Artificial cells: NEURON's name -> what spikebus has."""

#: Ion mechanisms spikebus knows only as the ion variables of a DENSITY entry.
IONS = {ion for d in DENSITY.values() for ion, _ in d.ions}

#: What else a model may hold in NEURON without changing a fixed-step run: the section
#: pseudo-mechanisms every section has.
ALWAYS_PRESENT = {"morphology", "capacitance"}

#: [run] keys read from hoc globals.
RUN_GLOBALS = ("dt", "tstop", "v_init", "celsius", "usetable_hh")

# A name spikebus accepts for an object: dot-separated identifiers, each with an optional
# [index] (parse.rs, is_object_name).
_OBJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\[[0-9]+\])?(\.[A-Za-z][A-Za-z0-9_]*(\[[0-9]+\])?)*")


#: NEURON's kinds of PlayRecord that are Vector.play (src/nrncvode/vrecitem.h):
#: VecPlayStepType (discrete, at times or every Dt), VecPlayContinuousType.
PLAY_TYPES = {3: "discrete", 4: "continuous"}


class Untranslatable(Exception):
    """Something of the model that spikebus cannot run exactly (the message says what, and
    what to do instead)."""


@dataclass
class Section:
    """A ``[section.NAME]`` table.

    Attributes:
        name: the section's name in the model file.
        keys: its keys and values, in the order written.
    """

    name: str
    keys: Dict[str, Any]


@dataclass
class Translation:
    """The walk's result: the model file's tables, in NEURON's order, and what could not
    be translated.

    Attributes:
        run: the ``[run]`` keys.
        sections: the sections, in the order written.
        points: ``(name, keys)`` of each point process.
        cells: ``(name, keys)`` of each artificial cell.
        netcons: ``(name, keys)`` of each NetCon.
        record: the signals of ``[record]``.
        problems: what spikebus cannot run exactly, one line each (empty: the translation is
            complete).
        notes: what was left out because it changes nothing in a run (written as comments).
    """

    run: Dict[str, Any] = field(default_factory=dict)
    sections: List[Section] = field(default_factory=list)
    points: List[Tuple[str, Dict[str, Any]]] = field(default_factory=list)
    cells: List[Tuple[str, Dict[str, Any]]] = field(default_factory=list)
    netcons: List[Tuple[str, Dict[str, Any]]] = field(default_factory=list)
    record: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def _mech_types(h: Any, kind: int) -> List[str]:
    """Every mechanism NEURON has loaded (kind 0: density, 1: point processes and
    artificial cells)."""
    mt = h.MechanismType(kind)
    out = []
    for i in range(int(mt.count())):
        mt.select(i)
        name = h.ref("")
        mt.selected(name)
        out.append(name[0])
    return out


def _playrecord_types(savestate: bytes) -> List[int]:
    """The kind of each of NEURON's PlayRecords (every ``Vector.play`` and ``Vector.record``),
    read from a SaveState file as NEURON 9.0.2 writes it (``SaveState::write``,
    src/nrniv/savstate.cpp): a header line, t, the sections' node states (binary), the
    artificial cells' states, then the PlayRecords, each a text line ``TYPE INDEX`` followed
    by its own state (text lines of one or three integers)."""
    d = savestate
    pos = d.index(b"\n") + 1 + 8  # header line, then t (a double)

    def line() -> List[int]:
        nonlocal pos
        end = d.index(b"\n", pos)
        words = d[pos:end].split()
        pos = end + 1
        return [int(w) for w in words]

    nsec, _nroot = line()
    secs = []
    for _ in range(nsec):
        secs.append(struct.unpack_from("ii", d, pos))  # nnode, has a root node
        pos += 8

    def nodes(count: int) -> None:
        nonlocal pos
        sizes = []
        for _ in range(count):
            _v, nmemb, nstate = struct.unpack_from("dii", d, pos)
            pos += 16
            sizes.append((nmemb, nstate))
        for nmemb, nstate in sizes:  # each node's mechanism types (int), then its states
            pos += 4 * nmemb + 8 * nstate

    for nnode, root in secs:
        nodes(nnode)
        if root:
            nodes(1)
    (nacell,) = line()
    for _ in range(nacell):
        _type, _ncell, size = line()
        pos += 8 * size
    (nprs,) = line()
    types = []
    for index in range(nprs):
        while True:  # skips the state lines of the one before
            words = line()
            if len(words) == 2 and words[1] == index:
                types.append(words[0])
                break
    return types


class Walk:
    """Walks NEURON's current model into a :class:`Translation`.

    Attributes:
        h: NEURON's ``h``.
        t: the translation so far.
        given: the names the script gives (``spikebus_names``), by NEURON's names.
        sec_names: each section's model-file name, by NEURON's name.
        obj_names: each point process's and artificial cell's model-file name, by NEURON's.
    """

    def __init__(self, h: Any, names: Optional[Dict[Any, str]] = None) -> None:
        self.h = h
        self.t = Translation()
        # spikebus names by NEURON's (sec.name(), obj.hname())
        self.given = {self._neuron_name(k): v for k, v in (names or {}).items()}
        self.sec_names: Dict[str, str] = {}
        self.obj_names: Dict[str, str] = {}
        self._vecstim: Optional[Dict[str, Optional[List[float]]]] = None
        self._cells: List[Tuple[str, Any, Dict[str, Any]]] = []

    @staticmethod
    def _neuron_name(obj: Any) -> str:
        return obj.name() if type(obj).__name__ == "Section" else obj.hname()

    def _problem(self, what: str) -> None:
        self.t.problems.append(what)

    def _name_of(self, neuron_name: str, what: str) -> str:
        name = self.given.get(neuron_name, neuron_name)
        if not _OBJECT_NAME.fullmatch(name):
            self._problem(
                f"{what} `{neuron_name}`: not a spikebus name (identifiers with [index], joined by dots); "
                "name it in NEURON (h.Section(name=..., cell=obj) with a __str__ of obj, e.g. `Cell[3]`) "
                "or in the script's `spikebus_names`"
            )
        return name

    # -- run settings --

    def _run_settings(self) -> None:
        h = self.h
        if h.cvode.active():
            self._problem("CVode is active (variable time step): spikebus runs NEURON's fixed step; "
                         "h.cvode.active(0)")
        if h.secondorder != 0:
            self._problem(f"secondorder = {h.secondorder:g}: spikebus runs NEURON's default "
                         "(implicit Euler, secondorder = 0)")
        if hasattr(h, "steps_per_ms"):
            # stdrun's setdt() changes dt at h.run()/stdinit() unless steps_per_ms fits it.
            n = int((1.0 / h.steps_per_ms) / h.dt) or 1
            if abs(h.dt * n * h.steps_per_ms - 1) > 1e-6:
                self._problem(f"dt = {h.dt!r} with steps_per_ms = {h.steps_per_ms!r}: h.run() would change dt "
                             f"to {(1.0 / h.steps_per_ms) / n!r}; set h.steps_per_ms = 1 / h.dt")
        for k in RUN_GLOBALS:
            self.t.run[k] = getattr(h, k)
        self.t.run["Random123_globalindex"] = int(h.Random().Random123_globalindex())

    # -- sections --

    @staticmethod
    def _range(values: List[float]) -> Any:
        """A range variable's model-file value: one number if every segment has it, else one
        value per segment (a list, docs/model-format.md's per-segment values)."""
        return values[0] if all(v == values[0] for v in values) else list(values)

    @staticmethod
    def _file_order(secs: List[Any]) -> List[Any]:
        """The sections in creation order (h.allsec()), except that children connected at
        one place of a parent are put in the reverse of NEURON's order of them (its sibling
        list, ``sec.children()``): spikebus takes the last connected first among children
        at one place, as NEURON does when they are connected in file order, and NEURON's
        order of sections decides the order of its sums (the tree solve), hence the bits."""
        pos = {sec.name(): i for i, sec in enumerate(secs)}
        order = list(secs)
        for sec in secs:
            at: Dict[float, List[Any]] = {}
            for kid in sec.children():
                at.setdefault(kid.parentseg().x, []).append(kid)
            for group in at.values():
                slots = sorted(pos[k.name()] for k in group)
                for slot, kid in zip(slots, reversed(group)):
                    order[slot] = kid
        return order

    def _sections(self) -> None:
        h = self.h
        secs = self._file_order(list(h.allsec()))
        for sec in secs:
            sec(0.5).area()  # brings the 3-d points and diameters up to date (recalc_diam)
        for sec in secs:
            self.sec_names[sec.name()] = self._name_of(sec.name(), "section")
        # NEURON's order of mechanism types (the order NEURON sums their currents)
        type_order = {m: i for i, m in enumerate(_mech_types(h, 0))}
        for sec in secs:
            keys: Dict[str, Any] = {}
            segs = list(sec)
            n3d = int(h.n3d(sec=sec))
            if n3d == 1:
                self._problem(f"section `{sec.name()}`: one 3-d point (spikebus needs 0 or at least 2)")
            if n3d >= 2:
                pts = [[h.x3d(i, sec=sec), h.y3d(i, sec=sec), h.z3d(i, sec=sec), h.diam3d(i, sec=sec)] for i in range(n3d)]
                if any(p[3] < 0 for p in pts):
                    self._problem(f"section `{sec.name()}`: a negative 3-d diameter")
                keys["pt3d"] = pts
            else:
                keys["L"] = sec.L
                keys["diam"] = self._range([seg.diam for seg in segs])
            keys["nseg"] = sec.nseg
            keys["cm"] = self._range([seg.cm for seg in segs])
            keys["Ra"] = sec.Ra
            ps = sec.parentseg()
            if ps is not None:
                if h.section_orientation(sec=sec) != 0:
                    self._problem(f"section `{sec.name()}`: connected at its 1 end (connect(child(1), ...)): "
                                 "spikebus connects a child's 0 end; connect(child(0), parent(x))")
                keys["parent"] = f"{self.sec_names[ps.sec.name()]}({ps.x!r})"
            mech_here = [m.name() for m in segs[0]]
            for seg in segs[1:]:
                if [m.name() for m in seg] != mech_here:
                    self._problem(f"section `{sec.name()}`: mechanisms differ between segments")
            dens = sorted((m for m in mech_here if m not in IONS), key=lambda m: type_order.get(m, len(type_order)))
            for m in dens:
                if m not in DENSITY and m not in ALWAYS_PRESENT:
                    self._problem(f"section `{sec.name()}`: density mechanism `{m}` "
                                 f"(spikebus has {', '.join(sorted(DENSITY))})")
            known = [m for m in dens if m in DENSITY]
            if known:
                keys["insert"] = known
            used_ions = {ion for m in known for ion, _ in DENSITY[m].ions}
            for ion in (m for m in mech_here if m in IONS and m not in used_ions):
                self._problem(f"section `{sec.name()}`: ion `{ion}` without a mechanism spikebus has that uses it")
            for m in known:
                d = DENSITY[m]
                for p in d.params:
                    keys[f"{p}_{m}"] = self._range([getattr(seg, f"{p}_{m}") for seg in segs])
                for _ion, var in d.ions:
                    keys[var] = self._range([getattr(seg, var) for seg in segs])
            self.t.sections.append(Section(self.sec_names[sec.name()], keys))

    # -- point processes and artificial cells --

    def _objects(self) -> List[Any]:
        """Point processes and artificial cells, by type in NEURON's order, each type's in
        creation order; refuses the types spikebus does not have."""
        h = self.h
        found = []
        for tname in _mech_types(h, 1):
            objs = list(h.List(tname))
            if not objs:
                continue
            if tname not in POINT and tname not in ARTIFICIAL:
                have = ", ".join(sorted(POINT) + sorted(ARTIFICIAL))
                names = ", ".join(o.hname() for o in objs[:5]) + (", ..." if len(objs) > 5 else "")
                self._problem(f"{len(objs)} {tname} ({names}): spikebus has {have}")
                continue
            for g, default in ARTIFICIAL[tname].fixed_globals if tname in ARTIFICIAL else ():
                value = getattr(h, f"{g}_{tname}")
                if value != default:
                    self._problem(f"{g}_{tname} = {value!r}: spikebus's {tname} has NEURON's default {g} = "
                                 f"{default!r}; h.{g}_{tname} = {default!r}")
            found.extend((tname, o) for o in objs)
        return found

    def _points_and_cells(self) -> None:
        for tname, obj in self._objects():
            name = self._name_of(obj.hname(), tname)
            self.obj_names[obj.hname()] = name
            if tname in POINT:
                seg = obj.get_segment()
                if seg is None:
                    self._problem(f"{tname} `{obj.hname()}`: not in a section")
                    continue
                keys: Dict[str, Any] = {"type": tname, "at": f"{self.sec_names[seg.sec.name()]}({seg.x!r})"}
                for p in POINT[tname].params:
                    keys[p] = getattr(obj, p)
                for p, n in POINT[tname].arrays:
                    keys[p] = [getattr(obj, p)[i] for i in range(n)]
                self.t.points.append((name, keys))
            else:
                keys = {"type": tname}
                for p in ARTIFICIAL[tname].params:
                    keys[p] = getattr(obj, p)
                self.t.cells.append((name, keys))
                self._cells.append((tname, obj, keys))

    def _cell_extras(self) -> None:
        """What is not a parameter of an artificial cell (last: reading a VecStim's times
        runs the model)."""
        for tname, obj, keys in self._cells:
            extra = ARTIFICIAL[tname].extra
            if extra is not None:
                try:
                    keys.update(extra(obj, self))
                except Untranslatable as e:
                    self._problem(f"{tname} `{obj.hname()}`: {e}")

    def _vecstim_times(self, vs: Any) -> List[float]:
        """A VecStim's times, read by running the model with NEURON (every VecStim's events
        recorded by a NetCon) until no VecStim has an event left in NEURON's queue: then each
        has played its whole Vector, and the recorded times are all of them."""
        if self._vecstim is None:
            self._vecstim = self._play_vecstims()
        times = self._vecstim.get(vs.hname())
        if times is None:
            raise Untranslatable(f"still playing at t = {self.h.t:g} ms: its times cannot all be read")
        return times

    def _play_vecstims(self, max_rounds: int = 100_000) -> Dict[str, Optional[List[float]]]:
        h = self.h
        stims = {vs.hname(): vs for vs in h.List("VecStim")}
        recs = {}
        for name, vs in stims.items():
            vec = h.Vector()
            nc = h.NetCon(vs, None)
            nc.record(vec)
            recs[name] = (vec, nc)
        h.finitialize(h.v_init)
        end = h.tstop
        pending: Dict[str, float] = {}
        for _ in range(max_rounds):
            while h.t < end - h.dt / 2:
                h.fadvance()
            tvec, flags, targets = h.Vector(), h.Vector(), h.List()
            h.CVode().event_queue_info(3, tvec, flags, targets)  # self-events: (time, flag, target)
            pending = {o.hname(): tvec[i] for i, o in enumerate(targets) if o.hname() in stims}
            if not pending:
                break
            end = max(pending.values()) + h.dt
        return {name: None if name in pending else list(recs[name][0]) for name in stims}

    # -- NetCons --

    def _netcons(self) -> None:
        h = self.h
        thresholds: Dict[str, Tuple[float, str]] = {}
        recorders = 0
        for nc in h.List("NetCon"):
            label = nc.hname()
            target = nc.syn()
            if target is not None and target.hname() not in self.obj_names:
                continue  # its target is refused already
            pre = nc.pre()
            keys: Dict[str, Any] = {}
            if pre is not None:
                if pre.hname() not in self.obj_names:
                    if not any(pre.hname().startswith(t + "[") for t in ARTIFICIAL):
                        self._problem(f"{label}: source `{pre.hname()}` is not an artificial cell spikebus has")
                    continue
                keys["source"] = self.obj_names[pre.hname()]
            else:
                seg = nc.preseg()
                if seg is None:
                    if target is not None:
                        self._problem(f"{label}: no source (events sent with nc.event): drive its target from a "
                                     "controller (an `event` action over the bus)")
                    continue
                sec = seg.sec
                if seg.node_index() != sec(0.5).node_index() or seg.x in (0.0, 1.0):
                    if target is not None:
                        self._problem(f"{label}: source {sec.name()}({seg.x!r}) is not the node of {sec.name()}(0.5), "
                                     "where spikebus's detector is")
                    else:
                        self.t.notes.append(f"{label}: records spikes at {sec.name()}({seg.x!r}); spikebus "
                                            f"detects them at {sec.name()}(0.5)")
                    continue
                sname = self.sec_names[sec.name()]
                keys["source"] = sname
                # The threshold is the source's (NEURON's PreSyn), shared by all its NetCons.
                thresholds[sname] = (nc.threshold, label)
            if target is None:
                # Records a source's spikes (nc.record): spikebus writes every source's.
                recorders += 1
                continue
            if not nc.active():
                self._problem(f"{label}: inactive (nc.active(0)); spikebus has no inactive NetCons")
                continue
            if len(nc.weight) > 1 and any(nc.weight[i] != 0 for i in range(1, len(nc.weight))):
                self._problem(f"{label}: weight[1..] set; spikebus's targets have one weight")
            keys["target"] = self.obj_names[target.hname()]
            keys["delay"] = nc.delay
            keys["weight"] = nc.weight[0]
            self.t.netcons.append((self._name_of(label, "NetCon"), keys))
        if recorders:
            self.t.notes.append(f"{recorders} NetCon(s) without a target left out: they record spikes, and "
                                "spikebus writes every source's spikes to spikes.csv")
        for sec in self.t.sections:
            if sec.name in thresholds:
                sec.keys["threshold"] = thresholds[sec.name][0]

    # -- Vector.play --

    def _plays(self) -> None:
        """Refuses ``Vector.play``: NEURON does not say what a play writes, only (in a SaveState
        file, after initialization) that it is there and its kind."""
        h = self.h
        try:
            h.finitialize(h.v_init)
            state = h.SaveState()
            state.save()
            fd, path = tempfile.mkstemp(suffix=".savestate")
            os.close(fd)
            try:
                f = h.File()
                f.wopen(path)
                state.fwrite(f)
                f.close()
                with open(path, "rb") as fh:
                    types = _playrecord_types(fh.read())
            finally:
                os.unlink(path)
        except Exception as e:  # noqa: BLE001 -- a hoc error or a file NEURON wrote otherwise
            self._problem(f"could not look for Vector.play in NEURON's SaveState ({e}): spikebus cannot run "
                          "what it cannot see")
            return
        counts = {kind: sum(1 for t in types if t == code) for code, kind in PLAY_TYPES.items()}
        if any(counts.values()):
            kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
            self._problem(f"Vector.play ({kinds}): NEURON does not show what a play writes; write each as a "
                          "[play.NAME] table (docs/model-format.md) and leave it out of the script")

    def walk(self, record: Optional[List[str]] = None) -> Translation:
        """The whole model, with ``record`` as its ``[record]`` signals. Looking for plays
        initializes the model and reading a VecStim's times runs it in NEURON, so these come
        last."""
        self._run_settings()
        self._sections()
        self._points_and_cells()
        self._netcons()
        self._plays()  # initializes the model: after everything is read
        if not self.t.problems:
            self._cell_extras()
        self.t.record = list(record or [])
        return self.t


# --- The model file -------------------------------------------------------------------------


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) else f'"{name}"'


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Untranslatable(f"{v!r} is not a number spikebus takes")
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def model_text(t: Translation, origin: str, neuron_version: str) -> str:
    """The model file of a complete translation."""
    out = [f"# Written by spikebus from-neuron from {origin} (NEURON {neuron_version}).", ""]
    for note in t.notes:
        out.insert(1, f"# {note}")

    def table(head: str, keys: Dict[str, Any]) -> None:
        out.append(head)
        for k, v in keys.items():
            out.append(f"{k} = {_value(v)}")
        out.append("")

    run = dict(t.run)
    run["usetable_hh"] = int(run["usetable_hh"])
    table("[run]", run)
    for s in t.sections:
        table(f"[section.{_key(s.name)}]", s.keys)
    for name, keys in t.points:
        table(f"[point.{_key(name)}]", keys)
    for name, keys in t.cells:
        table(f"[cell.{_key(name)}]", keys)
    for name, keys in t.netcons:
        table(f"[netcon.{_key(name)}]", keys)
    if t.record:
        table("[record]", {"signals": t.record})
    return "\n".join(out)


def convert(h: Any, names: Optional[Dict[Any, str]] = None, record: Optional[List[str]] = None) -> Translation:
    """Walks the model NEURON holds now. The translation is complete when its ``problems``
    is empty."""
    return Walk(h, names).walk(record)


def main(argv: Optional[List[str]] = None) -> int:
    """The command line (``spikebus from-neuron``, ``python -m spikebus_client.from_neuron``):
    0 when the model file was written, 2 when something is refused (listed on stderr)."""
    ap = argparse.ArgumentParser(
        prog="spikebus from-neuron",
        description="Build a model with its NEURON script and write it as a spikebus model file.",
        epilog="Arguments after -- go to the script (its sys.argv[1:]).",
    )
    ap.add_argument("script", help="the NEURON model's Python script (run as __main__)")
    ap.add_argument("--out", "-o", help="the model file to write (default: standard output)")
    ap.add_argument("--record", help="signals for [record], comma-separated (default: the script's spikebus_record)")
    argv = list(sys.argv[1:] if argv is None else argv)
    # After `--`: the script's own arguments.
    script_args = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    script = os.path.abspath(a.script)
    sys.argv = [script, *script_args]
    sys.path.insert(0, os.path.dirname(script))
    from neuron import h

    # tstop and steps_per_ms are stdrun's: defined before the script, as `nrniv` does.
    h.load_file("stdrun.hoc")
    env = runpy.run_path(script, run_name="__main__")

    record = a.record.split(",") if a.record else list(env.get("spikebus_record", []))
    t = convert(h, env.get("spikebus_names"), record)
    if t.problems:
        print(f"spikebus from-neuron: {a.script}: {len(t.problems)} thing(s) spikebus cannot run exactly; "
              "no model written:", file=sys.stderr)
        for p in t.problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    text = model_text(t, a.script, h.nrnversion(0))
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
        print(f"spikebus from-neuron: wrote {a.out} ({len(t.sections)} sections, {len(t.points)} point processes, "
              f"{len(t.cells)} artificial cells, {len(t.netcons)} NetCons)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
