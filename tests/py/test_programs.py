"""NEURON callback programs, ported onto the bus, give NEURON's numbers bit for bit.

Each variant of ``tests/golden/variants.toml`` with a ``program`` is a callback program of
``tests/golden/programs.py``, run by ``tests/golden/generate.py`` in NEURON 9.0.2 with its
real callbacks (FInitializeHandler, CVode.event, extra_scatter_gather, NetCon.record,
NetCon.event, stdrun's per-step hook).  Here the same program drives a spikebus node through
sync points (``bus_host.BusHost``); the run's traces and spikes, and the program's log (each
callback with its ``h.t``, each value it read), must equal NEURON's, double for double.
"""

from __future__ import annotations

import base64
import json
import struct
import sys
import tomllib
import zlib
from pathlib import Path

import pytest

from helpers import GOLDEN, assert_matches_golden, load_golden

sys.path.insert(0, str(GOLDEN))
import programs  # noqa: E402  (tests/golden/programs.py)

from bus_host import BusHost  # noqa: E402
from spikebus_client import Controller, Done  # noqa: E402

with open(GOLDEN / "variants.toml", "rb") as f:
    VARIANTS = {k: v for k, v in tomllib.load(f).items() if "program" in v}


def golden_log(name: str) -> list:
    with open(GOLDEN / f"{name}.json", encoding="utf-8") as f:
        text = zlib.decompress(base64.b64decode(json.load(f)["log"]))
    return json.loads(text)


def as_bits(log: list) -> list:
    """Floats by their bits, so that the comparison is exact (0.0 vs -0.0, NaN)."""
    return [[struct.pack("<d", x).hex() if isinstance(x, float) else x for x in entry] for entry in log]


def test_every_program_has_a_variant() -> None:
    used = {v["program"] for v in VARIANTS.values()}
    assert used == set(programs.PROGRAMS), f"programs without a golden variant: {set(programs.PROGRAMS) - used}"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_program_over_the_bus_is_neuron_exact(name: str, start_node, control, tmp_path: Path) -> None:
    spec = VARIANTS[name]
    out = tmp_path / "out"
    args = [spec["model"], "--control", control("ipc"), "--out", str(out)]
    for k, v in spec.get("set", {}).items():
        args += ["--set", f"{k}={v!r}"]
    node = start_node(args)
    with Controller(node.control, timeout_ms=60_000, client=f"prog-{name}") as c:
        host = BusHost(c)
        programs.PROGRAMS[spec["program"]](host)
        done = host.run()
    assert isinstance(done, Done) and done.reason == "end", done
    assert node.wait() == 0, node.stderr
    assert_matches_golden(out, load_golden(name))
    want = golden_log(name)
    got = host.log
    assert len(got) == len(want), f"{len(got)} log entries, NEURON has {len(want)}"
    for i, (g, w) in enumerate(zip(as_bits(got), as_bits(want))):
        assert g == w, f"log entry {i}: bus {got[i]!r}, NEURON {want[i]!r}"
