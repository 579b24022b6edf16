#!/usr/bin/env python3
"""Golden data for spikebus: run the real NEURON 9.0.2 on each golden variant.

Usage (from anywhere; paths are resolved from the repository root):

    python tests/golden/generate.py [VARIANT...]
    python tests/golden/generate.py --swc-geometry      # swc_geometry.json
    python tests/golden/generate.py --geometry MODEL    # print NEURON's geometry of a model

Default: every variant in tests/golden/variants.toml. Each variant is a model file
(docs/model-format.md) plus `set` overrides and an optional callback. It is built in NEURON in
a fixed order (the order decides NEURON's internal orderings and so the bits), run with
h.run(), and written to tests/golden/<variant>.json (format: tests/golden/README.md).
A variant may first run part of the way (`first_run_until`, h.stdinit() and
h.continuerun(T)) and change parameters of the built model (`between`) before that h.run():
a restart and a change between two runs, as a NEURON user does them.

Each variant runs in a fresh Python process (NEURON's state cannot be reset completely), in
an empty working directory (so `import neuron` cannot auto-load a stray x86_64/ mechanism
library). VecStim, which NEURON does not build in, comes from tests/golden/mod/vecstim.mod,
compiled with the nrnivmodl of the running NEURON into tests/golden/.nrnmech/ (a cache, not
committed).
"""

import base64
import hashlib
import json
import math
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    sys.exit("generate.py needs Python >= 3.11 (tomllib)")

GOLDEN = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(GOLDEN))
VARIANTS = os.path.join(GOLDEN, "variants.toml")
MOD_DIR = os.path.join(GOLDEN, "mod")
MECH_CACHE = os.path.join(GOLDEN, ".nrnmech")
NEURON_VERSION = "9.0.2"

# ---------------------------------------------------------------------------------------------
# Model schema (docs/model-format.md): key -> NEURON's default. A default is never set in
# NEURON; after building, the generator checks NEURON really holds it (see check_defaults).

RUN_DEFAULTS = {"dt": 0.025, "tstop": 5.0, "v_init": -65.0, "celsius": 6.3, "usetable_hh": 1,
                "Random123_globalindex": 0}
SECTION_GEOMETRY = {"L": 100.0, "diam": 500.0, "nseg": 1, "cm": 1.0, "Ra": 35.4}
HH_PARAMS = {"gnabar_hh": 0.12, "gkbar_hh": 0.036, "gl_hh": 0.0003, "el_hh": -54.3}
ION_PARAMS = {"ena": 50.0, "ek": -77.0}  # need hh (which brings na_ion and k_ion)
PAS_PARAMS = {"g_pas": 0.001, "e_pas": -70.0}
SECTION_KEYS = (set(SECTION_GEOMETRY) | set(HH_PARAMS) | set(ION_PARAMS) | set(PAS_PARAMS)
                | {"parent", "insert", "threshold", "pt3d"})
# [morphology]: an SWC file imported with NEURON's Import3d; tables `all` and per type hold
# section keys but those the file gives (docs/model-format.md).
MORPHOLOGY_KEYS = {"swc", "nseg", "d_lambda", "d_lambda_freq"}
MORPHOLOGY_TABLE_KEYS = SECTION_KEYS - {"L", "diam", "nseg", "parent", "pt3d"}
DEFAULT_THRESHOLD = 10.0
POINT_PARAMS = {
    "ExpSyn": {"tau": 0.1, "e": 0.0},
    "Exp2Syn": {"tau1": 0.1, "tau2": 10.0, "e": 0.0},
    "IClamp": {"del": 0.0, "dur": 0.0, "amp": 0.0},
    "AlphaSynapse": {"onset": 0.0, "tau": 0.1, "gmax": 0.0, "e": 0.0},
    "SEClamp": {"dur1": 0.0, "amp1": 0.0, "dur2": 0.0, "amp2": 0.0, "dur3": 0.0, "amp3": 0.0,
                "rs": 1.0},
    # VClamp's array parameters, element by element (NEURON: vc.dur[0])
    "VClamp": {"dur[0]": 0.0, "dur[1]": 0.0, "dur[2]": 0.0, "amp[0]": 0.0, "amp[1]": 0.0,
               "amp[2]": 0.0, "gain": 1e5, "rstim": 1.0, "tau1": 0.001, "tau2": 0.0, "fac": 0.0},
}
POINT_SIGNALS = {"ExpSyn": {"g", "i"}, "Exp2Syn": {"A", "B", "g", "i"}, "IClamp": {"i"},
                 "AlphaSynapse": {"i"}, "SEClamp": {"i", "vc"},
                 "VClamp": {"i", "e", "vo", "vi"}}
# Point processes that receive NetCon events.
SYNAPSES = ("ExpSyn", "Exp2Syn")
NETSTIM_PARAMS = {"interval": 10.0, "number": 10.0, "start": 50.0, "noise": 0.0}
# ranvar.set_ids(id1, id2, id3); default (1, 0, n) for the n-th NetStim (see check_defaults).
NETSTIM_IDS = ("id1", "id2", "id3")
# Integrate-and-fire artificial cells: parameters with NEURON's defaults, recordable states.
INTFIRE_PARAMS = {
    "IntFire1": {"tau": 10.0, "refrac": 5.0},
    "IntFire2": {"taus": 20.0, "taum": 10.0, "ib": 0.0},
    "IntFire4": {"taue": 5.0, "taui1": 10.0, "taui2": 20.0, "taum": 50.0},
}
CELL_SIGNALS = {
    "IntFire1": {"m"},
    "IntFire2": {"i", "m"},
    "IntFire4": {"e", "i1", "i2", "m", "ae", "ai2", "ai1", "nself", "nexcite", "ninhibit"},
}
CELL_KEYS = {"NetStim": set(NETSTIM_PARAMS) | set(NETSTIM_IDS) | {"type"},
             "VecStim": {"type", "times"},
             **{typ: set(params) | {"type"} for typ, params in INTFIRE_PARAMS.items()}}
PLAY_KEYS = {"target", "values", "times", "dt", "continuous"}
# A section's range variables: a list gives one value per segment.
RANGE_KEYS = {"diam", "cm"} | set(HH_PARAMS) | set(ION_PARAMS) | set(PAS_PARAMS)
UINT32_MAX = 2**32 - 1
NETCON_KEYS = {"source", "target", "delay", "weight", "threshold"}
NETCON_DEFAULTS = {"delay": 1.0, "weight": 0.0}
SECTION_SIGNALS = {
    "v": None, "m_hh": "hh", "h_hh": "hh", "n_hh": "hh", "ina": "hh", "ik": "hh",
    "il_hh": "hh", "gna_hh": "hh", "gk_hh": "hh", "i_pas": "pas",
}
CALLBACKS = {"seed_interval"}


