"""`spikebus from-neuron` against the real NEURON 9.0.2: models built in NEURON (plain NEURON
Python scripts in tests/py/neuron_models/, and the golden variants built by generate.py's own
code) are converted by the real binary's `from-neuron` (which runs the module in a NEURON
Python), run by spikebus, and compared with NEURON's run of the same script sample by sample
and spike by spike, bit for bit: a network of 120 cells, a cell imported from an SWC file, a
VecStim, NEURON's IntFire1/2/4, AlphaSynapse, SEClamp and VClamp with values set segment by
segment, and every golden variant without a program or a play. What spikebus cannot run
(Vector.play among it) is refused, each thing named, and no file is written.

NEURON comes from tests/py/requirements.txt (neuron==9.0.2): the Python running pytest must
have it (the tests fail, not skip, without it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT, Golden, assert_matches_golden, load_golden

MODELS = REPO_ROOT / "tests" / "py" / "neuron_models"


@pytest.fixture(scope="session")
def neuron_python() -> str:
    """This Python, which must have NEURON 9.0.2."""
    proc = subprocess.run([sys.executable, "-c", "import neuron; print(neuron.__version__)"],
                          capture_output=True, text=True)
    if proc.returncode != 0 or proc.stdout.strip() != "9.0.2":
        pytest.fail(f"{sys.executable} has no NEURON 9.0.2 ({proc.stdout.strip()} {proc.stderr[-300:]}): "
                    "pip install -r tests/py/requirements.txt")
    return sys.executable


@pytest.fixture(scope="session")
def mechlib(neuron_python: str) -> str:
    """VecStim (tests/golden/mod) compiled by NEURON's nrnivmodl, as generate.py does."""
    code = ("import sys; sys.path.insert(0, 'tests/golden'); import generate; "
            "print(generate.build_mechanisms())")
    proc = subprocess.run([neuron_python, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def from_neuron(spikebus_bin: Path, python: str, script: Path, out: Path, *args: str,
                mechlib: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPIKEBUS_TEST_MECHLIB=mechlib or "")
    return subprocess.run([str(spikebus_bin), "from-neuron", "--python", python, str(script), "--out", str(out), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)


def convert_and_run(spikebus_bin: Path, python: str, script: Path, tmp: Path, *args: str,
                    mechlib: str | None = None) -> Path:
    """from-neuron, then `spikebus run` of the model it wrote: the output directory."""
    model = tmp / "model.toml"
    proc = from_neuron(spikebus_bin, python, script, model, *args, mechlib=mechlib)
    assert proc.returncode == 0, f"from-neuron failed:\n{proc.stderr[-3000:]}"
    out = tmp / "out"
    run = subprocess.run([str(spikebus_bin), "run", str(model), "--out", str(out)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return out


def neuron_reference(python: str, script: Path, tmp: Path, mechlib: str | None = None) -> Golden:
    """NEURON's own run of the script (neuron_reference.py)."""
    out = tmp / "neuron.json"
    env = dict(os.environ, SPIKEBUS_TEST_MECHLIB=mechlib or "")
    proc = subprocess.run([python, str(REPO_ROOT / "tests" / "py" / "neuron_reference.py"), str(script), str(out)],
                          cwd=tmp, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = json.loads(out.read_text())
    return Golden(signals=d["signals"], traces=d["traces"], spikes=d["spikes"], final={}, set={})


@pytest.mark.parametrize("script", ["net120.py", "swc_cell.py", "vecstim_cell.py", "builtins_cells.py"])
def test_neuron_scripts_convert_to_the_same_run(spikebus_bin: Path, neuron_python: str, mechlib: str,
                                                 script: str, tmp_path: Path) -> None:
    path = MODELS / script
    want = neuron_reference(neuron_python, path, tmp_path, mechlib)
    out = convert_and_run(spikebus_bin, neuron_python, path, tmp_path, mechlib=mechlib)
    assert_matches_golden(out, want)
    # a test that can fail: the run has spikes and moving traces
    assert sum(len(v) for v in want.spikes.values()) > 0
    assert len(set(want.traces[want.signals[1]])) > 10


def test_network_of_120_cells_is_all_there(spikebus_bin: Path, neuron_python: str, tmp_path: Path) -> None:
    proc = from_neuron(spikebus_bin, neuron_python, MODELS / "net120.py", tmp_path / "m.toml")
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run([str(spikebus_bin), "check", str(tmp_path / "m.toml")], capture_output=True, text=True)
    assert "240 sections, 241 point processes, 12 artificial cells, 672 NetCons" in check.stdout, check.stdout


# Golden variants whose whole run is the model: all but those with a program, callback, second
# run, record_dt (Vector.record(&x, Dt)) or Vector.play (refused, below).
GOLDEN_MODELS = ["seed", "seed_exact_rates", "seed_delay", "seed_warm", "seed_warm_exact", "seed_noise1", "seed_dt001",
                 "seed_params", "ball_stick", "branched", "iclamp", "exp2syn", "seed_noise05", "netstim100",
                 "netstim100_ids", "network200", "swc_pyramidal", "swc_random72", "intfire1", "intfire2", "intfire4",
                 "alphasynapse", "seclamp", "vclamp", "vclamp_slow", "segments", "segments_set"]


@pytest.mark.parametrize("variant", GOLDEN_MODELS)
def test_golden_models_convert_to_neurons_run(spikebus_bin: Path, neuron_python: str, mechlib: str,
                                               variant: str, tmp_path: Path) -> None:
    """Built in NEURON by generate.py's code, converted, run: NEURON's committed golden data."""
    out = convert_and_run(spikebus_bin, neuron_python, MODELS / "golden_variant.py", tmp_path, "--", variant,
                          mechlib=mechlib)
    assert_matches_golden(out, load_golden(variant))


@pytest.mark.parametrize("variant, plays", [("play_discrete", "6 discrete"), ("play_continuous", "4 continuous")])
def test_golden_models_with_plays_are_refused(spikebus_bin: Path, neuron_python: str, tmp_path: Path,
                                              variant: str, plays: str) -> None:
    """NEURON does not show a play's target or values, only (SaveState) that it is there: a
    model with plays is refused, each kind counted; its Vector.records are not plays."""
    out = tmp_path / "m.toml"
    proc = from_neuron(spikebus_bin, neuron_python, MODELS / "golden_variant.py", out, "--", variant)
    assert proc.returncode == 2, proc.stderr
    assert not out.exists()
    assert f"Vector.play ({plays}): NEURON does not show what a play writes" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n  - ") == 1, proc.stderr  # the plays, nothing else


def test_builtins_and_per_segment_values_are_written_as_the_model_format_names_them(
        spikebus_bin: Path, neuron_python: str, tmp_path: Path) -> None:
    """What the bit-for-bit run above rests on, read in the file: per-segment values as lists
    (one value per segment), VClamp's arrays as lists, SEClamp's levels as dur1..amp3."""
    out = tmp_path / "m.toml"
    proc = from_neuron(spikebus_bin, neuron_python, MODELS / "builtins_cells.py", out)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    for line in ["diam = [3.0, 2.7, 2.4, 2.1, 1.8, 1.5, 1.2000000000000002]",
                 "cm = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6]",
                 "e_pas = [-65.0, -66.0, -67.0, -68.0, -69.0, -70.0, -71.0]",
                 "ena = [50.0, 50.0, 50.0, 50.0, 50.0, 50.0, 45.0]",
                 "gkbar_hh = 0.012",  # the same in every segment: one number
                 'type = "VClamp"', "dur = [4.0, 12.0, 10.0]", "amp = [-60.0, -5.0, -75.0]",
                 'type = "SEClamp"', "amp3 = -85.0", 'type = "AlphaSynapse"', 'type = "IntFire1"',
                 'type = "IntFire2"', 'type = "IntFire4"', "taui2 = 16.0"]:
        assert line + "\n" in text, f"{line!r} not in:\n{text}"


REFUSED = '''
from neuron import h
a = h.Section(name="a")
a.insert("pas")
a.nseg = 3
a(0.1).g_pas = 0.002
b = h.Section(name="b")
b.connect(a(0.5), 1)
c = h.Section(name="c")
c.insert("extracellular")
oc = h.OClamp(a(0.5))
ap = h.APCount(a(0.5))
f = h.IntFire4()
h.eps_IntFire4 = 1e-5
syn = h.ExpSyn(a(0.5))
nc = h.NetCon(None, syn)
amps, times = h.Vector([0.1, 0.2]), h.Vector([1.0, 2.0])
amps.play(a(0.5)._ref_g_pas, times)
taus = h.Vector([2.0, 3.0])
taus.play(syn._ref_tau, times, 1)
rec = h.Vector()
rec.record(a(0.5)._ref_v)
class Cell:
    def __init__(self):
        self.soma = h.Section(name="soma", cell=self)
cell = Cell()
h.cvode.active(1)
'''


def test_what_spikebus_cannot_run_is_named_and_nothing_written(spikebus_bin: Path, neuron_python: str,
                                                                tmp_path: Path) -> None:
    script = tmp_path / "refused.py"
    script.write_text(REFUSED)
    out = tmp_path / "m.toml"
    proc = from_neuron(spikebus_bin, neuron_python, script, out)
    assert proc.returncode == 2, proc.stderr
    assert not out.exists()
    for what in ["section `b`: connected at its 1 end", "`extracellular`", "1 OClamp (OClamp[0])",
                 "1 APCount (APCount[0])", "eps_IntFire4 = 1e-05: spikebus's IntFire4 has NEURON's default eps = 1e-06",
                 "NetCon[0]: no source", "CVode is active", "Cell object at",
                 "Vector.play (1 discrete, 1 continuous): NEURON does not show what a play writes"]:
        assert what in proc.stderr, f"{what!r} not in:\n{proc.stderr}"
    # what spikebus has now is not among the refusals: a value set in one segment, IntFire4
    for what in ["g_pas", "differs between segments", "1 IntFire4"]:
        assert what not in proc.stderr, f"{what!r} refused:\n{proc.stderr}"


def test_the_module_runs_as_python_m(neuron_python: str, tmp_path: Path) -> None:
    """`python -m spikebus_client.from_neuron` is the same tool as `spikebus from-neuron`."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "examples-py"))
    proc = subprocess.run([neuron_python, "-m", "spikebus_client.from_neuron", str(MODELS / "swc_cell.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '[section."apic[4]"]' in proc.stdout and "pt3d = [[" in proc.stdout
