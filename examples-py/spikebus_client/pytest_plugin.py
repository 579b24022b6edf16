"""A pytest plugin for your own integration tests against a real spikebus node.

Installed with the ``spikebus`` wheel (or ``spikebus-client``), it is active in every pytest
run (entry point ``pytest11``); from a source checkout, enable it with
``-p spikebus_client.pytest_plugin`` or ``pytest_plugins = ["spikebus_client.pytest_plugin"]``
in a ``conftest.py``.

Fixtures:

- ``spikebus_node``: a started :class:`~spikebus_client.Node` running the seed model (or the
  ``model`` of the marker below) with a control and a pub endpoint on free loopback ports,
  writing to ``tmp_path / "spikebus-out"`` (``node.out_dir``).  It is stopped gracefully
  after the test (:meth:`~spikebus_client.Node.stop`).
- ``spikebus_node_factory``: ``spikebus_node_factory(model=None, set=None, args=(),
  control=True, pub=True, out=None)`` starts more nodes, each stopped after the test.

Configure ``spikebus_node`` per test with the marker::

    import pytest
    from spikebus_client import Controller

    @pytest.mark.spikebus_node(set={"soma.threshold": 0, "tstop": 100})
    def test_my_controller(spikebus_node):
        with Controller(spikebus_node.control) as c:
            for sync in c.run(every_ms=1.0, watch_values=["soma.v"]):
                ...
        assert spikebus_node.wait(30) == 0
        assert (spikebus_node.out_dir / "traces.csv").is_file()

The binary is :func:`~spikebus_client.find_binary`'s, or ``--spikebus-binary PATH``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pytest

from .node import Node, find_binary

__all__ = ["spikebus_node", "spikebus_node_factory", "pytest_addoption", "pytest_configure"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--spikebus-binary PATH``: the node binary of the fixtures."""
    parser.getgroup("spikebus").addoption(
        "--spikebus-binary",
        metavar="PATH",
        default=None,
        help="the spikebus binary for the spikebus_node fixtures (default: spikebus_client.find_binary())",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Registers the ``spikebus_node`` marker."""
    config.addinivalue_line(
        "markers",
        "spikebus_node(model=None, set=None, args=(), control=True, pub=True): "
        "how the spikebus_node fixture starts its node",
    )


def _node_args(
    model: str | Path | None,
    set: Mapping[str, float] | None,
    args: Sequence[str],
    control: bool,
    pub: bool,
    out: Path,
) -> list[str]:
    argv: list[str] = [] if model is None else [str(model)]
    for name, value in (set or {}).items():
        argv += ["--set", f"{name}={value!r}"]
    if control:
        argv += ["--control", "tcp://127.0.0.1:0"]
    if pub:
        argv += ["--pub", "tcp://127.0.0.1:0"]
    return [*argv, "--out", str(out), *map(str, args)]


@pytest.fixture
def spikebus_node_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start spikebus nodes: ``spikebus_node_factory(model=None, set=None, args=(),
    control=True, pub=True, out=None)`` -> a started :class:`~spikebus_client.Node`
    (``set``: parameters by NEURON's name; ``args``: more ``spikebus run`` options;
    ``out``: the output directory, default a fresh one in ``tmp_path``).  Every node is
    stopped after the test."""
    binary = request.config.getoption("--spikebus-binary") or find_binary()
    nodes: list[Node] = []

    def start(
        model: str | Path | None = None,
        set: Mapping[str, float] | None = None,
        args: Sequence[str] = (),
        control: bool = True,
        pub: bool = True,
        out: str | Path | None = None,
    ) -> Node:
        out_dir = Path(out) if out is not None else tmp_path / ("spikebus-out" if not nodes else f"spikebus-out-{len(nodes)}")
        node = Node(_node_args(model, set, args, control, pub, out_dir), binary=binary)
        nodes.append(node)
        node.start()
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def spikebus_node(request: pytest.FixtureRequest, spikebus_node_factory: Callable[..., Node]) -> Node:
    """A started node (see the module's documentation; configure with
    ``@pytest.mark.spikebus_node(...)``)."""
    marker = request.node.get_closest_marker("spikebus_node")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    return spikebus_node_factory(**kwargs)
