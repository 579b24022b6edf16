"""The controller side of the spikebus control channel: a REQ socket that steers a node in
lockstep (``hello``, ``get``, ``continue``), with a client name, request ids and safe retries."""

from __future__ import annotations

import secrets
from typing import Any, Iterable, Mapping, Sequence

import msgpack
import zmq

from .actions import Action
from .unix import UnixChannel, endpoint_path
from .messages import (
    PROTOCOL_VERSION,
    Done,
    Hello,
    ProtocolViolation,
    SpikebusTimeout,
    Sync,
    Values,
    parse_reply,
)

__all__ = ["Controller", "pack", "unpack"]


def pack(msg: Mapping[str, Any]) -> bytes:
    """Encode one message as the node expects it: a MessagePack map with string keys
    (floats as 64-bit doubles)."""
    data: bytes = msgpack.packb(dict(msg), use_bin_type=True, use_single_float=False)
    return data


def unpack(data: bytes) -> Any:
    """Decode one MessagePack message (strings as ``str``)."""
    return msgpack.unpackb(data, raw=False)


class Controller:
    """A controller connected to a node's ``--control`` endpoint.

    The node is always paused at a sync point when it answers.  Reads (``hello``, ``get``)
    never advance it; ``cont`` applies actions and runs to the next sync point.  The first
    controller to ``cont`` owns the run; any other gets ``not_owner`` until it takes the run
    over (``hello(takeover=True)``, which is how a restarted controller resumes).

    Every request carries this controller's ``client`` name and an id.  If no reply arrives
    within ``timeout_ms``, the request is sent again -- the same bytes -- on a fresh socket,
    up to ``retries`` times; the node answers such a resend with the reply it already sent
    and applies nothing twice (it keeps the last replies of each client).  After the last
    retry :class:`SpikebusTimeout` is raised.

    Ids start at a random value, and the default name is random, so that a restarted
    controller never sends the same (name, id, bytes) as its predecessor.

    Args:
        endpoint: the node's control endpoint, e.g. ``tcp://127.0.0.1:40123``,
            ``ipc:///tmp/spikebus.sock`` (both ZeroMQ) or ``unix:///tmp/spikebus.ctl`` (a
            node started with ``--control unix://...``: the same protocol over a plain
            Unix-domain socket, the fastest round trip on one machine; see
            :mod:`spikebus_client.unix`).
        timeout_ms: how long to wait for each reply before resending.  A ``continue`` runs
            the simulation to the next sync point, so this must exceed the longest stretch
            between two sync points.
        retries: how many times a request is resent after a timeout.
        context: a ZeroMQ context (default: the process-wide one).
        first_id: the first request id (default: random).
        client: this controller's name (1 to 64 characters; default: ``py-`` and random hex).

    Use as a context manager, or call :meth:`close`.  After ``done`` the socket is closed
    (the node exits as soon as no controller is connected).
    """

    def __init__(
        self,
        endpoint: str,
        timeout_ms: int = 10_000,
        retries: int = 3,
        context: "zmq.Context[Any] | None" = None,
        first_id: int | None = None,
        client: str | None = None,
    ) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be > 0")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if client is not None and not (1 <= len(client.encode()) <= 64):
            raise ValueError("client must be 1 to 64 bytes")
        self.endpoint = endpoint
        self.timeout_ms = int(timeout_ms)
        self.retries = int(retries)
        self.client = client if client is not None else f"py-{secrets.token_hex(6)}"
        self._ctx = context if context is not None else zmq.Context.instance()
        self._next_id = secrets.randbelow(1 << 30) if first_id is None else int(first_id)
        self._sock: "zmq.Socket[bytes] | UnixChannel | None" = None
        # The socket path of a unix:// endpoint (None: a ZeroMQ endpoint).
        self._unix_path = endpoint_path(endpoint)
        #: How many resends were needed so far (for logs and tests).
        self.resends = 0
        #: The last sync report or done received from ``cont`` (or ``hello.pending``).
        self.last: Sync | Done | None = None

    # -- sockets -----------------------------------------------------------------------

    def _socket(self) -> "zmq.Socket[bytes] | UnixChannel":
        if self._sock is None:
            if self._unix_path is not None:
                self._sock = UnixChannel(self._unix_path)
            else:
                s = self._ctx.socket(zmq.REQ)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(self.endpoint)
                self._sock = s
        return self._sock

    def _drop_socket(self) -> None:
        if isinstance(self._sock, UnixChannel):
            self._sock.close()
        elif self._sock is not None:
            self._sock.close(linger=0)
        self._sock = None

    def close(self) -> None:
        """Close the socket (the node keeps running, paused where it is)."""
        self._drop_socket()

    def __enter__(self) -> "Controller":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw requests ------------------------------------------------------------------

    def new_id(self) -> int:
        """Take the next request id."""
        i = self._next_id
        self._next_id = (self._next_id + 1) % (1 << 62)
        return i

    def send_bytes(self, data: bytes, timeout_ms: int | None = None) -> bytes:
        """Send one request as raw bytes and return the raw reply, resending the same bytes
        on a fresh socket after each timeout (see the class docstring)."""
        timeout = self.timeout_ms if timeout_ms is None else int(timeout_ms)
        why = ""
        stale: UnixChannel | None = None
        for attempt in range(self.retries + 1):
            sock = self._socket()
            if attempt:
                self.resends += 1
            if isinstance(sock, UnixChannel):
                # A broken connection ends the attempt at once (the node closed it, or has
                # gone); a node not listening is waited for until the timeout.  The previous
                # attempt's connection is closed only once this one is in: a node lingering
                # after `done` exits when no controller is connected.
                reply = sock.exchange(data, timeout, replacing=stale)
                stale = None
                if reply is not None:
                    return reply
                why = f" ({sock.failure})"
                stale, self._sock = sock, None
                continue
            else:
                sock.send(data)
                if sock.poll(timeout, zmq.POLLIN):
                    return sock.recv()
            # REQ is now stuck waiting for this reply: throw the socket away.
            self._drop_socket()
        if stale is not None:
            stale.close()
        raise SpikebusTimeout(
            f"no reply from {self.endpoint} within {timeout} ms, {self.retries + 1} attempt(s){why}"
        )

    def request_map(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Send a request map (``id`` and ``client`` are added if absent) and return the
        decoded reply map as it came, errors included (nothing is raised for an ``error``
        reply)."""
        m = dict(msg)
        if "id" not in m:
            m["id"] = self.new_id()
        m.setdefault("client", self.client)
        reply = self.decode(self.send_bytes(pack(m)))
        if reply.get("id") not in (m["id"], None):
            raise ProtocolViolation(f"reply to request id {m['id']} carries id {reply.get('id')!r}: {reply!r}")
        return reply

    @staticmethod
    def decode(data: bytes) -> dict[str, Any]:
        """Decode a reply; raise :class:`ProtocolViolation` if it is not a MessagePack map."""
        try:
            m = unpack(data)
        except Exception as e:  # msgpack raises several exception types
            raise ProtocolViolation(f"reply is not MessagePack: {data[:64]!r}") from e
        if not isinstance(m, dict):
            raise ProtocolViolation(f"reply is not a map: {m!r}")
        return m

    def request(self, msg: Mapping[str, Any]) -> Hello | Values | Sync | Done:
        """Send a request and return its typed reply; an ``error`` reply raises
        :class:`~spikebus_client.SpikebusError`."""
        return parse_reply(self.request_map(msg))

    # -- the protocol ------------------------------------------------------------------

    def hello(self, protocol: int = PROTOCOL_VERSION, takeover: bool = False) -> Hello:
        """Who is the node, and where is the run: parameters, signals, sources, targets,
        the current schedule and watch, the owner, and ``pending`` (the sync point it is
        paused at).  With ``takeover``, this controller becomes the run's owner."""
        msg: dict[str, Any] = {"op": "hello", "protocol": protocol}
        if takeover:
            msg["takeover"] = True
        r = self.request(msg)
        if not isinstance(r, Hello):
            raise ProtocolViolation(f"hello answered with {r!r}")
        self.last = r.pending
        return r

    def get(self, names: str | Iterable[str]) -> Values:
        """Read parameters and signals now, without advancing."""
        names = [names] if isinstance(names, str) else list(names)
        r = self.request({"op": "get", "names": names})
        if not isinstance(r, Values):
            raise ProtocolViolation(f"get answered with {r!r}")
        return r

    def value(self, name: str) -> float:
        """Read one parameter or signal now (a ``get`` of one name)."""
        return self.get([name]).values[name]

    def cont(self, actions: Sequence[Action] | Iterable[Action] = ()) -> Sync | Done:
        """Apply ``actions`` in order (all or nothing) and run to the next sync point.

        Returns the next :class:`Sync` report, or :class:`Done` after the ``end`` point or a
        ``stop`` (the node then exits).
        """
        r = self.request({"op": "continue", "actions": list(actions)})
        if not isinstance(r, (Sync, Done)):
            raise ProtocolViolation(f"continue answered with {r!r}")
        self.last = r
        if isinstance(r, Done):
            # The node lingers only for controllers still connected.
            self._drop_socket()
        return r
