"""asyncio versions of :class:`~spikebus_client.Controller` and
:class:`~spikebus_client.Observer` (pyzmq's ``zmq.asyncio``), for programs that steer a node
while doing other I/O in one event loop (an agent's sensors, a web socket, a ROS executor,
several nodes at once)::

    import asyncio
    from spikebus_client.aio import AsyncController, AsyncObserver
    from spikebus_client import set_

    async def main(control, pub):
        async def steer():
            async with AsyncController(control) as c:
                async for sync in c.run(every_ms=1.0, watch_values=["soma.v"]):
                    if sync.values["soma.v"] > -40:
                        c.act(set_("nc.weight", 0.0))

        async def watch():
            async with AsyncObserver(pub) as obs:
                async for m in obs.messages():
                    ...

        await asyncio.gather(steer(), watch())

The semantics are the synchronous classes' (same requests, ids, client name, resends, the
2 s handshake, the loop helper's points, both control transports: a ``unix://`` endpoint is
served over a Unix-domain socket as by :class:`~spikebus_client.Controller`); only waiting
is asynchronous.  One controller
serves one request at a time (a REQ socket): don't share it between tasks that request
concurrently.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, AsyncIterator, Iterable, Mapping, Sequence

import zmq
import zmq.asyncio

from .actions import Action, stop
from .controller import Controller, _summary, check_options, check_period, pack, run_setup
from .messages import (
    PROTOCOL_VERSION,
    Done,
    Hello,
    NodeUnreachable,
    ProtocolViolation,
    SpikebusTimeout,
    Sync,
    Values,
    parse_reply,
)
from .stream import SeqCounter, StreamMessage, decode_frames
from .unix import AsyncUnixChannel, endpoint_path

__all__ = ["AsyncController", "AsyncObserver"]

log = logging.getLogger("spikebus_client.aio")


class AsyncController:
    """A controller on a node's ``--control`` endpoint, with ``async`` requests.

    Arguments, attributes and behaviour as :class:`~spikebus_client.Controller` (resends
    after ``timeout_ms``, up to ``retries``; the first exchange bounded by
    ``connect_timeout_ms`` and raising :class:`~spikebus_client.NodeUnreachable`).  Use with
    ``async with``, or call :meth:`close`.

    Attributes:
        endpoint: the node's control endpoint.
        timeout_ms: the wait for each reply before resending.
        retries: how many times a request is resent.
        connect_timeout_ms: the wait for the first reply (``None``: no handshake).
        client: this controller's name.
    """

    def __init__(
        self,
        endpoint: str,
        timeout_ms: int = 10_000,
        retries: int = 3,
        context: zmq.asyncio.Context | None = None,
        first_id: int | None = None,
        client: str | None = None,
        connect_timeout_ms: int | None = 2_000,
    ) -> None:
        check_options(timeout_ms, retries, connect_timeout_ms, client)
        self.endpoint = endpoint
        self.timeout_ms = int(timeout_ms)
        self.retries = int(retries)
        self.connect_timeout_ms = None if connect_timeout_ms is None else int(connect_timeout_ms)
        self.client = client if client is not None else f"py-{secrets.token_hex(6)}"
        self._ctx = context if context is not None else zmq.asyncio.Context.instance()
        self._next_id = secrets.randbelow(1 << 30) if first_id is None else int(first_id)
        self._sock: zmq.asyncio.Socket | AsyncUnixChannel | None = None
        # The socket path of a unix:// endpoint (None: a ZeroMQ endpoint).
        self._unix_path = endpoint_path(endpoint)
        self.resends = 0
        """How many resends were needed so far."""
        self.connected = False
        """Whether the node has answered (the handshake is done)."""
        self.last: Sync | Done | None = None
        """The last sync report or done received."""
        self.done: Done | None = None
        """The ``done`` that ended the run, once received."""
        self._queued: list[Action] = []

    # -- sockets -----------------------------------------------------------------------

    def _socket(self) -> zmq.asyncio.Socket | AsyncUnixChannel:
        if self._sock is None:
            if self._unix_path is not None:
                self._sock = AsyncUnixChannel(self._unix_path)
            else:
                s = self._ctx.socket(zmq.REQ)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(self.endpoint)
                self._sock = s
        return self._sock

    def _drop_socket(self) -> None:
        if isinstance(self._sock, AsyncUnixChannel):
            self._sock.close()
        elif self._sock is not None:
            self._sock.close(linger=0)
        self._sock = None

    def close(self) -> None:
        """Close the socket (the node keeps running, paused where it is)."""
        self._drop_socket()

    async def __aenter__(self) -> "AsyncController":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- raw requests ------------------------------------------------------------------

    def new_id(self) -> int:
        """Take the next request id."""
        i = self._next_id
        self._next_id = (self._next_id + 1) % (1 << 62)
        return i

    async def send_bytes(self, data: bytes, timeout_ms: int | None = None, retries: int | None = None) -> bytes:
        """Send one request as raw bytes and return the raw reply, resending the same bytes
        on a fresh socket after each timeout."""
        timeout = self.timeout_ms if timeout_ms is None else int(timeout_ms)
        tries = (self.retries if retries is None else retries) + 1
        why = ""
        stale: AsyncUnixChannel | None = None
        for attempt in range(tries):
            sock = self._socket()
            if attempt:
                self.resends += 1
            if isinstance(sock, AsyncUnixChannel):
                # As Controller.send_bytes: the previous connection is closed once this one is in.
                got = await sock.exchange(data, timeout, replacing=stale)
                if got is not None:
                    return got
                why = f" ({sock.failure})"
                stale, self._sock = sock, None
                continue
            await sock.send(data)
            if await sock.poll(timeout, zmq.POLLIN):
                reply: bytes = await sock.recv()
                return reply
            self._drop_socket()
        if stale is not None:
            stale.close()
        raise SpikebusTimeout(f"no reply from {self.endpoint} within {timeout} ms, {tries} attempt(s){why}")

    async def request_map(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Send a request map (``id`` and ``client`` added if absent) and return the decoded
        reply map, errors included."""
        m = dict(msg)
        if not self.connected and self.connect_timeout_ms is not None and m.get("op") != "hello":
            await self.request_map({"op": "hello", "protocol": PROTOCOL_VERSION})
        if "id" not in m:
            m["id"] = self.new_id()
        m.setdefault("client", self.client)
        data = pack(m)
        t0 = time.perf_counter()
        if not self.connected and self.connect_timeout_ms is not None:
            try:
                raw = await self.send_bytes(data, timeout_ms=self.connect_timeout_ms, retries=0)
            except SpikebusTimeout:
                raise NodeUnreachable(self.endpoint, self.connect_timeout_ms / 1000) from None
            log.info("%s: connected (client %r)", self.endpoint, self.client)
        else:
            resends = self.resends
            raw = await self.send_bytes(data)
            if self.resends != resends:
                log.warning("%s: request %s id %s resent %d time(s) before a reply came", self.endpoint,
                            m.get("op"), m["id"], self.resends - resends)
        self.connected = True
        reply = Controller.decode(raw)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s id %s -> %s in %.3f ms", self.endpoint, m.get("op"), m["id"], _summary(reply),
                      1e3 * (time.perf_counter() - t0))
        if reply.get("id") not in (m["id"], None):
            raise ProtocolViolation(f"reply to request id {m['id']} carries id {reply.get('id')!r}: {reply!r}")
        return reply

    async def request(self, msg: Mapping[str, Any]) -> Hello | Values | Sync | Done:
        """Send a request and return its typed reply; ``error`` raises
        :class:`~spikebus_client.SpikebusError`."""
        return parse_reply(await self.request_map(msg))

    # -- the protocol ------------------------------------------------------------------

    async def hello(self, protocol: int = PROTOCOL_VERSION, takeover: bool = False) -> Hello:
        """As :meth:`Controller.hello <spikebus_client.Controller.hello>`."""
        msg: dict[str, Any] = {"op": "hello", "protocol": protocol}
        if takeover:
            msg["takeover"] = True
        r = await self.request(msg)
        if not isinstance(r, Hello):
            raise ProtocolViolation(f"hello answered with {r!r}")
        self.last = r.pending
        return r

    async def get(self, names: str | Iterable[str]) -> Values:
        """As :meth:`Controller.get <spikebus_client.Controller.get>`."""
        names = [names] if isinstance(names, str) else list(names)
        r = await self.request({"op": "get", "names": names})
        if not isinstance(r, Values):
            raise ProtocolViolation(f"get answered with {r!r}")
        return r

    async def value(self, name: str) -> float:
        """Read one parameter or signal now."""
        return (await self.get([name])).values[name]

    async def cont(self, actions: Sequence[Action] | Iterable[Action] = ()) -> Sync | Done:
        """As :meth:`Controller.cont <spikebus_client.Controller.cont>` (queued actions
        first)."""
        queued, self._queued = self._queued, []
        r = await self.request({"op": "continue", "actions": [*queued, *actions]})
        if not isinstance(r, (Sync, Done)):
            raise ProtocolViolation(f"continue answered with {r!r}")
        self.last = r
        if isinstance(r, Done):
            self.done = r
            self._drop_socket()
        return r

    def act(self, *actions: Action) -> None:
        """Queue actions for the next ``continue``."""
        self._queued.extend(actions)

    async def stop(self) -> Done:
        """End the run now (the ``stop`` action)."""
        r = await self.cont([stop()])
        if not isinstance(r, Done):
            raise ProtocolViolation(f"stop answered with {r!r}")
        return r

    async def run(
        self,
        every_ms: float | None = None,
        *,
        every_steps: int | None = None,
        kind: str = "every",
        watch_values: Iterable[str] | None = None,
        spikes: bool = True,
        at: Iterable[float] = (),
        on_spike: Iterable[str] = (),
        actions: Sequence[Action] = (),
        takeover: bool = False,
    ) -> AsyncIterator[Sync]:
        """The loop helper, as :meth:`Controller.run <spikebus_client.Controller.run>`
        (the same points, arguments and ending): ``async for sync in c.run(...)``."""
        check_period(every_ms, every_steps, kind)
        h = await self.hello(takeover=takeover)
        setup = run_setup(h, every_ms, every_steps, kind, watch_values, spikes, at, on_spike, actions)
        r: Sync | Done
        if h.pending.is_start:
            r = await self.cont(setup)
        else:
            self._queued[:0] = setup
            r = h.pending
        while isinstance(r, Sync):
            yield r
            r = await self.cont()


