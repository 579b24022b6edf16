"""The Python client on the unix:// transport (``spikebus_client.unix``): what the protocol
tests (run on both transports) do not reach: the framing's bytes, endpoints it refuses, its
timeouts and resends against a peer that never answers, a node that is not listening yet or
at all, and a node that closes the connection; the same for the asyncio controller.  Real sockets, real nodes; nothing sleeps to
wait for a socket.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from helpers import pack
from spikebus_client import Controller, Node, SpikebusTimeout
from spikebus_client.aio import AsyncController
from spikebus_client.unix import endpoint_path, frame


def test_frames_are_a_big_endian_length_then_the_bytes() -> None:
    assert frame(b"") == b"\x00\x00\x00\x00"
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(bytes(70_000))[:4] == struct.pack(">I", 70_000)


def test_endpoints() -> None:
    assert endpoint_path("unix:///tmp/sb.ctl") == "/tmp/sb.ctl"
    assert endpoint_path("unix://rel/sb.ctl") == "rel/sb.ctl"
    assert endpoint_path("ipc:///tmp/sb.ctl") is None and endpoint_path("tcp://127.0.0.1:5") is None
    for bad in ("unix://", "unix://@abstract"):
        with pytest.raises(ValueError):
            Controller(bad)


class Silent:
    """A Unix listener that accepts connections and reads what they send, never answering."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen()
        # What each connection sent, once it closed, in order of connection.
        self.received: queue.Queue[bytes] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(30)
            data = b""
            while True:
                try:
                    got = conn.recv(65536)
                except OSError:
                    break
                if not got:
                    break
                data += got
            self.received.put(data)
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_no_reply_resends_the_same_bytes_on_fresh_connections(endpoint: Callable[..., str]) -> None:
    ep = endpoint("unix")
    silent = Silent(ep[len("unix://") :])
    try:
        c = Controller(ep, timeout_ms=200, retries=2, client="patient", first_id=41, connect_timeout_ms=None)
        started = time.monotonic()
        with pytest.raises(SpikebusTimeout) as e:
            c.hello()
        took = time.monotonic() - started
        c.close()
    finally:
        silent.close()
    assert "3 attempt(s)" in str(e.value) and "no reply within 200 ms" in str(e.value), e.value
    assert c.resends == 2
    assert 0.6 <= took < 5.0, took
    # Each connection carried the one request, framed, the same bytes each time.
    want = frame(pack({"op": "hello", "protocol": 2, "id": 41, "client": "patient"}))
    assert [silent.received.get(timeout=10) for _ in range(3)] == [want] * 3


def test_nobody_listening_is_a_timeout_naming_the_connect_error(endpoint: Callable[..., str]) -> None:
    ep = endpoint("unix")
    c = Controller(ep, timeout_ms=150, retries=1, connect_timeout_ms=None)
    started = time.monotonic()
    with pytest.raises(SpikebusTimeout) as e:
        c.hello()
    # Each attempt waited for a node to come, until its timeout.
    assert time.monotonic() - started >= 0.3
    assert "cannot connect" in str(e.value) and "No such file" in str(e.value), e.value


def test_a_node_that_starts_late_is_waited_for(spikebus_bin: Path, endpoint: Callable[..., str], tmp_path: Path) -> None:
    ep = endpoint("unix")
    got: list[object] = []
    c = Controller(ep, timeout_ms=30_000, retries=0, connect_timeout_ms=None)
    t = threading.Thread(target=lambda: got.append(c.hello()))
    t.start()  # connecting, before the node exists
    with Node(["--control", ep, "--set", "tstop=1", "--out", str(tmp_path / "d")], binary=spikebus_bin) as node:
        t.join(30)
        assert got and got[0].step == 0, got  # type: ignore[attr-defined]
        assert c.resends == 0
        c.cont([{"op": "stop"}])
        assert node.wait(30) == 0, node.stderr


def test_a_closed_connection_ends_the_attempt_at_once(start_node, endpoint: Callable[..., str], tmp_path: Path) -> None:
    """A request over the node's socket limit (twice --max-message, at least 64 KiB more):
    the node closes the connection unread; the client does not wait out its timeout."""
    node = start_node(["--control", endpoint("unix"), "--max-message", "1000", "--out", str(tmp_path / "d")])
    c = Controller(node.control, timeout_ms=20_000, retries=1)
    started = time.monotonic()
    with pytest.raises(SpikebusTimeout) as e:
        c.send_bytes(bytes(200_000))
    assert time.monotonic() - started < 10
    assert "closed the connection" in str(e.value) or "connection failed" in str(e.value), e.value
    assert c.resends == 1
    # The node serves on.
    assert c.hello().step == 0
    c.close()


def test_async_no_reply_resends_the_same_bytes_on_fresh_connections(endpoint: Callable[..., str]) -> None:
    ep = endpoint("unix")
    silent = Silent(ep[len("unix://") :])

    async def main() -> AsyncController:
        c = AsyncController(ep, timeout_ms=200, retries=2, client="patient", first_id=41, connect_timeout_ms=None)
        try:
            await c.hello()
        finally:
            c.close()
        return c

    try:
        started = time.monotonic()
        with pytest.raises(SpikebusTimeout) as e:
            asyncio.run(main())
        took = time.monotonic() - started
    finally:
        silent.close()
    assert "3 attempt(s)" in str(e.value) and "no reply within 200 ms" in str(e.value), e.value
    assert 0.6 <= took < 5.0, took
    want = frame(pack({"op": "hello", "protocol": 2, "id": 41, "client": "patient"}))
    assert [silent.received.get(timeout=10) for _ in range(3)] == [want] * 3


def test_async_a_closed_connection_ends_the_attempt_at_once(start_node, endpoint: Callable[..., str], tmp_path: Path) -> None:
    node = start_node(["--control", endpoint("unix"), "--max-message", "1000", "--out", str(tmp_path / "d")])

    async def main() -> None:
        async with AsyncController(node.control, timeout_ms=20_000, retries=1) as c:
            started = time.monotonic()
            with pytest.raises(SpikebusTimeout) as e:
                await c.send_bytes(bytes(200_000))
            assert time.monotonic() - started < 10
            assert "closed the connection" in str(e.value) or "connection failed" in str(e.value), e.value
            assert c.resends == 1
            assert (await c.hello()).step == 0  # the node serves on

    asyncio.run(main())
