"""The controller side of the spikebus control channel: a REQ socket that steers a node in
lockstep (``hello``, ``get``, ``continue``), with a client name, request ids and safe retries."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Iterable, Iterator, Mapping, Sequence

import msgpack
import zmq

from .actions import Action, schedule, stop, watch
from .unix import UnixChannel, endpoint_path
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

log = logging.getLogger("spikebus_client.controller")

__all__ = ["Controller", "pack", "unpack", "steps_of", "check_options", "check_period", "run_setup"]


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

    The first exchange is a handshake: the first request (or a ``hello`` sent before it, if
    it is not one) waits at most ``connect_timeout_ms`` and is not resent, so a wrong
    endpoint raises :class:`~spikebus_client.NodeUnreachable` within 2 s instead of after
    every retry of the per-request timeout.

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
        connect_timeout_ms: the longest wait for the first reply (the handshake); ``None``:
            no handshake, the first request is treated as any other.

    Use as a context manager, or call :meth:`close`.  After ``done`` the socket is closed
    (the node exits as soon as no controller is connected).

    Requests and replies are logged on the ``spikebus_client.controller`` logger (DEBUG),
    the handshake and takeovers at INFO, resends at WARNING.
    """

    def __init__(
        self,
        endpoint: str,
        timeout_ms: int = 10_000,
        retries: int = 3,
        context: "zmq.Context[Any] | None" = None,
        first_id: int | None = None,
        client: str | None = None,
        connect_timeout_ms: int | None = 2_000,
    ) -> None:
        check_options(timeout_ms, retries, connect_timeout_ms, client)
        self.endpoint = endpoint
        self.timeout_ms = int(timeout_ms)
        self.retries = int(retries)
        self.client = client if client is not None else f"py-{secrets.token_hex(6)}"
        self._ctx = context if context is not None else zmq.Context.instance()
        self._next_id = secrets.randbelow(1 << 30) if first_id is None else int(first_id)
        self._sock: "zmq.Socket[bytes] | UnixChannel | None" = None
        # The socket path of a unix:// endpoint (None: a ZeroMQ endpoint).
        self._unix_path = endpoint_path(endpoint)
        self.resends = 0
        """How many resends were needed so far (for logs and tests)."""
        self.last: Sync | Done | None = None
        """The last sync report or done received from ``cont`` (or ``hello.pending``)."""
        self.connect_timeout_ms = None if connect_timeout_ms is None else int(connect_timeout_ms)
        self.connected = False
        """Whether the node has answered (the handshake is done)."""
        self.done: Done | None = None
        """The ``done`` that ended the run, once received."""
        # Actions queued with act() for the next continue.
        self._queued: list[Action] = []

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
        if not self.connected and self.connect_timeout_ms is not None and m.get("op") != "hello":
            # The handshake: a hello (a read, answered at once by a node paused anywhere)
            # with the short timeout, before a request that may legitimately run long.
            self.request_map({"op": "hello", "protocol": PROTOCOL_VERSION})
        if "id" not in m:
            m["id"] = self.new_id()
        m.setdefault("client", self.client)
        data = pack(m)
        resends = self.resends
        t0 = time.perf_counter()
        if not self.connected and self.connect_timeout_ms is not None:
            reply = self.decode(self._first_exchange(data))
        else:
            reply = self.decode(self.send_bytes(data))
        self.connected = True
        if self.resends != resends:
            log.warning("%s: request %s id %s resent %d time(s) before a reply came", self.endpoint,
                        m.get("op"), m["id"], self.resends - resends)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s id %s -> %s in %.3f ms", self.endpoint, m.get("op"), m["id"], _summary(reply),
                      1e3 * (time.perf_counter() - t0))
        if reply.get("id") not in (m["id"], None):
            raise ProtocolViolation(f"reply to request id {m['id']} carries id {reply.get('id')!r}: {reply!r}")
        return reply

    def _first_exchange(self, data: bytes) -> bytes:
        """Send the first request with the connect timeout and no resend."""
        assert self.connect_timeout_ms is not None
        retries, self.retries = self.retries, 0
        try:
            raw = self.send_bytes(data, timeout_ms=self.connect_timeout_ms)
        except SpikebusTimeout:
            raise NodeUnreachable(self.endpoint, self.connect_timeout_ms / 1000) from None
        finally:
            self.retries = retries
        log.info("%s: connected (client %r)", self.endpoint, self.client)
        return raw

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
        if takeover:
            log.info("%s: %r took the run over at t=%r (step %d)", self.endpoint, self.client, r.t, r.step)
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
        queued, self._queued = self._queued, []
        r = self.request({"op": "continue", "actions": [*queued, *actions]})
        if not isinstance(r, (Sync, Done)):
            raise ProtocolViolation(f"continue answered with {r!r}")
        self.last = r
        if isinstance(r, Done):
            self.done = r
            log.info("%s: done (%s) at t=%r, step %d", self.endpoint, r.reason, r.t, r.step)
            # The node lingers only for controllers still connected.
            self._drop_socket()
        return r

    def export(self, snapshot: int, file: str) -> dict[str, Any]:
        """Write snapshot ``snapshot`` to ``file`` in the node's ``--snapshot-dir``; the
        ``exported`` reply (``path``, ``bytes``, ``hash``).  ``spikebus run --from-snapshot
        PATH`` starts another node from it."""
        r = self.request_map({"op": "export", "snapshot": snapshot, "file": file})
        if r.get("op") == "error":
            parse_reply(r)
        if r.get("op") != "exported":
            raise ProtocolViolation(f"export answered with {r!r}")
        return r

    def act(self, *actions: Action) -> None:
        """Queue actions for the next ``continue`` (the next :meth:`cont`, or the next
        iteration of :meth:`run`); they go first, in the order queued."""
        self._queued.extend(actions)

    def stop(self) -> Done:
        """End the run now (a ``continue`` with the ``stop`` action, queued actions first):
        the node writes its files, answers ``done`` (reason ``stop``) and exits 0."""
        r = self.cont([stop()])
        if not isinstance(r, Done):
            raise ProtocolViolation(f"stop answered with {r!r}")
        return r

    def run(
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
    ) -> Iterator[Sync]:
        """Run the whole simulation, yielding each sync point; the run ends by itself.

        ::

            with Controller(node.control) as c:
                for sync in c.run(every_ms=1.0, watch_values=["soma.v"]):
                    if sync.values["soma.v"] > -50:
                        c.act(set_("nc.weight", 0.0))
            print(c.done)  # Done(reason='end', ...)

        The first request is a ``hello`` (the handshake); then one ``continue`` sets the
        schedule and the watch (with ``actions`` and anything queued by :meth:`act`), and
        each following one carries what the loop body queued with :meth:`act`.  The ``end``
        point is yielded too (``sync.is_end``; what is queued there is checked and applied but
        changes no result); the ``continue`` after it gets ``done``, kept in :attr:`done`, and
        the loop ends.  The ``start`` point is not yielded (``actions`` act there, before
        initialization); a resumed run (``takeover``) yields its pending point first.  A ``stop`` action ends it earlier the same way.  Leaving the loop
        early (``break``) leaves the node paused at the last point (another controller may
        take over; :meth:`stop` ends the run).

        Where the points are (``schemas/README.md``, "Sync points"), by ``kind``:

        - ``"every"`` (default): at the step boundary, after the step's events, where
          stdrun's ``advance()`` returns, at steps 0, N, 2N, ... (step 0: after
          ``finitialize()``): NEURON's ``h.finitialize(); callback(); while h.t < tstop:
          h.fadvance(); callback()`` with the callback run every Nth step.
        - ``"scatter_gather"``: inside the step, as ``CVode.extra_scatter_gather(0, f)``:
          v already updated, gating states not yet, ``h.t`` still t_n.

        Args:
            every_ms: the period in ms; it must be a whole number N of steps of the run's
                ``dt`` (N = round(every_ms / dt), accepted when N * dt is within 1e-9 ms of
                it): the points are at steps 0, N, 2N, ..., and each reports NEURON's own ``t``
                there (t_N accumulates dt the way NEURON does, so it may differ from N *
                every_ms in the last bits).
            every_steps: the period in steps instead (exactly one of the two, or neither:
                then only ``at``, ``on_spike`` and ``end`` points).
            kind: ``"every"`` or ``"scatter_gather"`` (see above).
            watch_values: parameters and signals each report carries (``sync.values``).
            spikes: whether reports carry the spikes since the previous one.
            at: times for ``at`` points (``CVode.event(T, callback)``).
            on_spike: sources whose spikes are sync points (``NetCon.record(callback)``).
            actions: more actions for the first ``continue`` (e.g. ``set_`` before init).
            takeover: take the run over (a controller resuming a run another one owned).

        Raises:
            ValueError: ``every_ms`` is not a whole number of steps, or both periods given.
            NodeUnreachable: nothing answered the handshake.
            SpikebusError: the node refused a request.
        """
        check_period(every_ms, every_steps, kind)
        h = self.hello(takeover=takeover)
        setup = run_setup(h, every_ms, every_steps, kind, watch_values, spikes, at, on_spike, actions)
        log.info("%s: run from t=%r: %r", self.endpoint, h.t, setup[0])
        if h.pending.is_start:
            r = self.cont(setup)
        else:
            # Resuming: the pending point is this controller's first (its values are those
            # the predecessor watched: read what is needed with get()).
            self._queued[:0] = setup
            r = h.pending
        while isinstance(r, Sync):
            yield r
            r = self.cont()


