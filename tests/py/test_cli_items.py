"""The small command-line items of issue 9 (item 7), each against the real binary:
per-segment --set values are listed by `params` (bad ones get a plain error), `params` lists the recordable signals, `check
--help` and `params --help` describe their arguments, `--out /dev/null` writes no files, and
the model format documents models of several cells (its two-cell example runs)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from helpers import REPO_ROOT


def run(spikebus_bin: Path, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(spikebus_bin), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO_ROOT)


SEGMENTS = str(REPO_ROOT / "tests" / "models" / "segments.toml")


def test_per_segment_set_is_listed_by_params(spikebus_bin: Path) -> None:
    p = run(spikebus_bin, "params", SEGMENTS, "--set", "dend(0.3).g_pas=0.0007")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^dend\(0\.3\)\.g_pas\s+0\.0007\s+S/cm2\s+writable$", p.stdout, re.M), p.stdout
    # the other segments keep the model file's list
    assert re.search(r"^dend\(0\.9\)\.g_pas\s+0\.0005\s", p.stdout, re.M), p.stdout


@pytest.mark.parametrize("cmd", ["run", "params"])
def test_bad_per_segment_set_is_a_plain_error(spikebus_bin: Path, tmp_path: Path, cmd: str) -> None:
    for name, message in [
        ("dend(0.3).L", "unknown parameter `dend(0.3).L`: `L` belongs to the whole section, not to a segment: "
                        "set `dend.L`"),
        ("dend(1.5).g_pas", "unknown parameter `dend(1.5).g_pas`: `dend(1.5)` is not SECTION(x) with 0 <= x <= 1"),
        ("axon(0.3).g_pas", "unknown parameter `axon(0.3).g_pas`: there is no section `axon` (only a section's "
                            "parameters have segments)"),
    ]:
        args = [cmd, SEGMENTS, "--set", f"{name}=0.0002"] + (["--out", str(tmp_path / "d")] if cmd == "run" else [])
        p = run(spikebus_bin, *args)
        assert p.returncode == 2, p
        assert p.stderr.strip() == f"spikebus: {message}", p.stderr
        assert not (tmp_path / "d").exists(), "a refused --set wrote something"


def test_params_lists_the_recordable_signals(spikebus_bin: Path) -> None:
    p = run(spikebus_bin, "params")
    assert p.returncode == 0, p.stderr
    head, _, tail = p.stdout.partition("\nsignals (recordable")
    assert tail, p.stdout
    assert re.search(r"^soma\.gnabar_hh\s+0\.12\s+S/cm2\s+writable$", head, re.M), head
    signals = tail.splitlines()[1:]
    for name in ("soma.v", "soma.m_hh", "soma.h_hh", "soma.n_hh", "syn.g", "syn.i"):
        assert name in signals, signals
    # Every listed signal is recordable: a run records them all.
    out = run(spikebus_bin, "run", "--set", "tstop=0.1", "--record", ",".join(signals), "--out", "/dev/null")
    assert out.returncode == 0, out.stderr


def test_params_into_a_closed_pipe_is_quiet(spikebus_bin: Path) -> None:
    p = subprocess.run(f"'{spikebus_bin}' params | head -1", shell=True, capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("name"), p.stdout
    assert "panicked" not in p.stderr and p.stderr == "", p.stderr


def test_check_and_params_help_describe_their_arguments(spikebus_bin: Path) -> None:
    check = run(spikebus_bin, "check", "--help").stdout
    assert re.search(r"<MODEL>\s+The model file \(TOML", check), check
    params = run(spikebus_bin, "params", "--help").stdout
    assert re.search(r"\[MODEL\]\s+Model file \(TOML\); without it, the built-in seed model", params), params
    assert re.search(r"--set <NAME=VALUE>\s+Override a parameter", params), params
    assert "recordable signals" in params, params


def test_out_dev_null_writes_no_files(spikebus_bin: Path, tmp_path: Path) -> None:
    p = run(spikebus_bin, "run", "--set", "tstop=5", "--out", "/dev/null", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "wrote no files (--out /dev/null)" in p.stdout, p.stdout
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    assert Path("/dev/null").is_char_device()


def test_out_dev_null_with_the_bus(start_node, tmp_path: Path) -> None:
    """A run watched only on the bus: the stream and the controller work, nothing is written."""
    from spikebus_client import Controller, Observer

    node = start_node(["--control", "tcp://127.0.0.1:0", "--pub", "tcp://127.0.0.1:0", "--set", "tstop=5",
                       "--set", "soma.threshold=0", "--out", "/dev/null", "--wait-subscribers", "1"])
    with Observer(node.pub) as obs, Controller(node.control) as c:
        syncs = list(c.run(every_ms=1.0, watch_values=["soma.v"]))
        msgs = obs.collect()
    assert [s.step for s in syncs] == [0, 40, 80, 120, 160, 200]
    assert msgs[-1].topic == "done" and msgs[-1].data["reason"] == "end"
    assert sum(len(m.data["step"]) for m in msgs if m.topic == "state") == 201
    assert node.wait(60) == 0
    assert "wrote no files" in node.stdout


def test_model_format_documents_several_cells(spikebus_bin: Path, tmp_path: Path) -> None:
    """docs/model-format.md says a model may hold several cells, with a two-cell example that
    `check` accepts and whose cells both spike (the second driven by the first)."""
    doc = (REPO_ROOT / "docs" / "model-format.md").read_text()
    assert "several cells" in doc
    m = re.search(r"<!-- two-cell example -->\n```toml\n(.*?)```", doc, re.S)
    assert m, "no two-cell example in docs/model-format.md"
    model = tmp_path / "two.toml"
    model.write_text(m.group(1))
    p = run(spikebus_bin, "check", str(model))
    assert p.returncode == 0 and ": ok (2 sections" in p.stdout, p
    out = tmp_path / "d"
    p = run(spikebus_bin, "run", str(model), "--out", str(out))
    assert p.returncode == 0, p.stderr
    sources = {line.split(",")[0] for line in (out / "spikes.csv").read_text().splitlines()[1:]}
    assert {"cell1", "cell2"} <= sources, sources


def test_params_lists_the_builtins_plays_and_their_signals(spikebus_bin: Path) -> None:
    models = REPO_ROOT / "tests" / "models"
    p = run(spikebus_bin, "params", str(models / "vclamp.toml"), "--set", "clamp.amp[1]=-30")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^clamp\.amp\[1\]\s+-30\s+mV\s+writable$", p.stdout, re.M), p.stdout
    assert re.search(r"^clamp\.gain\s+100000\s+1\s+writable$", p.stdout, re.M), p.stdout
    assert {"clamp.i", "clamp.e", "clamp.vo", "clamp.vi"} <= set(p.stdout.splitlines())
    p = run(spikebus_bin, "params", str(models / "intfire2.toml"))
    assert re.search(r"^c\.taus\s+5\s+ms\s+writable$", p.stdout, re.M), p.stdout
    assert {"a.i", "a.m", "c.m"} <= set(p.stdout.splitlines())
    p = run(spikebus_bin, "params", str(models / "play_discrete.toml"))
    head, _, plays = p.stdout.partition("\nplays (Vector.play")
    plays = plays.partition("\nsignals")[0]
    assert re.search(r"^gna\s+soma\.gnabar_hh\s+discrete, 7 values every 7\.5 ms$", plays, re.M), plays
    assert re.search(r"^stim_amp\s+stim\.amp\s+discrete, 6 values at their times$", plays, re.M), plays
    p = run(spikebus_bin, "check", str(models / "play_discrete.toml"))
    assert p.stdout.endswith(": ok (3 sections, 3 point processes, 1 artificial cells, 1 NetCons, 6 plays, "
                             "9 recorded signals)\n"), p.stdout
    p = run(spikebus_bin, "params", str(models / "alphasynapse.toml"))
    signals = p.stdout.partition("\nsignals (recordable")[2].splitlines()[1:]
    assert "ex.i" in signals and "ex.g" not in signals, signals
    # Every listed signal of these models is recordable: a run records them all.
    for model in ("vclamp", "intfire4", "alphasynapse", "seclamp"):
        p = run(spikebus_bin, "params", str(models / f"{model}.toml"))
        signals = p.stdout.partition("\nsignals (recordable")[2].splitlines()[1:]
        out = run(spikebus_bin, "run", str(models / f"{model}.toml"), "--set", "tstop=1", "--record",
                  ",".join(signals), "--out", "/dev/null")
        assert out.returncode == 0, out.stderr