class AsyncObserver(SeqCounter):
    """A subscriber to a node's ``--pub`` endpoint, with ``async`` receives (arguments as
    :class:`~spikebus_client.Observer`).  Use with ``async with``, or call :meth:`close`.

    Attributes:
        endpoint: the node's pub endpoint.
        topics: the topic prefixes subscribed to.
    """

    def __init__(
        self,
        endpoint: str,
        topics: Iterable[str | bytes] = (b"",),
        rcvhwm: int = 1_000_000,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._ctx = context if context is not None else zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        self.topics = [t.encode("ascii") if isinstance(t, str) else bytes(t) for t in topics]
        for t in self.topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, t)
        self._sock.connect(endpoint)
        SeqCounter.__init__(self)

    def close(self) -> None:
        """Close the socket."""
        self._sock.close(linger=0)

    async def __aenter__(self) -> "AsyncObserver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def recv(self, timeout_ms: int | None = None) -> StreamMessage | None:
        """Receive one message; ``None`` if ``timeout_ms`` passed first."""
        if timeout_ms is not None and not await self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return self._count(decode_frames(await self._sock.recv_multipart()))

    async def messages(self, until_done: bool = True, timeout_ms: int | None = None) -> AsyncIterator[StreamMessage]:
        """Yield messages in arrival order, up to and including ``done`` (``until_done``);
        a wait longer than ``timeout_ms`` raises :class:`~spikebus_client.SpikebusTimeout`."""
        while True:
            m = await self.recv(timeout_ms)
            if m is None:
                raise SpikebusTimeout(f"no stream message from {self.endpoint} within {timeout_ms} ms")
            yield m
            if until_done and m.topic == "done":
                return

    def __aiter__(self) -> AsyncIterator[StreamMessage]:
        return self.messages(until_done=True)