def check_options(timeout_ms: int, retries: int, connect_timeout_ms: int | None, client: str | None) -> None:
    """A controller's options (sync or asyncio), checked.

    Raises:
        ValueError: one out of range.
    """
    if timeout_ms <= 0:
        raise ValueError("timeout_ms must be > 0")
    if connect_timeout_ms is not None and connect_timeout_ms <= 0:
        raise ValueError("connect_timeout_ms must be > 0 (or None: no handshake)")
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if client is not None and not (1 <= len(client.encode()) <= 64):
        raise ValueError("client must be 1 to 64 bytes")


def check_period(every_ms: float | None, every_steps: int | None, kind: str) -> None:
    """The loop helper's period and kind, checked before anything is sent.

    Raises:
        ValueError: an unknown kind, both periods, or ``every_steps`` not an integer >= 0.
    """
    if kind not in ("every", "scatter_gather"):
        raise ValueError(f"kind must be 'every' or 'scatter_gather', got {kind!r}")
    if every_ms is not None and every_steps is not None:
        raise ValueError("give every_ms or every_steps, not both")
    if every_steps is not None and (isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 0):
        raise ValueError(f"every_steps must be an integer >= 0, got {every_steps!r}")


def run_setup(
    h: Hello,
    every_ms: float | None,
    every_steps: int | None,
    kind: str,
    watch_values: Iterable[str] | None,
    spikes: bool,
    at: Iterable[float],
    on_spike: Iterable[str],
    actions: Sequence[Action],
) -> list[Action]:
    """The loop helper's first actions (see :meth:`Controller.run`): the schedule, the watch,
    then ``actions``."""
    n = steps_of(every_ms, h.dt) if every_ms is not None else (every_steps or 0)
    return [
        schedule(**{kind: n}, add_at=list(at) or None, on_spike=list(on_spike)),
        watch(values=list(watch_values or ()), spikes=spikes),
        *actions,
    ]


def steps_of(every_ms: float, dt: float) -> int:
    """The whole number of steps of ``dt`` that ``every_ms`` is (see :meth:`Controller.run`).

    Raises:
        ValueError: ``every_ms`` is not > 0 or not a whole number of steps (within 1e-9 ms).
    """
    if not (every_ms > 0):
        raise ValueError(f"every_ms must be > 0, got {every_ms!r}")
    n = round(every_ms / dt)
    if n < 1 or abs(n * dt - every_ms) > 1e-9:
        raise ValueError(
            f"every_ms={every_ms!r} is not a whole number of steps of dt={dt!r} "
            f"(the node syncs at step boundaries; the nearest are {max(n, 1) * dt!r} and {(max(n, 1) + 1) * dt!r} ms)"
        )
    return n


def _summary(reply: Mapping[str, Any]) -> str:
    """A short description of a reply for the debug log."""
    op = reply.get("op")
    if op == "sync":
        return f"sync t={reply.get('t')!r} step {reply.get('step')} {reply.get('reasons')}"
    if op == "done":
        return f"done ({reply.get('reason')}) t={reply.get('t')!r}"
    if op == "error":
        return f"error {reply.get('code')}: {reply.get('message')}"
    return str(op)
