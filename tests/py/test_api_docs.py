"""The Python client's API reference (issue 9): generated from the docstrings by pdoc
(`scripts/api-docs` writes it to target/api-docs), built here, with every public name of
every module documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pdoc
import pdoc.doc

from helpers import EXAMPLES, REPO_ROOT

MODULES = [
    "spikebus_client",
    "spikebus_client.actions",
    "spikebus_client.aio",
    "spikebus_client.controller",
    "spikebus_client.data",
    "spikebus_client.from_neuron",
    "spikebus_client.messages",
    "spikebus_client.node",
    "spikebus_client.pytest_plugin",
    "spikebus_client.ros2_bridge",
    "spikebus_client.stream",
]


def undocumented(obj: pdoc.doc.Doc, seen: set[str], owner: pdoc.doc.Class | None = None) -> list[str]:
    """Public members (recursively through classes) without documentation: a docstring of
    their own, or, for a class's data attribute, an entry in the class docstring's
    Attributes or Args section (``name:``)."""
    out: list[str] = []
    if obj.fullname in seen:
        return out
    seen.add(obj.fullname)
    documented = bool(obj.docstring.strip())
    if not documented and owner is not None and isinstance(obj, pdoc.doc.Variable):
        documented = re.search(rf"^\s+{re.escape(obj.name)}(\s*\(.*\))?:", owner.docstring, re.M) is not None
    if not documented:
        out.append(obj.fullname)
    if isinstance(obj, pdoc.doc.Class):
        for m in obj.own_members:
            if not m.name.startswith("_"):
                out += undocumented(m, seen, obj)
    return out


def test_every_public_name_is_documented() -> None:
    missing: list[str] = []
    seen: set[str] = set()
    for name in MODULES:
        mod = pdoc.doc.Module.from_name(name)
        if not mod.docstring.strip():
            missing.append(name)
        public = getattr(mod.obj, "__all__", None)
        assert public is not None, f"{name} has no __all__"
        for member in public:
            doc = mod.get(member)
            assert doc is not None, f"{name}.{member} is in __all__ but not in the module"
            if isinstance(doc, pdoc.doc.Variable) and any(
                member in getattr(pdoc.doc.Module.from_name(m).obj, "__all__", ()) for m in MODULES if m != name
            ):
                continue  # a constant re-exported from the submodule that defines (and documents) it
            missing += undocumented(doc, seen)
    assert not missing, f"undocumented: {missing}"


def test_the_reference_builds(tmp_path: Path) -> None:
    out = tmp_path / "api"
    p = subprocess.run([str(REPO_ROOT / "scripts" / "api-docs"), str(out)], capture_output=True, text=True,
                       timeout=300, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    for name in MODULES:
        page = out / (name.replace(".", "/") + ".html")
        assert page.is_file(), page
    index = (out / "spikebus_client.html").read_text()
    for name in ("Controller", "Observer", "Node", "NodeUnreachable"):
        assert f'id="{name}"' in index, name
    ctl = (out / "spikebus_client" / "controller.html").read_text()
    assert 'id="Controller.run"' in ctl and "every_ms" in ctl
    assert str(EXAMPLES) not in index  # no absolute paths of the build machine
