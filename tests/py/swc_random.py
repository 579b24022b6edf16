"""Random SWC files for the morphology tests: every convention of NEURON's Import3d that
spikebus reproduces, in random combinations (seeded, so a failure can be replayed).

- somas of one point, of three points (neuromorpho.org's sphere), of a chain of points, of a
  branched tree of points, or none (the root is a dendrite);
- neurites of random types (axon 2, dend 3, apic 4, others) leaving the soma's first, inner
  or last point, branching, changing type along the way, with one-point branches and
  zero-length two-point branches (which Import3d removes);
- points written in depth-first order with the children of a point in random order (so
  some children follow their parent and others do not), ids with gaps, coordinates and radii
  with more digits than a float holds.
"""

from __future__ import annotations

import random


class Tree:
    def __init__(self) -> None:
        # (type, x, y, z, radius, parent index or -1)
        self.pts: list[list] = []
        self.children: list[list[int]] = []

    def add(self, typ: int, x: float, y: float, z: float, r: float, parent: int) -> int:
        self.pts.append([typ, x, y, z, r, parent])
        self.children.append([])
        if parent >= 0:
            self.children[parent].append(len(self.pts) - 1)
        return len(self.pts) - 1


def _coord(rng: random.Random, scale: float = 1.0) -> float:
    return rng.uniform(-30.0, 30.0) * scale


def _neurite(rng: random.Random, t: Tree, parent: int, typ: int, depth: int) -> None:
    """A chain of points from `parent`, then maybe branches."""
    x, y, z = t.pts[parent][1:4]
    r = rng.uniform(0.15, 3.0)
    cur = parent
    n = rng.choice([1, 1, 2, 3, 4, 6])
    for k in range(n):
        if rng.random() < 0.08 and k > 0:
            typ = rng.choice([2, 3, 4, 5, 7])  # a type change along the way
        if rng.random() < 0.05 and cur != parent:
            nx, ny, nz = x, y, z  # a point equal to the previous one
        else:
            nx, ny, nz = x + _coord(rng, 0.5), y + _coord(rng, 0.5), z + _coord(rng, 0.2)
        r = max(0.05, r * rng.uniform(0.7, 1.1)) if rng.random() < 0.8 else r
        cur = t.add(typ, nx, ny, nz, r, cur)
        x, y, z = nx, ny, nz
    if depth < 4:
        for _ in range(rng.choice([0, 0, 1, 2, 2, 3])):
            _neurite(rng, t, cur, typ if rng.random() < 0.85 else rng.choice([2, 3, 4]), depth + 1)


def random_tree(rng: random.Random) -> tuple[Tree, str]:
    t = Tree()
    style = rng.choice(["point", "point", "three", "chain", "chain", "tree", "none"])
    cx, cy, cz = _coord(rng), _coord(rng), _coord(rng)
    rs = rng.uniform(3.0, 12.0)
    soma = []
    if style == "none":
        soma = [t.add(3, cx, cy, cz, rng.uniform(0.5, 3), -1)]
    else:
        root = t.add(1, cx, cy, cz, rs, -1)
        soma = [root]
        if style == "three":
            # neuromorpho.org: both other points at +-radius along y, the same radius
            soma.append(t.add(1, cx, cy - rs, cz, rs, root))
            soma.append(t.add(1, cx, cy + rs, cz, rs, root))
        elif style == "chain":
            cur = root
            for _ in range(rng.randint(1, 6)):
                cur = t.add(1, t.pts[cur][1] + rng.uniform(0.5, 4), t.pts[cur][2] + _coord(rng, 0.05), cz,
                            rng.uniform(2.0, 12.0), cur)
                soma.append(cur)
        elif style == "tree":
            for _ in range(2):
                cur = root
                for _ in range(rng.randint(1, 3)):
                    cur = t.add(1, t.pts[cur][1] + _coord(rng, 0.2), t.pts[cur][2] + _coord(rng, 0.2), cz,
                                rng.uniform(2.0, 10.0), cur)
                    soma.append(cur)
    attach = soma if style != "three" else soma[:1]
    for _ in range(rng.randint(1, 6)):
        _neurite(rng, t, rng.choice(attach), rng.choice([2, 3, 3, 4, 5]), 0)
    return t, style


def swc_text(t: Tree, rng: random.Random) -> str:
    """The tree in SWC, depth first, children in random order, ids with gaps."""
    order: list[int] = []
    # the 3-point soma's two points come right after the root
    first = [c for c in t.children[0] if t.pts[c][0] == 1 and not t.children[c]][:2] if len(t.pts) > 2 else []
    stack = [0]
    while stack:
        i = stack.pop()
        order.append(i)
        kids = [c for c in t.children[i] if not (i == 0 and c in first)]
        rng.shuffle(kids)
        stack.extend(reversed(kids))
        if i == 0:
            stack.extend(reversed(first))
    ids = {}
    nid = rng.randint(0, 3)
    for i in order:
        nid += 1 if rng.random() < 0.8 else rng.randint(2, 5)
        ids[i] = nid
    lines = ["# random SWC file for spikebus's morphology tests"]
    for i in order:
        typ, x, y, z, r, p = t.pts[i]
        pid = ids[p] if p >= 0 else -1
        fmt = rng.choice(["%.6f", "%.9g", "%.3f", "%r"])
        num = lambda v: (fmt % v) if fmt != "%r" else repr(v)  # noqa: E731
        lines.append(f"{ids[i]} {typ} {num(x)} {num(y)} {num(z)} {num(r)} {pid}")
    return "\n".join(lines) + "\n"


def random_swc(seed: int) -> tuple[str, str]:
    """(SWC text, soma style) of a random cell."""
    rng = random.Random(seed)
    t, style = random_tree(rng)
    return swc_text(t, rng), style
