"""The Python client installs with pip, as the README says (`pip install ./examples-py`), and
what is installed is a typed, importable package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT as ROOT


def test_client_installs_with_pip(tmp_path: Path) -> None:
    target = tmp_path / "site"
    # From a copy, so that the build leaves nothing in the repository.
    src = tmp_path / "src"
    shutil.copytree(ROOT / "examples-py", src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--target", str(target), str(src)],
        check=True,
        timeout=300,
    )
    pkg = target / "spikebus_client"
    assert (pkg / "py.typed").is_file(), "the package ships its type information"
    # Imported from the installed copy only, in a fresh interpreter (not from examples-py/).
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import spikebus_client as c; "
        "assert c.__file__.startswith(sys.argv[1]), c.__file__; "
        "print(c.PROTOCOL_VERSION, c.Controller.__name__, c.Observer.__name__, c.Node.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], check=True, capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert out.stdout.split() == ["2", "Controller", "Observer", "Node"]
