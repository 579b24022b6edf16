#!/usr/bin/env python3
"""NEURON 9.0.2's own Random123 numbers for the unit tests of node/engine/src/sim/random123.rs.

Usage: python tests/golden/random123_draws.py   (with NEURON 9.0.2 importable)

Draws from NetStim `ranvar` streams with `ranvar.uniform()` (`nrnran123_dblpick`) and prints
them (repr, exact doubles) with the stream positions and ids NEURON reports. Each block is one
case of the unit tests; run it in a fresh process (the first NetStim's default ids depend on
how many RANDOM streams the process created before).
"""

from neuron import h


def draws(ranvar, n):
    return [ranvar.uniform() for _ in range(n)]


def show(label, values, ranvar=None):
    extra = ""
    if ranvar is not None:
        extra = f"  ids {[int(x) for x in ranvar.get_ids()]} seq4which {ranvar.get_seq()!r}"
    print(f"{label}: [{', '.join(repr(v) for v in values)}]{extra}")


def main():
    rand = h.Random()  # its Random123_globalindex method sets the process-wide global index
    a = h.NetStim()
    b = h.NetStim()
    print(f"default ids: first NetStim {[int(x) for x in a.ranvar.get_ids()]}, "
          f"second {[int(x) for x in b.ranvar.get_ids()]}, global index "
          f"{int(rand.Random123_globalindex())}")

    show("first NetStim, 9 draws", draws(a.ranvar, 9), a.ranvar)

    rand.Random123_globalindex(7)
    b.ranvar.set_ids(123, 456, 789).set_seq(0)
    show("ids (123, 456, 789), global index 7, 9 draws", draws(b.ranvar, 9), b.ranvar)

    b.ranvar.set_seq(0)
    draws(b.ranvar, 2)
    b.ranvar.set_ids(1, 2, 3)
    show("same, set_ids(1, 2, 3) after 2 draws, 6 draws", draws(b.ranvar, 6), b.ranvar)

    rand.Random123_globalindex(0)
    b.ranvar.set_seq(6)
    show("ids (1, 2, 3), global index 0, set_seq(6), 3 draws", draws(b.ranvar, 3), b.ranvar)

    b.ranvar.set_seq(0)
    draws(b.ranvar, 3)
    rand.Random123_globalindex(11)
    show("same from set_seq(0), global index 0 -> 11 after 3 draws, 6 draws",
         draws(b.ranvar, 6), b.ranvar)

    rand.Random123_globalindex(0)
    b.ranvar.set_ids(1, 2, 3).set_seq((2**32 - 1) * 4 + 3)
    show("ids (1, 2, 3), set_seq((2^32 - 1)*4 + 3), 2 draws", draws(b.ranvar, 2), b.ranvar)

    for x in (2**34 + 5, -3, 6.9, 2e12):
        b.ranvar.set_seq(x)
        print(f"set_seq({x!r}) -> get_seq() {b.ranvar.get_seq()!r}")


if __name__ == "__main__":
    main()