class ModelError(Exception):
    pass


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def parse_location(text, sections, what):
    """'SEC(x)' -> (SEC, x)."""
    m = re.fullmatch(r"\s*([\w\[\].]+?)\s*\(\s*([^)]+?)\s*\)\s*", str(text))
    if not m:
        raise ModelError(f"{what}: expected \"SECTION(x)\", found {text!r}")
    name, x = m.group(1), float(m.group(2))
    if name not in sections:
        raise ModelError(f"{what}: no section named {name!r}")
    if not 0.0 <= x <= 1.0:
        raise ModelError(f"{what}: x must be in [0, 1], found {x}")
    return name, x


def load_model(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        doc = tomllib.load(f)
    unknown = set(doc) - {"run", "morphology", "section", "point", "cell", "netcon", "play", "record"}
    if unknown:
        raise ModelError(f"{path}: unknown tables {sorted(unknown)}")
    model = {
        "dir": os.path.dirname(os.path.join(ROOT, path)),
        "morphology": dict(doc.get("morphology", {})),
        "run": dict(doc.get("run", {})),
        "section": {k: dict(v) for k, v in doc.get("section", {}).items()},
        "point": {k: dict(v) for k, v in doc.get("point", {}).items()},
        "cell": {k: dict(v) for k, v in doc.get("cell", {}).items()},
        "netcon": {k: dict(v) for k, v in doc.get("netcon", {}).items()},
        "play": {k: dict(v) for k, v in doc.get("play", {}).items()},
        "record": dict(doc.get("record", {})),
        # `set` of one segment (SEC(x).FIELD): (section, x, field, value), applied in order
        # after the sections are built, as `sec(x).field = value`.
        "segment_sets": [],
    }
    for p in model["point"].values():
        # VClamp's arrays given as lists: element by element.
        for k in [k for k, v in p.items() if isinstance(v, list)]:
            for j, x in enumerate(p.pop(k)):
                p[f"{k}[{j}]"] = x
    return model


def import_morphology(h, model):
    """[morphology]: NEURON's Import3d reads the SWC file and makes the sections
    (Import3d_SWC_read, then Import3d_GUI(reader, 0).instantiate(None): hoc arrays soma[],
    dend[], ... at top level). Their entries go first in model["section"], in the order
    Import3d connects them (its list of sections), with the keys of the `all` table, then
    of their type's table, and nseg by the rule (after Ra and cm, which lambda_f reads).
    Returns {name: the NEURON section}."""
    morph = model["morphology"]
    if not morph:
        return {}
    tables = {k: v for k, v in morph.items() if isinstance(v, dict)}
    for k in set(morph) - set(tables):
        if k not in MORPHOLOGY_KEYS:
            raise ModelError(f"morphology.{k}: unknown key")
    for tname, t in tables.items():
        for k in t:
            if k not in MORPHOLOGY_TABLE_KEYS:
                raise ModelError(f"morphology.{tname}.{k}: not allowed")
    rule = morph.get("nseg", 1)
    if rule != "d_lambda" and (not is_number(rule) or rule != int(rule) or rule < 1):
        raise ModelError("morphology.nseg: an integer >= 1 or \"d_lambda\"")
    h.load_file("stdlib.hoc")
    h.load_file("import3d.hoc")
    reader = h.Import3d_SWC_read()
    reader.quiet = 1
    reader.input(os.path.join(model["dir"], morph["swc"]))
    gui = h.Import3d_GUI(reader, 0)
    gui.instantiate(None)
    made = {}
    for isec in reader.sections:
        tstr = h.ref("")
        gui.name(isec, tstr)
        base, _, rest = tstr[0].partition("[")
        index = int(rest.rstrip("]")) if rest else 0  # hoc's `dend` is dend[0]
        made[f"{base}[{index}]"] = (base, getattr(h, base)[index])
    for tname in tables:
        if tname != "all" and not any(base == tname for base, _ in made.values()):
            raise ModelError(f"morphology.{tname}: the file has no such sections")
    entries = {}
    for name, (base, sec) in made.items():
        s = {}
        for tname in ("all", base):
            for k, v in tables.get(tname, {}).items():
                s[k] = list(v) if k == "insert" else v
        # lambda_f reads Ra and cm; the rest is set by build()
        for k in ("Ra", "cm"):
            if k in s:
                setattr(sec, k, s[k])
        if rule == "d_lambda":
            d_lambda = morph.get("d_lambda", 0.1)
            freq = morph.get("d_lambda_freq", 100.0)
            s["nseg"] = int((sec.L / (d_lambda * h.lambda_f(freq, sec=sec)) + 0.9) / 2) * 2 + 1
        else:
            s["nseg"] = int(rule)
        entries[name] = s
    model["section"] = {**entries, **model["section"]}
    return {name: sec for name, (_, sec) in made.items()}


def kind_of(model, name):
    kinds = [k for k in ("section", "point", "cell", "netcon") if name in model[k]]
    if len(kinds) != 1:
        raise ModelError(f"name {name!r} is " + ("unknown" if not kinds else f"ambiguous {kinds}"))
    return kinds[0]


def apply_overrides(model, overrides):
    for key, value in overrides.items():
        if not is_number(value):
            raise ModelError(f"set {key!r}: expected a number, found {value!r}")
        if "." not in key:
            if key not in RUN_DEFAULTS:
                raise ModelError(f"set {key!r}: unknown global (allowed: {sorted(RUN_DEFAULTS)})")
            model["run"][key] = value
            continue
        seg = re.fullmatch(r"([\w\[\].]+?)\(([^)]*)\)\.(\w+)", key)
        if seg:
            sname, x, field = seg.group(1), float(seg.group(2)), seg.group(3)
            if sname not in model["section"] or field not in RANGE_KEYS:
                raise ModelError(f"set {key!r}: expected SECTION(x).RANGE_VARIABLE")
            model["segment_sets"].append((sname, x, field, value))
            continue
        obj, param = key.split(".", 1)
        table = model[kind_of(model, obj)][obj]
        if param in ("type", "at", "source", "target", "parent", "insert", "times"):
            raise ModelError(f"set {key!r}: {param!r} cannot be set")
        table[param] = value  # validated with the model


def validate(model):
    run = model["run"]
    for k in run:
        if k not in RUN_DEFAULTS:
            raise ModelError(f"run.{k}: unknown key")
    sections = model["section"]
    for name, s in sections.items():
        for k in s:
            if k not in SECTION_KEYS:
                raise ModelError(f"section.{name}.{k}: unknown key")
        if "pt3d" in s or name in model.get("morph_secs", {}):
            if "L" in s or "diam" in s:
                raise ModelError(f"section.{name}: L and diam come from its 3-d points")
        if "pt3d" in s:
            pts = s["pt3d"]
            if len(pts) < 2 or any(len(q) != 4 or not all(map(is_number, q)) or q[3] < 0 for q in pts):
                raise ModelError(f"section.{name}.pt3d: 2 or more [x, y, z, diam] points, diam >= 0")
        ins = s.get("insert", [])
        for mech in ins:
            if mech not in ("hh", "pas"):
                raise ModelError(f"section.{name}.insert: unknown mechanism {mech!r}")
        for k, v in s.items():
            if isinstance(v, list) and k != "insert":
                if k not in RANGE_KEYS or len(v) != int(s.get("nseg", 1)):
                    raise ModelError(f"section.{name}.{k}: a list needs a range variable and one "
                                     "value per segment")
        for k in s:
            if (k in HH_PARAMS or k in ION_PARAMS) and "hh" not in ins:
                raise ModelError(f"section.{name}.{k}: needs insert = [\"hh\"]")
            if k in PAS_PARAMS and "pas" not in ins:
                raise ModelError(f"section.{name}.{k}: needs insert = [\"pas\"]")
        if "nseg" in s and (s["nseg"] != int(s["nseg"]) or s["nseg"] < 1):
            raise ModelError(f"section.{name}.nseg: expected an integer >= 1")
        if "parent" in s:
            parse_location(s["parent"], sections, f"section.{name}.parent")
    for name, p in model["point"].items():
        typ = p.get("type")
        if typ not in POINT_PARAMS:
            raise ModelError(f"point.{name}.type: expected one of {sorted(POINT_PARAMS)}")
        if "at" not in p:
            raise ModelError(f"point.{name}.at: required")
        parse_location(p["at"], sections, f"point.{name}.at")
        for k in p:
            if k not in POINT_PARAMS[typ] and k not in ("type", "at"):
                raise ModelError(f"point.{name}.{k}: unknown key for {typ}")
    for name, c in model["cell"].items():
        typ = c.get("type")
        if typ not in CELL_KEYS:
            raise ModelError(f"cell.{name}.type: expected one of {sorted(CELL_KEYS)}")
        for k in c:
            if k not in CELL_KEYS[typ]:
                raise ModelError(f"cell.{name}.{k}: unknown key for {typ}")
        for k in NETSTIM_IDS:
            if k in c and not (is_number(c[k]) and c[k] == int(c[k]) and 0 <= c[k] <= UINT32_MAX):
                raise ModelError(f"cell.{name}.{k}: expected an integer from 0 to {UINT32_MAX}")
    gi = run.get("Random123_globalindex", 0)
    if not (is_number(gi) and gi == int(gi) and 0 <= gi <= UINT32_MAX):
        raise ModelError(f"run.Random123_globalindex: expected an integer from 0 to {UINT32_MAX}")
    for name, n in model["netcon"].items():
        for k in n:
            if k not in NETCON_KEYS:
                raise ModelError(f"netcon.{name}.{k}: unknown key")
        for k in ("source", "target"):
            if k not in n:
                raise ModelError(f"netcon.{name}.{k}: required")
        src, tgt = n["source"], n["target"]
        if src not in sections and src not in model["cell"]:
            raise ModelError(f"netcon.{name}.source: no section or cell named {src!r}")
        if "threshold" in n and src not in sections:
            raise ModelError(f"netcon.{name}.threshold: not allowed with an artificial-cell source")
        ok = (tgt in model["point"] and model["point"][tgt]["type"] in SYNAPSES) or (
            tgt in model["cell"] and model["cell"][tgt]["type"] != "VecStim")
        if not ok:
            raise ModelError(f"netcon.{name}.target: {tgt!r} is not a synapse or an artificial "
                             "cell that receives events")
    for name, p in model["play"].items():
        for k in p:
            if k not in PLAY_KEYS:
                raise ModelError(f"play.{name}.{k}: unknown key")
        if "target" not in p or not p.get("values"):
            raise ModelError(f"play.{name}: needs target and values")
        if ("times" in p) == ("dt" in p):
            raise ModelError(f"play.{name}: times or dt")
        if "times" in p and (len(p["times"]) != len(p["values"])
                             or any(b < a for a, b in zip(p["times"], p["times"][1:]))):
            raise ModelError(f"play.{name}.times: one per value, non-decreasing")
        if p.get("continuous") and "times" not in p:
            raise ModelError(f"play.{name}: continuous needs times")
    for k in model["record"]:
        if k != "signals":
            raise ModelError(f"record.{k}: unknown key")


def resolve_thresholds(model):
    """A detector threshold belongs to the source section; a netcon's `threshold` sets it
    (file order, the last one wins, as in NEURON where it is shared by all its NetCons)."""
    th = {name: float(s.get("threshold", DEFAULT_THRESHOLD)) for name, s in model["section"].items()}
    for n in model["netcon"].values():
        if "threshold" in n:
            th[n["source"]] = float(n["threshold"])
    return th


def parse_signal(model, name):
    """-> ('sec', SEC, x, var) or ('pp', NAME, var)."""
    m = re.fullmatch(r"([\w\[\].]+?)(?:\(([^)]*)\))?\.(\w+)", name)
    if not m:
        raise ModelError(f"record: bad signal name {name!r}")
    obj, x, var = m.group(1), m.group(2), m.group(3)
    if obj in model["section"]:
        if var not in SECTION_SIGNALS:
            raise ModelError(f"record: {name!r}: unknown section signal {var!r}")
        mech = SECTION_SIGNALS[var]
        if mech and mech not in model["section"][obj].get("insert", []):
            raise ModelError(f"record: {name!r} needs {mech} in section {obj}")
        xv = 0.5 if x is None else float(x)
        if not 0.0 <= xv <= 1.0:
            raise ModelError(f"record: {name!r}: x out of [0, 1]")
        return ("sec", obj, xv, var)
    if obj in model["point"] and x is None:
        typ = model["point"][obj]["type"]
        if var not in POINT_SIGNALS[typ]:
            raise ModelError(f"record: {name!r}: {typ} has no signal {var!r}")
        return ("pp", obj, var)
    if obj in model["cell"] and x is None:
        typ = model["cell"][obj]["type"]
        if var not in CELL_SIGNALS.get(typ, ()):
            raise ModelError(f"record: {name!r}: {typ} has no signal {var!r}")
        return ("cell", obj, var)
    raise ModelError(f"record: {name!r}: no section or point process {obj!r}")


# ---------------------------------------------------------------------------------------------
# VecStim: compile tests/golden/mod/vecstim.mod once per (mod text, NEURON, platform).

def find_nrnivmodl():
    here = os.path.join(os.path.dirname(sys.executable), "nrnivmodl")
    if os.path.exists(here):
        return here
    found = shutil.which("nrnivmodl")
    if not found:
        raise RuntimeError("nrnivmodl not found next to the interpreter nor on PATH")
    return found


def find_library(build_dir):
    for root, _dirs, files in os.walk(build_dir):
        for f in files:
            if f.startswith("libnrnmech.") and f.rsplit(".", 1)[-1] in ("so", "dylib", "dll"):
                return os.path.join(root, f)
    return None


def build_mechanisms():
    """Compile the .mod files in tests/golden/mod; return the path of the shared library."""
    import neuron  # for its version only

    mods = sorted(f for f in os.listdir(MOD_DIR) if f.endswith(".mod"))
    key = hashlib.sha256()
    for m in mods:
        key.update(m.encode() + b"\0")
        with open(os.path.join(MOD_DIR, m), "rb") as f:
            key.update(f.read() + b"\0")
    key.update(f"{neuron.__version__}|{sys.platform}|{platform.machine()}".encode())
    target = os.path.join(MECH_CACHE, key.hexdigest()[:16])
    lib = find_library(target) if os.path.isdir(target) else None
    if lib:
        return lib
    os.makedirs(MECH_CACHE, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="build-", dir=MECH_CACHE)
    for m in mods:
        shutil.copy(os.path.join(MOD_DIR, m), tmp)
    proc = subprocess.run([find_nrnivmodl(), "."], cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0 or not find_library(tmp):
        log = os.path.join(MECH_CACHE, "nrnivmodl.log")
        with open(log, "w") as f:
            f.write(proc.stdout + "\n" + proc.stderr)
        raise RuntimeError(f"nrnivmodl failed (exit {proc.returncode}); log in {log}")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return find_library(target)


# ---------------------------------------------------------------------------------------------
# One variant, in this process (a worker started by main()).

VARIANT_KEYS = {"model", "set", "callback", "program", "first_run_until", "between", "record",
                "record_dt"}


def set_ids(cell, params):
    """ranvar.set_ids(id1, id2, id3) for the ids `params` gives; the others keep their value."""
    if any(k in params for k in NETSTIM_IDS):
        ids = [int(x) for x in cell.ranvar.get_ids()]
        for i, k in enumerate(NETSTIM_IDS):
            if k in params:
                ids[i] = int(params[k])
        cell.ranvar.set_ids(*ids)


def apply_between(h, model, arts, between):
    """Changes to the built model between two runs: the global index, NetStim parameters and
    stream ids (the parameters this is needed for; others are refused)."""
    for key, value in between.items():
        if not is_number(value):
            raise ModelError(f"between {key!r}: expected a number, found {value!r}")
        if key == "Random123_globalindex":
            h.Random().Random123_globalindex(int(value))
            continue
        obj, _, param = key.partition(".")
        cell = model["cell"].get(obj)
        if cell is None or cell["type"] != "NetStim" or not (
                param in NETSTIM_PARAMS or param in NETSTIM_IDS):
            raise ModelError(f"between {key!r}: only Random123_globalindex and NetStim parameters")
        if param in NETSTIM_IDS:
            set_ids(arts[obj], {param: value})
        else:
            setattr(arts[obj], param, value)


def run_variant(name, spec, mechlib):
    from neuron import h

    unknown = set(spec) - VARIANT_KEYS
    if unknown:
        raise ModelError(f"variant {name}: unknown keys {sorted(unknown)}")
    model_path = spec["model"]
    overrides = dict(spec.get("set", {}))
    callback = spec.get("callback")
    program = spec.get("program")
    if callback is not None and callback not in CALLBACKS:
        raise ModelError(f"variant {name}: unknown callback {callback!r}")
    if program is not None:
        import programs
        if program not in programs.PROGRAMS:
            raise ModelError(f"variant {name}: unknown program {program!r}")
        if callback is not None:
            raise ModelError(f"variant {name}: a callback or a program, not both")
    first_run_until = spec.get("first_run_until")
    between = dict(spec.get("between", {}))
    if first_run_until is None and between:
        raise ModelError(f"variant {name}: `between` needs `first_run_until`")
    if first_run_until is not None and (not is_number(first_run_until) or callback is not None):
        raise ModelError(f"variant {name}: first_run_until must be a number (and no callback)")
    if first_run_until is not None and program is not None:
        raise ModelError(f"variant {name}: first_run_until and a program cannot be combined")
    record_dt = spec.get("record_dt")
    if record_dt is not None and (not is_number(record_dt) or not 1e-9 <= record_dt <= 1e10
                                  or program is not None or first_run_until is not None):
        raise ModelError(f"variant {name}: record_dt must be a number from 1e-9 to 1e10 (and no "
                         "program or first run)")
    model = load_model(model_path)
    if "record" in spec:
        # the variant's own recordings instead of the model file's
        model["record"]["signals"] = list(spec["record"])
    model["morph_secs"] = import_morphology(h, model)
    apply_overrides(model, overrides)
    validate(model)
    built = build(h, model, mechlib, event_pool=program is not None, record_dt=record_dt)
    traces, spikes, arts = built["traces"], built["spikes"], built["arts"]
    dt = float(model["run"].get("dt", RUN_DEFAULTS["dt"]))

    final = None
    log = None
    first_spikes = None
    if program is not None:
        host = NeuronHost(h, model, built)
        programs.PROGRAMS[program](host)
        host.run()
        log = host.log
    else:
        # callback
        cvode = h.CVode()
        if callback == "seed_interval":
            ns = arts["ns"]

            def seed_interval():
                if int(h.t) % 50 == 0:
                    ns.interval += 10

            cvode.extra_scatter_gather(0, seed_interval)
            built["keep"].append(seed_interval)
        # a first run to first_run_until (its spikes kept: finitialize empties the recording
        # vectors) and the changes `between`, then the recorded run
        if first_run_until is not None:
            h.stdinit()
            h.continuerun(first_run_until)
            first_spikes = {src: vec.to_python() for src, vec in spikes.items()}
            apply_between(h, model, arts, between)
        h.run()
        if callback == "seed_interval":
            cvode.extra_scatter_gather_remove(seed_interval)
            final = {"ns.interval": arts["ns"].interval}
    if h.dt != dt:
        raise RuntimeError(f"h.dt changed during the run: {h.dt!r} != {dt!r}")

    signals = list(traces)
    n = len(traces["t"])
    for sig, vec in traces.items():
        if len(vec) != n:
            raise RuntimeError(f"signal {sig}: {len(vec)} samples, t has {n}")
    out = {
        "variant": name,
        "neuron_version": h.nrnversion(),
        "model": model_path,
        "set": overrides,
        "callback": callback,
        "steps": n - 1,
        "signals": signals,
        "traces": {sig: encode(traces[sig].to_python()) for sig in signals},
        "spikes": {src: vec.to_python() for src, vec in spikes.items()},
    }
    if final is not None:
        out["final"] = final
    if program is not None:
        out["program"] = program
        out["log"] = encode_log(log)
    if record_dt is not None:
        out["record_dt"] = record_dt
    if first_spikes is not None:
        out["first_run"] = {"until": first_run_until, "between": between, "spikes": first_spikes}
    path = os.path.join(GOLDEN, name + ".json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    t = traces["t"]
    counts = " ".join(f"{src}={len(vec)}" for src, vec in spikes.items())
    if len(spikes) > 8:
        counts = f"{sum(len(vec) for vec in spikes.values())} from {len(spikes)} sources"
    extra = f" final ns.interval={final['ns.interval']!r}" if final else ""
    extra += f" {len(log)} log entries" if log is not None else ""
    print(f"{name}: {n} samples (last t {t[n - 1]!r}), spikes {counts}{extra}, "
          f"{os.path.getsize(path)} bytes", flush=True)


def build(h, model, mechlib, event_pool=False, record_dt=None):
    """Builds `model` in NEURON in the fixed order that decides NEURON's internal orderings;
    returns its objects by name, the spike recorders and the recordings (every step, or
    Vector.record(&x, record_dt) for every variable, t included)."""
    thresholds = resolve_thresholds(model)
    run = model["run"]
    cells = model["cell"]
    has_vecstim = any(c["type"] == "VecStim" for c in cells.values())

    if has_vecstim:
        if not mechlib:
            raise RuntimeError("VecStim needed but no mechanism library was built")
        if not h.nrn_load_dll(mechlib):
            raise RuntimeError(f"h.nrn_load_dll({mechlib!r}) failed")

    # 1. globals
    h.load_file("stdrun.hoc")
    dt = float(run.get("dt", RUN_DEFAULTS["dt"]))
    h.celsius = run.get("celsius", RUN_DEFAULTS["celsius"])
    h.usetable_hh = run.get("usetable_hh", RUN_DEFAULTS["usetable_hh"])
    h.v_init = run.get("v_init", RUN_DEFAULTS["v_init"])
    h.tstop = run.get("tstop", RUN_DEFAULTS["tstop"])
    h.steps_per_ms = 1.0 / dt
    h.dt = dt
    if "Random123_globalindex" in run:
        h.Random().Random123_globalindex(int(run["Random123_globalindex"]))

    # 2. sections in file order, then connections in file order
    secs = {}
    for sname, s in model["section"].items():
        # a morphology's section exists already (made by Import3d, connected)
        sec = model.get("morph_secs", {}).get(sname) or h.Section(name=sname)
        for x, y, z, d in s.get("pt3d", []):
            h.pt3dadd(x, y, z, d, sec=sec)
        for k in ("L", "diam", "nseg", "cm", "Ra"):
            if k in s and not isinstance(s[k], list):
                setattr(sec, k, int(s[k]) if k == "nseg" else s[k])
        for mech in s.get("insert", []):
            sec.insert(mech)
        for k in list(HH_PARAMS) + list(ION_PARAMS) + list(PAS_PARAMS):
            if k in s and not isinstance(s[k], list):
                setattr(sec, k, s[k])  # every segment
        # range variables given per segment, in segment order
        for k, values in s.items():
            if k != "insert" and isinstance(values, list):
                for seg, x in zip(sec, values):
                    setattr(seg, k, x)
        secs[sname] = sec
    for sname, s in model["section"].items():
        if "parent" in s:
            pname, x = parse_location(s["parent"], secs, f"section.{sname}.parent")
            secs[sname].connect(secs[pname](x), 0)
    for sname, x, field, value in model["segment_sets"]:
        setattr(secs[sname](x), field, value)

    keep = []  # objects that must outlive the run
    spikes = {}  # source name -> Vector, sections then cells
    recorders = {}  # source name -> the NetCon recording its spikes

    # 3. spike recorders of the section detectors, before any other NetCon
    for sname, sec in secs.items():
        nc = h.NetCon(sec(0.5)._ref_v, None, sec=sec)
        nc.threshold = thresholds[sname]
        vec = h.Vector()
        nc.record(vec)
        keep.append(nc)
        spikes[sname] = vec
        recorders[sname] = nc

    # 4. point processes
    pps = {}
    for pname, p in model["point"].items():
        sname, x = parse_location(p["at"], secs, f"point.{pname}.at")
        pp = getattr(h, p["type"])(secs[sname](x))
        for k in POINT_PARAMS[p["type"]]:
            if k in p:
                set_field(pp, k, p[k])  # "del" works through setattr
        pps[pname] = pp

    # 5. artificial cells, then their spike recorders
    arts = {}
    for cname, c in cells.items():
        if c["type"] == "NetStim":
            cell = h.NetStim()
            for k in NETSTIM_PARAMS:
                if k in c:
                    setattr(cell, k, c[k])
            set_ids(cell, c)
        elif c["type"] in INTFIRE_PARAMS:
            cell = getattr(h, c["type"])()
            for k in INTFIRE_PARAMS[c["type"]]:
                if k in c:
                    setattr(cell, k, c[k])
        else:
            cell = h.VecStim()
            tvec = h.Vector([float(t) for t in c.get("times", [])])
            cell.play(tvec)
            keep.append(tvec)
        arts[cname] = cell
    for cname, cell in arts.items():
        nc = h.NetCon(cell, None)
        vec = h.Vector()
        nc.record(vec)
        keep.append(nc)
        spikes[cname] = vec
        recorders[cname] = nc

    # 6. NetCons
    ncs = {}
    for nname, n in model["netcon"].items():
        src, tgt = n["source"], n["target"]
        target = pps[tgt] if tgt in pps else arts[tgt]
        if src in secs:
            nc = h.NetCon(secs[src](0.5)._ref_v, target, sec=secs[src])
        else:
            nc = h.NetCon(arts[src], target)
        nc.delay = n.get("delay", NETCON_DEFAULTS["delay"])
        nc.weight[0] = n.get("weight", NETCON_DEFAULTS["weight"])
        if src in secs:
            nc.threshold = thresholds[src]
        keep.append(nc)
        ncs[nname] = nc

    # 6a. Vector.play, in file order
    for pname, p in model["play"].items():
        yvec = h.Vector([float(x) for x in p["values"]])
        ref = play_ref(model, secs, pps, arts, ncs, p["target"], f"play.{pname}.target")
        if "times" in p:
            tvec = h.Vector([float(x) for x in p["times"]])
            yvec.play(ref, tvec, 1 if p.get("continuous") else 0)
            keep.append(tvec)
        else:
            yvec.play(ref, float(p["dt"]))
        keep.append(yvec)

    # 6b. for programs: NetCons without a source, one per injected event (NetCon.event reads
    # the weight at delivery, so each injected event needs a NetCon of its own).
    pool = {}
    if event_pool:
        receivers = {**{k: v for k, v in pps.items() if model["point"][k]["type"] in SYNAPSES}, **arts}
        for name, obj in receivers.items():
            pool[name] = [h.NetCon(None, obj) for _ in range(EVENT_POOL)]
            keep.extend(pool[name])

    check_defaults(h, model, secs, pps, arts)

    # 7. recordings
    signals = ["t"] + list(model["record"].get("signals", []))
    if len(set(signals)) != len(signals):
        raise ModelError("record: duplicate signal names (or `t`)")
    every = () if record_dt is None else (record_dt,)
    if not secs:
        # Vector.record needs a currently accessed section (hoc's chk_access); a model of
        # artificial cells only gets an empty one here, which nothing reads or records.
        keep.append(h.Section(name="record_anchor"))
    traces = {"t": h.Vector()}
    traces["t"].record(h._ref_t, *every)
    for sig in signals[1:]:
        parsed = parse_signal(model, sig)
        if parsed[0] == "sec":
            _, sname, x, var = parsed
            ref = getattr(secs[sname](x), "_ref_" + var)
        elif parsed[0] == "pp":
            _, pname, var = parsed
            ref = getattr(pps[pname], "_ref_" + var)
        else:
            _, cname, var = parsed
            ref = getattr(arts[cname], "_ref_" + var)
        vec = h.Vector()
        vec.record(ref, *every)
        traces[sig] = vec
    names = {sec.name(): name for name, sec in secs.items()}  # NEURON's names to the model's
    return {"secs": secs, "pps": pps, "arts": arts, "ncs": ncs, "recorders": recorders, "pool": pool,
            "spikes": spikes, "traces": traces, "keep": keep, "names": names}


def set_field(obj, k, value):
    """obj.k = value, for an array element too (VClamp's `dur[0]`)."""
    m = re.fullmatch(r"(\w+)\[(\d+)\]", k)
    if m:
        getattr(obj, m.group(1))[int(m.group(2))] = value
    else:
        setattr(obj, k, value)


def get_field(obj, k):
    m = re.fullmatch(r"(\w+)\[(\d+)\]", k)
    return getattr(obj, m.group(1))[int(m.group(2))] if m else getattr(obj, k)


def play_ref(model, secs, pps, arts, ncs, target, what):
    """The pointer a Vector.play writes, from a spikebus parameter name: one segment's range
    variable, a point process's or artificial cell's parameter, or a NetCon's weight."""
    m = re.fullmatch(r"([\w\[\].]+?)(?:\(([^)]*)\))?\.(\w+)", target)
    if not m:
        raise ModelError(f"{what}: bad name {target!r}")
    obj, x, field = m.group(1), m.group(2), m.group(3)
    if obj in secs:
        if x is None and secs[obj].nseg != 1:
            raise ModelError(f"{what}: NEURON plays into one segment: name it SEC(x).{field}")
        return getattr(secs[obj](0.5 if x is None else float(x)), "_ref_" + field)
    if x is None and obj in pps:
        return getattr(pps[obj], "_ref_" + field)
    if x is None and obj in arts:
        return getattr(arts[obj], "_ref_" + field)
    if x is None and obj in ncs and field == "weight":
        return ncs[obj]._ref_weight[0]
    raise ModelError(f"{what}: {target!r} cannot be played in the golden models")


# Sourceless NetCons made per event target for a program's NetCon.event calls.
EVENT_POOL = 32


class NeuronHost:
    """The host of a callback program (tests/golden/programs.py) in NEURON itself: real
    FInitializeHandlers, CVode.events, extra_scatter_gather, NetCon.record callbacks,
    NetCon.event, and stdrun's loop (h.stdinit(), then fadvance() while t < tstop - dt/2, as
    h.run() does) with the per-step hook after each fadvance().

    It logs every callback (["cb", kind, h.t]) and every value read (["get", name, value])."""

    def __init__(self, h, model, built):
        self.h = h
        self.model = model
        self.b = built
        self.log = []
        self.cvode = h.CVode()
        self.keep = []
        self.at_setup = []
        self.every_hooks = []
        self.end_hooks = []
        self.setup = True
        # CVode.events of the set-up are registered by the first type-0 handler, so that
        # they are queued after finitialize cleared the queue, before anything else.
        self.keep.append(h.FInitializeHandler(0, self._register_setup_ats))

    def _register_setup_ats(self):
        for T, f in self.at_setup:
            self.cvode.event(T, f)

    def _wrap(self, kind, cb):
        def f():
            self.log.append(["cb", kind, self.h.t])
            cb()
        self.keep.append(f)
        return f

    @property
    def t(self):
        return self.h.t

    # -- names ---------------------------------------------------------------------------

    def _resolve(self, name):
        """(getter, setter) of a spikebus name in NEURON."""
        h, b, model = self.h, self.b, self.model
        if name in RUN_DEFAULTS:
            return (lambda: getattr(h, name)), (lambda v: setattr(h, name, v))
        m = re.fullmatch(r"([\w\[\].]+?)(?:\(([^)]*)\))?\.(\w+)", name)
        if not m:
            raise ModelError(f"program: bad name {name!r}")
        obj, x, field = m.group(1), m.group(2), m.group(3)
        if obj in b["secs"]:
            sec = b["secs"][obj]
            seg = sec(0.5 if x is None else float(x))
            if field == "threshold":
                nets = [b["recorders"][obj]] + [nc for n, nc in b["ncs"].items() if model["netcon"][n]["source"] == obj]
                def set_threshold(v):
                    for nc in nets:
                        nc.threshold = v
                return (lambda: nets[0].threshold), set_threshold
            if field in ("L", "nseg", "Ra"):
                return (lambda: getattr(sec, field)), (lambda v: setattr(sec, field, v))
            if (field in ("diam", "cm") or field in HH_PARAMS or field in ION_PARAMS
                    or field in PAS_PARAMS) and x is not None:
                # SEC(x).FIELD: that segment only
                return (lambda: getattr(seg, field)), (lambda v: setattr(seg, field, v))
            if field in ("diam", "cm") or field in HH_PARAMS or field in ION_PARAMS or field in PAS_PARAMS:
                def set_all(v):
                    for sg in sec:
                        setattr(sg, field, v)
                return (lambda: getattr(seg, field)), set_all
            if field in SECTION_SIGNALS:
                return (lambda: getattr(seg, field)), None
        elif obj in b["pps"]:
            pp = b["pps"][obj]
            return (lambda: getattr(pp, field)), (lambda v: setattr(pp, field, v))
        elif obj in b["arts"]:
            cell = b["arts"][obj]
            return (lambda: getattr(cell, field)), (lambda v: setattr(cell, field, v))
        elif obj in b["ncs"]:
            nc = b["ncs"][obj]
            if field == "weight":
                return (lambda: nc.weight[0]), (lambda v: nc.weight.__setitem__(0, v))
            if field == "delay":
                return (lambda: nc.delay), (lambda v: setattr(nc, "delay", v))
        raise ModelError(f"program: no name {name!r}")

    def get(self, name):
        v = float(self._resolve(name)[0]())
        self.log.append(["get", name, v])
        return v

    def set(self, name, value):
        setter = self._resolve(name)[1]
        if setter is None:
            raise ModelError(f"program: {name!r} cannot be set")
        setter(value)

    def event(self, target, te, weight=None):
        b = self.b
        if target in b["ncs"]:
            if weight is None:
                b["ncs"][target].event(te)
                return
            tgt = self.model["netcon"][target]["target"]
        else:
            tgt = target
        if weight is None:
            raise ModelError(f"program: an event to {target!r} needs a weight")
        if not b["pool"].get(tgt):
            raise ModelError(f"program: no more event NetCons for {tgt!r} (EVENT_POOL)")
        nc = b["pool"][tgt].pop(0)
        nc.weight[0] = weight
        nc.event(te)

    # -- callbacks -----------------------------------------------------------------------

    def init(self, kind, cb):
        self.keep.append(self.h.FInitializeHandler(kind, self._wrap(f"init_{kind}", cb)))

    def at(self, T, cb):
        f = self._wrap(f"at:{T!r}", cb)
        if self.setup:
            self.at_setup.append((T, f))
        else:
            self.cvode.event(T, f)

    def scatter_gather(self, cb, n=1):
        f = self._wrap("scatter_gather", cb)
        calls = [0]

        def g():
            k = calls[0]
            calls[0] += 1
            if k % n == 0:
                f()
        self.keep.append(g)
        self.cvode.extra_scatter_gather(0, g)

    def every(self, n, cb):
        self.every_hooks.append((n, self._wrap("every", cb)))

    def on_spike(self, source, cb):
        self.b["recorders"][source].record(self._wrap(f"spike:{source}", cb))

    def at_end(self, cb):
        self.end_hooks.append(self._wrap("end", cb))

    def _step_hooks(self, step):
        for n, f in self.every_hooks:
            if step % n == 0:
                f()

    def run(self):
        """h.run() with stdrun's per-step hook: stdinit(), then fadvance() while
        t < tstop - dt/2 (the bound computed once, as continuerun does)."""
        h = self.h
        self.setup = False
        h.stdinit()
        step = 0
        self._step_hooks(step)
        ts = h.tstop - h.dt / 2
        while h.t < ts:
            h.fadvance()
            step += 1
            self._step_hooks(step)
        for f in self.end_hooks:
            f()


def check_defaults(h, model, secs, pps, arts):
    """Every value the model leaves out must be NEURON's default as docs/model-format.md
    states it (the generator never sets a default, spikebus assumes it)."""
    bad = []

    def chk(what, actual, expected):
        if actual != expected:
            bad.append(f"{what}: NEURON has {actual!r}, docs say {expected!r}")

    for sname, s in model["section"].items():
        sec = secs[sname]
        ins = s.get("insert", [])
        # values set for one segment (`set` SEC(x).FIELD) are not defaults
        s = {**s, **{f: None for name, _, f, _ in model["segment_sets"] if name == sname}}
        for k, d in SECTION_GEOMETRY.items():
            if k in ("L", "diam") and sec.n3d() > 0:
                continue  # from the 3-d points
            if k not in s:
                # NEURON stores diam and cm per segment (float32 3-d points aside)
                actual = getattr(sec(0.5), k) if k in ("diam", "cm") else getattr(sec, k)
                chk(f"section.{sname}.{k}", actual, d)
        groups = [(HH_PARAMS, "hh"), (ION_PARAMS, "hh"), (PAS_PARAMS, "pas")]
        for params, mech in groups:
            if mech in ins:
                for k, d in params.items():
                    if k not in s:
                        for seg in sec:
                            chk(f"section.{sname}({seg.x}).{k}", getattr(seg, k), d)
    for pname, p in model["point"].items():
        for k, d in POINT_PARAMS[p["type"]].items():
            if k not in p:
                chk(f"point.{pname}.{k}", get_field(pps[pname], k), d)
    nth = 0
    for cname, c in model["cell"].items():
        if c["type"] == "NetStim":
            for k, d in NETSTIM_PARAMS.items():
                if k not in c:
                    chk(f"cell.{cname}.{k}", getattr(arts[cname], k), d)
            # NEURON's default ids: (1, MPI rank 0, n), n counting the RANDOM streams this
            # process created, here the NetStims in file order.
            nth += 1
            ids = [int(x) for x in arts[cname].ranvar.get_ids()]
            for i, (k, d) in enumerate(zip(NETSTIM_IDS, (1, 0, nth))):
                if k not in c:
                    chk(f"cell.{cname}.{k}", ids[i], d)
        for k, d in INTFIRE_PARAMS.get(c["type"], {}).items():
            if k not in c:
                chk(f"cell.{cname}.{k}", getattr(arts[cname], k), d)
    if "Random123_globalindex" not in model["run"]:
        chk("run.Random123_globalindex", int(h.Random().Random123_globalindex()), 0)
    if bad:
        raise ModelError("defaults differ from docs/model-format.md:\n  " + "\n  ".join(bad))


def encode_log(log):
    """A program's log as base64(zlib(JSON)): the entries are exact doubles (JSON numbers
    written with repr), tens of thousands of them for a callback at every step."""
    text = json.dumps(log, separators=(",", ":"))
    return base64.b64encode(zlib.compress(text.encode(), 9)).decode("ascii")


def encode(values):
    if any(math.isnan(v) for v in values):
        raise RuntimeError("NaN in a trace")
    raw = struct.pack(f"<{len(values)}d", *values)
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


# ---------------------------------------------------------------------------------------------

def load_variants():
    with open(VARIANTS, "rb") as f:
        return tomllib.load(f)


def print_geometry(model_path):
    """`generate.py --geometry MODEL`: builds the model's sections in NEURON and prints each
    segment's `section x area ri parent` (tab-separated, floats with repr), as `spikebus check
    --geometry` does: tests/py/test_morphology.py compares the two."""
    from neuron import h

    model = load_model(model_path)
    model["morph_secs"] = import_morphology(h, model)
    validate(model)
    built = build(h, model, None)
    h.finitialize(h.v_init)  # geometry brought up to date (recalc_diam)
    print("section\tx\tarea\tri\tparent")
    for name, sec in built["secs"].items():
        ps = sec.parentseg()
        parent = "-" if ps is None else f"{built['names'][ps.sec.name()]}({ps.x!r})"
        for seg in sec:
            print(f"{name}\t{seg.x!r}\t{seg.area()!r}\t{seg.ri()!r}\t{parent}")


# swc_geometry.json: random SWC files (tests/py/swc_random.py, seeds 0 to N-1), each
# imported by NEURON with one of these rules; every segment's area and ri.
SWC_GEOMETRY_FILES = 80
SWC_GEOMETRY_RULES = [
    "nseg = 1",
    "nseg = 3",
    'nseg = "d_lambda"\n\n[morphology.all]\nRa = 123.4\ncm = 1.1',
    'nseg = "d_lambda"\nd_lambda = 0.05\nd_lambda_freq = 500.0\n\n[morphology.all]\nRa = 35.4\ncm = 2.5',
]


def swc_geometry():
    """`generate.py --swc-geometry`: writes tests/golden/swc_geometry.json, NEURON's geometry
    (seg.area(), seg.ri(), parentseg) of every section Import3d makes from random SWC files
    (each imported in a NEURON process of its own, by `--geometry`), for the Rust test
    `swc_geometry_is_neurons`. Numbers are written with repr (read back exactly)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
    from swc_random import random_swc

    from neuron import h

    version = h.nrnversion()
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(SWC_GEOMETRY_FILES):
            text, style = random_swc(seed)
            rule = SWC_GEOMETRY_RULES[seed % len(SWC_GEOMETRY_RULES)]
            model = f'[morphology]\nswc = "cell.swc"\n{rule}\n'
            with open(os.path.join(tmp, "cell.swc"), "w") as f:
                f.write(text)
            with open(os.path.join(tmp, "cell.toml"), "w") as f:
                f.write(model)
            out = subprocess.run([sys.executable, __file__, "--geometry", os.path.join(tmp, "cell.toml")],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"seed {seed}: {out.stderr}")
            out = out.stdout.splitlines()
            # Import3d's own messages (sections removed) come before the table
            rows = [line.split("\t") for line in out[out.index("section\tx\tarea\tri\tparent") + 1:]]
            cases.append({"seed": seed, "soma": style, "swc": text, "model": model, "segments": rows})
    path = os.path.join(GOLDEN, "swc_geometry.json")
    with open(path, "w") as f:
        json.dump({"neuron_version": version, "cases": cases}, f, indent=0)
    print(f"swc_geometry: {len(cases)} files, {sum(len(c['segments']) for c in cases)} segments")


def main(argv):
    if len(argv) == 2 and argv[0] == "--geometry":
        print_geometry(argv[1])
        return 0
    if argv == ["--swc-geometry"]:
        swc_geometry()
        return 0
    if len(argv) >= 1 and argv[0] == "--worker":
        _, name, mechlib = argv
        sys.path.insert(0, GOLDEN)
        spec = load_variants()[name]
        run_variant(name, spec, mechlib or None)
        return 0

    variants = load_variants()
    names = argv or list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; known: {list(variants)}")

    import neuron

    if neuron.__version__ != NEURON_VERSION:
        print(f"warning: NEURON {neuron.__version__}, golden data is defined by "
              f"{NEURON_VERSION}", file=sys.stderr)

    need_mod = []
    for n in names:
        model = load_model(variants[n]["model"])
        if any(c.get("type") == "VecStim" for c in model["cell"].values()):
            need_mod.append(n)
    mechlib = ""
    failed = []
    if need_mod:
        try:
            mechlib = build_mechanisms()
        except Exception as e:  # report and skip only the variants that need it
            print(f"cannot build VecStim ({e}); skipping {need_mod}", file=sys.stderr)
            failed += need_mod
            names = [n for n in names if n not in need_mod]

    with tempfile.TemporaryDirectory(prefix="spikebus-golden-") as empty:
        for n in names:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", n,
                                   mechlib], cwd=empty)
            if proc.returncode != 0:
                print(f"{n}: FAILED (exit {proc.returncode})", file=sys.stderr)
                failed.append(n)
    if failed:
        print(f"failed variants: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
