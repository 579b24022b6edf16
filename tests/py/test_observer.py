"""observer.py (issue 9 item 3): --save FILE.png draws the run after done; --plot where no
live window can be shown fails with a message (exit 2), never silently; a --pub where no node
answers fails within its 2 s connect timeout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import EXAMPLES, REPO_ROOT, load_golden


def observer(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(EXAMPLES / "observer.py"), *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def headless_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    return env


def test_save_png_after_the_run(start_node, tmp_path: Path) -> None:
    node = start_node(["--control", "tcp://127.0.0.1:0", "--pub", "tcp://127.0.0.1:0", "--set", "soma.threshold=0",
                       "--set", "tstop=100", "--out", tmp_path / "d", "--wait-subscribers", "1"])
    png = tmp_path / "run.png"
    obs = observer("--pub", node.pub, "--save", str(png), "--every", "100000", env=headless_env())
    from spikebus_client import Controller

    with Controller(node.control) as c:
        list(c.run())
    out, err = obs.communicate(timeout=120)
    assert obs.returncode == 0, err
    g = load_golden("seed")
    n_spikes = sum(1 for ts in g.spikes.values() for t in ts if t <= 100)  # NEURON's, up to tstop
    assert f"observer: saved {png} (4001 samples of soma.v, {n_spikes} spikes)" in out, out
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (990, 550), (width, height)
    assert node.wait(60) == 0


def test_plot_without_a_display_is_an_error(tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = observer("--pub", "tcp://127.0.0.1:9", "--plot", env=headless_env())
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2, (out, err)
    assert "observer: --plot: no live plot is possible here: matplotlib's backend is agg (DISPLAY is not set)" in err, err
    assert "--save run.png" in err, err
    assert time.monotonic() - t0 < 30


def test_wrong_pub_endpoint_fails_in_2_s(tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = observer("--pub", f"ipc://{tmp_path}/nobody.sock")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2, (out, err)
    assert f"no spikebus node answered at ipc://{tmp_path}/nobody.sock within 2 s" in err, err
    assert "--pub" in err
    assert time.monotonic() - t0 < 10


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """An X server on a free display; -displayfd writes its number when it is ready (a
    handshake, no sleeping)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb; scripts/test installs it as root)")
    r, w = os.pipe()
    p = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                         pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    assert number.isdigit(), f"Xvfb gave no display number ({number!r})"
    return p, f":{number}"


def stop_xvfb(p: subprocess.Popen[bytes]) -> None:
    """The X server is the test's scaffolding, not what it checks: SIGTERM, and SIGKILL if it
    has not gone in 10 s (CI once saw an Xvfb still running 30 s after SIGTERM, with the test's
    every assertion passed)."""
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(30)


def test_live_plot_where_a_display_exists(start_node, tmp_path: Path) -> None:
    """Under an X server: --plot draws a live window (an interactive backend), which stays
    up after done until closed; a screenshot of the screen shows the trace."""
    from PIL import ImageGrab

    xvfb, display = start_xvfb()
    obs = None
    try:
        node = start_node(["--control", "tcp://127.0.0.1:0", "--pub", "tcp://127.0.0.1:0", "--set", "soma.threshold=0",
                           "--set", "tstop=100", "--out", tmp_path / "d", "--wait-subscribers", "1"])
        env = {**headless_env(), "DISPLAY": display}
        obs = observer("--pub", node.pub, "--plot", "--every", "100000", "--quiet-spikes", env=env)
        assert obs.stdout is not None
        first = obs.stdout.readline()
        assert first.startswith("observer: live plot (") and "agg" not in first.lower().replace("tkagg", "tk"), first
        from spikebus_client import Controller

        with Controller(node.control) as c:
            list(c.run())
        lines = []
        for line in obs.stdout:
            lines.append(line)
            if line.startswith("observer: close the plot window to exit"):
                break
        assert any(line.startswith("observer: done (end)") for line in lines), lines
        shot = ImageGrab.grab(xdisplay=display)
        shot.save(tmp_path / "screen.png")
        # The window shows the trace: matplotlib's tab:blue (31, 119, 180) line, and the
        # black spike ticks on the figure's white.
        rgb = shot.convert("RGB")
        pixels = list(getattr(rgb, "get_flattened_data", rgb.getdata)())
        blue = sum(1 for r, g, b in pixels if abs(r - 31) < 40 and abs(g - 119) < 40 and abs(b - 180) < 40)
        white = sum(1 for p in pixels if p == (255, 255, 255))
        assert blue > 1000 and white > 100_000, f"no trace on screen ({blue} blue, {white} white): {tmp_path}/screen.png"
        assert obs.poll() is None, "the window should stay up after done until it is closed"
    finally:
        if obs is not None and obs.poll() is None:
            obs.terminate()
            obs.communicate(timeout=30)
        stop_xvfb(xvfb)
