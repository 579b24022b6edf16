"""Python >= 3.10 (issue 9 item 2: ROS 2 Humble and Ubuntu 22.04 have 3.10): the client and
the examples use nothing newer (vermin, a static check), and the client's own tests pass
when run by a real Python 3.10 against the real node.  test_wheel.py installs the wheel into
a 3.10 venv too."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXAMPLES, REPO_ROOT


def python310() -> str | None:
    """A Python 3.10 interpreter that runs: one pyenv installed, or python3.10 on PATH (a
    pyenv shim for a version not selected does not run: each candidate is tried)."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/3.10*/bin/python3.10"), reverse=True)
    which = shutil.which("python3.10")
    if which:
        candidates.append(which)
    for py in candidates:
        p = subprocess.run([py, "-c", "import sys, venv; print(sys.version_info[:2])"], capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip() == "(3, 10)":
            return py
    return None


def require_python310() -> str:
    py = python310()
    if py is None:
        pytest.skip("no Python 3.10 interpreter here (python3.10 on PATH or a pyenv 3.10); the vermin check still runs")
    return py


def vermin(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "vermin"), "-t=3.10-", "--violations", "--no-tips",
                           "--eval-annotations", *paths], capture_output=True, text=True, timeout=300)


def test_nothing_newer_than_310_statically(tmp_path: Path) -> None:
    tests = REPO_ROOT / "tests" / "py"
    # The client, the examples, and the tests that run on 3.10 below (the rest of the test
    # suite runs in the tests' own 3.11 venv).
    p = vermin(str(EXAMPLES), *(str(tests / f) for f in ("conftest.py", "helpers.py", "test_client.py", "test_data.py")))
    assert p.returncode == 0, p.stdout + p.stderr
    # The check can fail: a 3.11 module is caught.
    (tmp_path / "new.py").write_text("import tomllib\n")
    bad = vermin(str(tmp_path / "new.py"))
    assert bad.returncode != 0 and "tomllib" in bad.stdout, bad.stdout


def test_pyproject_files_say_310() -> None:
    for p in (REPO_ROOT / "pyproject.toml", EXAMPLES / "pyproject.toml"):
        assert 'requires-python = ">=3.10"' in p.read_text(), p


def test_client_tests_pass_on_python_310(spikebus_bin: Path, tmp_path: Path) -> None:
    py = require_python310()
    venv = tmp_path / "venv310"
    subprocess.run([py, "-m", "venv", str(venv)], check=True, timeout=300)
    vpy = venv / "bin" / "python"
    v = subprocess.run([str(vpy), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert v.stdout.strip() == "(3, 10)", v.stdout
    subprocess.run([str(vpy), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(EXAMPLES / "requirements.txt"), "pytest>=7.4", "numpy>=1.22", "pandas>=1.5"],
                   check=True, timeout=900)
    env = {**os.environ, "SPIKEBUS": str(spikebus_bin)}
    env.pop("PYTHONPATH", None)
    p = subprocess.run(
        [str(vpy), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/py/test_client.py", "tests/py/test_data.py"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-2000:]
    assert " passed" in p.stdout and "failed" not in p.stdout, p.stdout[-2000:]
