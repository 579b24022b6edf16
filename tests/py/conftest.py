"""Shared fixtures of the Python tests (tests/py).

The bus tests run the real spikebus binary.  Building it is not done here: the test script
runs ``cargo build --release`` before pytest.  The binary is ``$SPIKEBUS`` if set, else
``target/release/spikebus``; if it is missing, the tests that need it fail with a message
saying so (nothing is skipped).

The client library is imported from ``examples-py/`` (no installation needed; importing
helpers.py, as done here, puts it on ``sys.path``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import pytest

from helpers import REPO_ROOT, ipc_endpoint, make_node

if TYPE_CHECKING:
    from spikebus_client import Node


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the working directory of every process the tests start)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def spikebus_bin() -> Path:
    """The spikebus binary; the test fails (not skips) if it is not there."""
    env = os.environ.get("SPIKEBUS")
    path = Path(env) if env else REPO_ROOT / "target" / "release" / "spikebus"
    if not path.is_file() or not os.access(path, os.X_OK):
        origin = "$SPIKEBUS" if env else "the default location; set $SPIKEBUS to use another"
        pytest.fail(
            f"spikebus binary not found at {path} ({origin}): run `cargo build --release` "
            "before pytest; the Python bus tests need the real node",
            pytrace=False,
        )
    return path


@pytest.fixture
def start_node(spikebus_bin: Path) -> Iterator[Callable[..., Any]]:
    """Start ``spikebus run ARGS...`` as a :class:`spikebus_client.Node` (already waiting
    for its ``listening`` line); every node started is killed at the end of the test."""
    nodes: list[Node] = []

    def start(args: Sequence[str], start_timeout: float = 30.0) -> Node:
        node = make_node(spikebus_bin, args, start_timeout)
        nodes.append(node)
        node.start()
        return node

    yield start
    for node in nodes:
        node.kill()


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``endpoint(kind, name)``: a fresh endpoint to bind: ``tcp://127.0.0.1:0`` (a free
    port), or an ipc (ZeroMQ) or unix (``--control unix://``) path unique to the test (in
    ``tmp_path`` unless too long for a Unix socket, then in a short temporary directory)."""
    short_dirs: list[str] = []

    def make(kind: str, name: str = "ctl") -> str:
        if kind == "tcp":
            return "tcp://127.0.0.1:0"
        if kind in ("ipc", "unix"):
            ep, short_dir = ipc_endpoint(tmp_path, name, prefix="sb")
            if short_dir:
                short_dirs.append(short_dir)
            return ep if kind == "ipc" else "unix://" + ep[len("ipc://") :]
        raise ValueError(kind)

    yield make
    import shutil

    for d in short_dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["zmq", "unix"])
def transport(request: pytest.FixtureRequest) -> str:
    """The control channel's transport: every protocol test runs on both, ZeroMQ (``zmq``)
    and the Unix-domain socket with length-prefixed frames (``unix``)."""
    return str(request.param)


@pytest.fixture
def control(transport: str, endpoint: Callable[..., str]) -> Callable[..., str]:
    """``control(zmq_kind="ipc", name="ctl")``: the endpoint to bind ``--control`` on for this
    test's transport: a ``zmq_kind`` endpoint (tcp or ipc) on ZeroMQ, a ``unix://`` path on
    the Unix transport."""

    def make(zmq_kind: str = "ipc", name: str = "ctl") -> str:
        return endpoint("unix" if transport == "unix" else zmq_kind, name)

    return make
