#!/usr/bin/env python3
"""Writes the network golden models: tests/models/network200.toml (every object written out)
and tests/models/network200_pop.toml (the same network as templates, populations and
connection rules). The Rust tests require the two to parse to the same model; the first is
run by NEURON for the golden data.

Usage: python3 tests/models/network.py   (rewrites both files; deterministic)

200 cells connected through their spike detectors with delays, for the golden test of
networks (and of every thread count: the cells are split across threads, the spikes between
them go through the event queue):
- 160 "p" cells: an hh soma and a passive 3-segment dendrite, an ExpSyn on the dendrite and an
  inhibitory Exp2Syn on the soma; their parameters vary from cell to cell;
- 40 "q" cells: an hh soma with an ExpSyn;
- 20 NetStims (half of them noisy) drive the p cells;
- every p cell excites 6 others, every fourth p cell a q cell, every q cell inhibits 8 p
  cells, and q cells excite each other with probability 0.1 (spikebus's documented rule,
  computed here independently).
Delays come from a few values, so that spikes of one step from several cells often arrive at
one synapse at the same time (the order of their weights then matters for the bits).
Copies are named as spikebus names population copies (`p[3].soma`).
"""

import math
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
NP, NQ, NS = 160, 40, 20
MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def targets_by_probability(seed, i, p, n):
    """docs/model-format.md, rule `probability`."""
    state = seed ^ ((i * 0x9E3779B97F4A7C15) & MASK)
    denom = math.log(1.0 - p)
    out, j = [], -1
    while True:
        state, x = splitmix64(state)
        u = (x >> 11) * (1.0 / (1 << 53))
        gap = math.floor(math.log(1.0 - u) / denom)
        if not gap < n:
            break
        j += gap + 1
        if j >= n:
            break
        out.append(j)
    return out


# Per-copy values: each as the expression the population file uses and as Python computes it
# for the flat file (the same f64 operations in the same order).
P_SETS = {
    "soma.gnabar_hh": ("0.10 + 0.0005 * (i % 41)", lambda i: 0.10 + 0.0005 * math.fmod(i, 41)),
    "soma.gkbar_hh": ("0.036 + 0.0002 * (i % 7)", lambda i: 0.036 + 0.0002 * math.fmod(i, 7)),
    "soma.threshold": ("-10 + i % 3", lambda i: -10.0 + math.fmod(i, 3)),
    "dend.L": ("150 + 5 * (i % 11)", lambda i: 150.0 + 5.0 * math.fmod(i, 11)),
    "isyn.tau2": ("5 + 0.5 * (i % 3)", lambda i: 5.0 + 0.5 * math.fmod(i, 3)),
}
Q_SETS = {"soma.gkbar_hh": ("0.04 + 0.0003 * (i % 5)", lambda i: 0.04 + 0.0003 * math.fmod(i, 5))}
NS_SETS = {
    "ns.interval": ("8 + i", lambda i: 8.0 + i),
    "ns.start": ("i % 5", lambda i: math.fmod(i, 5)),
    "ns.noise": ("0.5 * (i % 2)", lambda i: 0.5 * math.fmod(i, 2)),
}
P_TEMPLATE = {
    "section": {
        "soma": {"L": 20.0, "diam": 20.0, "insert": ["hh"]},
        "dend": {"parent": "soma(1)", "diam": 2.0, "nseg": 3, "insert": ["pas"], "g_pas": 0.0002, "e_pas": -65.0},
    },
    "point": {
        "esyn": {"type": "ExpSyn", "at": "dend(0.5)", "tau": 2.0},
        "isyn": {"type": "Exp2Syn", "at": "soma(0.5)", "tau1": 0.5, "e": -80.0},
    },
}
Q_TEMPLATE = {
    "section": {"soma": {"L": 15.0, "diam": 15.0, "insert": ["hh"], "threshold": -5.0}},
    "point": {"esyn": {"type": "ExpSyn", "at": "soma(0.5)", "tau": 1.5}},
}
NS_TEMPLATE = {"cell": {"ns": {"type": "NetStim", "number": 1e9}}}
# Connection rules: (name, source, target, pairs or probability, delay, weight), each delay and
# weight an expression in i and j and its Python twin.
DELAY_E = ("1 + 0.5 * ((i + j) % 4)", lambda i, j: 1.0 + 0.5 * math.fmod(i + j, 4))
WEIGHT_E = ("0.002 + 0.0005 * ((7 * i + j) % 3)", lambda i, j: 0.002 + 0.0005 * math.fmod(7 * i + j, 3))


def value(v):
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return repr(float(v)) if not isinstance(v, int) else str(v)


