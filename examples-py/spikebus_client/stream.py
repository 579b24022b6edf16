"""The observer side of the spikebus state stream: a SUB socket on the node's ``--pub``
endpoint, yielding typed messages (topic + map)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import msgpack
import zmq

from .messages import NodeUnreachable, ProtocolViolation, SpikebusTimeout

__all__ = ["StreamMessage", "Observer", "TOPICS", "decode_frames", "SeqCounter"]

log = logging.getLogger("spikebus_client.stream")

TOPICS = ("started", "state", "spike", "sync", "owner", "done", "hash", "restore")
"""The topics of protocol version 2."""


@dataclass(frozen=True)
class StreamMessage:
    """One message of the state stream.

    Attributes:
        topic: ``started``, ``state``, ``spike``, ``sync``, ``owner`` (a takeover) or ``done``.
        data: the decoded map; every map has ``seq``, a counter over all messages the node
            tried to publish (a gap shows lost messages).
    """

    topic: str
    data: dict[str, Any] = field(repr=False)

    @property
    def seq(self) -> int:
        """The message's sequence number."""
        return int(self.data["seq"])

    def samples(self, signals: Iterable[str] | None = None) -> Iterator[tuple[int, float, dict[str, float]]]:
        """For a ``state`` message: its samples as ``(step, t, {signal: value})``, in order.

        ``signals`` picks the signals (default: every list-valued key but ``step`` and ``t``).
        """
        if self.topic != "state":
            raise ValueError(f"a {self.topic!r} message has no samples")
        steps = self.data["step"]
        ts = self.data["t"]
        names = (
            list(signals)
            if signals is not None
            else [k for k, v in self.data.items() if k not in ("seq", "step", "t") and isinstance(v, list)]
        )
        for k, (step, t) in enumerate(zip(steps, ts)):
            yield int(step), float(t), {n: float(self.data[n][k]) for n in names}


def decode_frames(frames: list[bytes]) -> StreamMessage:
    """One stream message from its two frames (topic, MessagePack map).

    Raises:
        ProtocolViolation: not two frames, or not a map.
    """
    if len(frames) != 2:
        raise ProtocolViolation(f"a stream message has {len(frames)} frames, not 2: {frames!r}")
    try:
        topic = frames[0].decode("ascii")
        data = msgpack.unpackb(frames[1], raw=False)
    except Exception as e:
        raise ProtocolViolation(f"undecodable stream message: {frames!r}") from e
    if not isinstance(data, dict):
        raise ProtocolViolation(f"stream message is not a map: {data!r}")
    return StreamMessage(topic, data)


class SeqCounter:
    """Counts what a subscriber received, and what it lost by the gaps in ``seq``."""

    endpoint: str
    """The endpoint subscribed to."""

    def __init__(self) -> None:
        self.received = 0
        """Messages received so far."""
        self.gaps = 0
        """Messages missing according to ``seq`` (with a prefix subscription, messages of other
        topics count as gaps: subscribe to everything to measure losses)."""
        self._last_seq: int | None = None

    def _count(self, msg: StreamMessage) -> StreamMessage:
        self.received += 1
        seq = msg.data.get("seq")
        if isinstance(seq, int):
            if self._last_seq is not None and seq > self._last_seq + 1:
                self.gaps += seq - self._last_seq - 1
                log.debug("%s: %d message(s) lost before seq %d", self.endpoint, seq - self._last_seq - 1, seq)
            self._last_seq = seq
        return msg


class Observer(SeqCounter):
    """A subscriber to a node's ``--pub`` endpoint.

    Args:
        endpoint: the node's pub endpoint.
        topics: topic prefixes to subscribe to (``b""`` or ``""``: everything, the
            default).  Each prefix is one subscription sent to the node; the node's
            ``--wait-subscribers N`` counts subscriptions, so an observer that must not miss
            the start should subscribe to everything (one subscription) and filter locally.
        rcvhwm: the SUB socket's receive high-water mark (messages; 0 = unbounded).
        context: a ZeroMQ context (default: the process-wide one).
        connect_timeout_ms: if given, wait this long for the ZeroMQ handshake with the node
            (a node listens at the endpoint) and raise
            :class:`~spikebus_client.NodeUnreachable` if none came; ``None`` (default):
            connect in the background (a subscriber may start before its node).

    Iterate to receive messages; :meth:`messages` can stop at ``done`` and bound each wait.
    """

    def __init__(
        self,
        endpoint: str,
        topics: Iterable[str | bytes] = (b"",),
        rcvhwm: int = 1_000_000,
        context: "zmq.Context[Any] | None" = None,
        connect_timeout_ms: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._ctx = context if context is not None else zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        self.topics = [t.encode("ascii") if isinstance(t, str) else bytes(t) for t in topics]
        for t in self.topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, t)
        monitor = None
        if connect_timeout_ms is not None:
            # Watched from before the connect, so that the handshake cannot be missed.
            monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._sock.connect(endpoint)
        if monitor is not None:
            try:
                ok = monitor.poll(connect_timeout_ms, zmq.POLLIN)
            finally:
                # Stopped before either socket closes (libzmq's I/O thread could block).
                self._sock.disable_monitor()
                monitor.close(linger=0)
            if not ok:
                self._sock.close(linger=0)
                raise NodeUnreachable(endpoint, connect_timeout_ms / 1000, option="--pub")
            log.info("%s: subscribed (handshake done)", endpoint)
        SeqCounter.__init__(self)

    def close(self) -> None:
        """Close the socket."""
        self._sock.close(linger=0)

    def __enter__(self) -> "Observer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv(self, timeout_ms: int | None = None) -> StreamMessage | None:
        """Receive one message; ``None`` if ``timeout_ms`` passed first (``None``: wait
        forever)."""
        if timeout_ms is not None and not self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return self._count(decode_frames(self._sock.recv_multipart()))


    def messages(self, until_done: bool = True, timeout_ms: int | None = None) -> Iterator[StreamMessage]:
        """Yield messages in arrival order.

        Args:
            until_done: stop after the ``done`` message (it is yielded).
            timeout_ms: the longest wait for any one message; exceeded, it raises
                :class:`~spikebus_client.SpikebusTimeout` (``None``: wait forever).
        """
        while True:
            m = self.recv(timeout_ms)
            if m is None:
                raise SpikebusTimeout(f"no stream message from {self.endpoint} within {timeout_ms} ms")
            yield m
            if until_done and m.topic == "done":
                return

    def __iter__(self) -> Iterator[StreamMessage]:
        return self.messages(until_done=True)

    def collect(self, timeout_ms: int = 10_000, deadline_s: float | None = None) -> list[StreamMessage]:
        """Receive every message up to and including ``done``; each wait is bounded by
        ``timeout_ms`` and the whole by ``deadline_s`` seconds (if given)."""
        out: list[StreamMessage] = []
        start = time.monotonic()
        for m in self.messages(until_done=True, timeout_ms=timeout_ms):
            out.append(m)
            if deadline_s is not None and time.monotonic() - start > deadline_s:
                raise SpikebusTimeout(f"stream from {self.endpoint} not done after {deadline_s} s")
        return out
