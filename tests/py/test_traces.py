"""traces.npy as a NumPy user reads it: ``np.load`` (and memory-mapped), columns named by
manifest.json, the same doubles as traces.csv and as NEURON 9.0.2's golden data, bit for
bit; and ``--record-dt`` (NEURON's ``Vector.record(&x, Dt)``) the same way."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import load_golden, read_traces


def run(spikebus_bin: Path, repo_root: Path, out: Path, *args: str) -> dict:
    """``spikebus run ARGS --out OUT``; returns the manifest."""
    proc = subprocess.run([str(spikebus_bin), "run", *args, "--out", str(out)], cwd=repo_root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "manifest.json").read_text())


def golden_array(name: str) -> tuple[list[str], np.ndarray]:
    g = load_golden(name)
    return g.signals, np.column_stack([np.array(g.traces[s], dtype=np.float64) for s in g.signals])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool((a.view(np.uint64) == b.view(np.uint64)).all())


@pytest.mark.parametrize("mmap", [None, "r"])
def test_npy_loads_as_neurons_doubles(spikebus_bin: Path, repo_root: Path, tmp_path: Path, mmap) -> None:
    m = run(spikebus_bin, repo_root, tmp_path / "npy", "--set", "soma.threshold=0", "--format", "npy")
    run(spikebus_bin, repo_root, tmp_path / "csv", "--set", "soma.threshold=0")
    a = np.load(tmp_path / "npy" / "traces.npy", mmap_mode=mmap)
    assert a.dtype == np.dtype("<f8") and a.flags.c_contiguous
    signals, want = golden_array("seed")
    assert m["files"]["traces.npy"]["columns"] == signals
    assert same_bits(np.asarray(a), want), "traces.npy differs from NEURON's golden seed"
    header, cols = read_traces(tmp_path / "csv" / "traces.csv")
    from_csv = np.column_stack([np.array(cols[h], dtype=np.float64) for h in header])
    assert header == signals and same_bits(np.asarray(a), from_csv), "traces.npy and traces.csv differ"
    # Column by name, as the docs show.
    v = a[:, m["files"]["traces.npy"]["columns"].index("soma.v")]
    assert same_bits(np.asarray(v), want[:, signals.index("soma.v")])


def test_npy_with_record_dt(spikebus_bin: Path, repo_root: Path, tmp_path: Path) -> None:
    signals, want = golden_array("recdt_seed")
    m = run(spikebus_bin, repo_root, tmp_path, "--set", "soma.threshold=0", "--record", ",".join(signals[1:]),
            "--record-dt", "0.1", "--format", "npy")
    a = np.load(tmp_path / "traces.npy")
    assert m["files"]["traces.npy"]["columns"] == signals
    assert a.shape == (5000, len(signals))
    assert same_bits(a, want), "traces.npy differs from NEURON's Vector.record(&x, 0.1)"