def rules(rng):
    stim = [(k, i) for k in range(NS) for i in sorted(rng.sample(range(NP), 12))]
    ee = [(i, j) for i in range(NP) for j in rng.sample([j for j in range(NP) if j != i], 6)]
    eq = [(i, rng.randrange(NQ)) for i in range(0, NP, 4)]
    qe = [(i, j) for i in range(NQ) for j in rng.sample(range(NP), 8)]
    qq = [(i, j) for i in range(NQ) for j in targets_by_probability(5, i, 0.1, NQ) if i != j]
    return [
        ("stim", "ns[*].ns", "p[*].esyn", {"pairs": stim}, ("1.0", lambda i, j: 1.0), ("0.004 + 0.001 * (i % 4)", lambda i, j: 0.004 + 0.001 * math.fmod(i, 4)), stim),
        ("ee", "p[*].soma", "p[*].esyn", {"pairs": ee}, DELAY_E, WEIGHT_E, ee),
        ("eq", "p[*].soma", "q[*].esyn", {"pairs": eq}, ("1.0", lambda i, j: 1.0), ("0.01", lambda i, j: 0.01), eq),
        ("qe", "q[*].soma", "p[*].isyn", {"pairs": qe}, ("1 + (i + j) % 2", lambda i, j: 1.0 + math.fmod(i + j, 2)), ("0.003", lambda i, j: 0.003), qe),
        ("qq", "q[*].soma", "q[*].esyn", {"p": 0.1, "seed": 5}, ("1.5", lambda i, j: 1.5), ("0.004", lambda i, j: 0.004), qq),
    ]


SIGNALS = ["p[0].soma.v", "p[1].dend(0.1).v", "p[7].soma.v", "p[7].esyn.g", "p[7].isyn.g", "q[3].soma.v",
           "q[3].esyn.i", "p[159].soma.m_hh", "p[80].dend(0.9).i_pas"]
HEADER = ["[run]", "dt = 0.025", "tstop = 200.0", ""]


def table(head, keys):
    return [head] + [f"{k} = {value(v)}" for k, v in keys.items()] + [""]


def flat(pops, conns):
    out = ["# Generated by tests/models/network.py; edit that script, not this file.",
           "# 200 connected cells (160 soma + dendrite, 40 soma only) and 20 NetStims, every object",
           "# written out (network200_pop.toml is the same network as populations).", ""] + HEADER
    for kind in ["section", "point", "cell"]:
        for pop, count, template, sets in pops:
            for i in range(count):
                for local, keys in template.get(kind, {}).items():
                    keys = dict(keys)
                    for k in ("parent", "at"):
                        if k in keys:
                            keys[k] = f"{pop}[{i}].{keys[k]}"
                    for param, (_, f) in sets.items():
                        obj, field = param.rsplit(".", 1)
                        if obj == local:
                            keys[field] = f(i)
                    out += table(f'[{kind}."{pop}[{i}].{local}"]', keys)
    for name, src, tgt, _, (_, delay), (_, weight), pairs in conns:
        for k, (i, j) in enumerate(pairs):
            s, t = src.replace("*", str(i)), tgt.replace("*", str(j))
            out += table(f'[netcon."{name}[{k}]"]', {"source": s, "target": t, "delay": delay(i, j), "weight": weight(i, j)})
    out += ["[record]", "signals = " + value(SIGNALS), ""]
    return out


def populations(pops, conns):
    out = ["# Generated by tests/models/network.py; edit that script, not this file.",
           "# The network of network200.toml as templates, populations and connection rules.", ""] + HEADER
    for pop, count, template, sets in pops:
        for kind, objs in template.items():
            for local, keys in objs.items():
                out += table(f"[template.{pop}.{kind}.{local}]", keys)
        out += [f"[population.{pop}]", f'template = "{pop}"', f"count = {count}", f"[population.{pop}.set]"]
        out += [f'"{param}" = "{expr}"' for param, (expr, _) in sets.items()] + [""]
    for name, src, tgt, rule, (delay, _), (weight, _), _ in conns:
        keys = {"source": src, "target": tgt}
        if "pairs" in rule:
            keys["rule"] = "pairs"
            keys["pairs"] = [[i, j] for i, j in rule["pairs"]]
        else:
            keys.update({"rule": "probability", "p": rule["p"], "seed": rule["seed"]})
        keys.update({"delay": delay, "weight": weight})
        out += table(f"[connect.{name}]", keys)
    out += ["[record]", "signals = " + value(SIGNALS), ""]
    return out


def main():
    rng = random.Random(20261127)
    pops = [("p", NP, P_TEMPLATE, P_SETS), ("q", NQ, Q_TEMPLATE, Q_SETS), ("ns", NS, NS_TEMPLATE, NS_SETS)]
    conns = rules(rng)
    for name, lines in [("network200.toml", flat(pops, conns)), ("network200_pop.toml", populations(pops, conns))]:
        with open(os.path.join(HERE, name), "w") as f:
            f.write("\n".join(lines))


if __name__ == "__main__":
    main()
