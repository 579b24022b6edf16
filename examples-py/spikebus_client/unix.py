"""The ``unix://`` transport of the control channel: the protocol's messages over a plain
Unix-domain stream socket, each in a frame of a 4-byte big-endian length and that many bytes
of MessagePack, in both directions (``schemas/README.md``, "The unix:// transport").  The
standard library only.

:class:`~spikebus_client.Controller` picks it for an endpoint ``unix:///path``; this module is
its socket layer: :class:`UnixChannel` sends one request and reads its one reply within a
timeout; :class:`AsyncUnixChannel` does the same in an asyncio event loop, for
:class:`~spikebus_client.aio.AsyncController`.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time

__all__ = ["AsyncUnixChannel", "UnixChannel", "endpoint_path", "frame"]

_HEADER = struct.Struct(">I")
# SO_RCVTIMEO / SO_SNDTIMEO take a struct timeval (two C longs on Linux and macOS).
_TIMEVAL = struct.Struct("@ll")
# Errors of connect(2) that a node not (yet, or no longer) listening gives.
_NOT_LISTENING = (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN)


def endpoint_path(endpoint: str) -> str | None:
    """The socket path of a ``unix://PATH`` endpoint (``unix:///tmp/sb.ctl`` ->
    ``/tmp/sb.ctl``); None for any other endpoint.  Abstract names (``unix://@name``) are
    refused, as the node refuses them: they have no file permissions."""
    if not endpoint.startswith("unix://"):
        return None
    path = endpoint[len("unix://") :]
    if not path:
        raise ValueError(f"{endpoint}: a unix endpoint needs a path, e.g. unix:///tmp/spikebus.ctl")
    if path.startswith("@"):
        raise ValueError(f"{endpoint}: abstract socket names are not served (they have no file permissions)")
    return path


def frame(data: bytes) -> bytes:
    """One frame: the length of ``data`` (4 bytes, big-endian), then ``data``."""
    return _HEADER.pack(len(data)) + data


class UnixChannel:
    """One connection to a node's ``unix://`` control endpoint.

    :meth:`exchange` sends a request and returns its reply.  It waits in the kernel (socket
    timeouts, not a poll before each call), so a round trip costs the client one ``send`` and
    usually one ``recv``.  The connection is made on the first exchange; a node that is not
    listening yet is retried until that exchange's deadline (as a ZeroMQ socket reconnects by
    itself).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._timeout_ms: int | None = None
        self._buf = bytearray(1 << 16)
        #: Why the last exchange got no reply (for error messages), or None.
        self.failure: str | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self, deadline: float) -> socket.socket | None:
        pause = 0.001
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                self._sock, self._timeout_ms = s, None
                return s
            except OSError as e:
                s.close()
                left = deadline - time.monotonic()
                if e.errno not in _NOT_LISTENING or left <= 0:
                    self.failure = f"cannot connect to {self.path}: {e}"
                    return None
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.05)

    def _set_timeout(self, s: socket.socket, ms: int) -> None:
        """Kernel timeouts for both directions (a blocking send or recv then fails with EAGAIN)."""
        ms = max(1, ms)
        if ms != self._timeout_ms:
            tv = _TIMEVAL.pack(ms // 1000, (ms % 1000) * 1000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            self._timeout_ms = ms

    def exchange(self, data: bytes, timeout_ms: int, replacing: UnixChannel | None = None) -> bytes | None:
        """Sends ``data`` as one frame and returns the reply frame's bytes; None if no whole
        reply came within ``timeout_ms`` or the connection failed (``failure`` says which).
        After None the connection is unusable (a reply may still be on its way): close it and
        use a new channel.  ``replacing``: a channel this one replaces, closed once this one
        has connected (or failed to)."""
        deadline = time.monotonic() + timeout_ms / 1000
        self.failure = None
        s = self._sock or self._connect(deadline)
        if replacing is not None:
            replacing.close()
        if s is None:
            return None
        buf = self._buf
        view = memoryview(buf)
        n = 0
        try:
            self._set_timeout(s, timeout_ms)
            s.sendall(_HEADER.pack(len(data)) + data)
            while True:
                got = s.recv_into(view[n:])
                if got == 0:
                    self.failure = "the node closed the connection"
                    return None
                n += got
                if n >= 4:
                    end = 4 + _HEADER.unpack_from(buf)[0]
                    if n >= end:
                        if n > end:
                            self.failure = "bytes after the reply: the node answered more than once"
                            return None
                        return bytes(view[4:end])
                    if end > len(buf):  # a reply bigger than the buffer: a bigger one, for it
                        grown = bytearray(end)
                        grown[:n] = view[:n]
                        buf, view = grown, memoryview(grown)
                left = int((deadline - time.monotonic()) * 1000)
                if left <= 0:
                    raise BlockingIOError
                self._set_timeout(s, left)
        except (BlockingIOError, socket.timeout):
            self.failure = f"no reply within {timeout_ms} ms"
            return None
        except OSError as e:
            self.failure = f"the connection failed: {e}"
            return None


class AsyncUnixChannel:
    """One connection to a node's ``unix://`` control endpoint, for asyncio: as
    :class:`UnixChannel` (connected on the first exchange, a node not listening yet waited for
    until that exchange's deadline, unusable after a failed exchange), with ``await``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        #: Why the last exchange got no reply (for error messages), or None.
        self.failure: str | None = None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def _connect(self, deadline: float) -> bool:
        pause = 0.001
        while True:
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(self.path)
                return True
            except OSError as e:
                left = deadline - time.monotonic()
                if e.errno not in _NOT_LISTENING or left <= 0:
                    self.failure = f"cannot connect to {self.path}: {e}"
                    return False
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, 0.05)

    async def _exchange(self, data: bytes, deadline: float, replacing: AsyncUnixChannel | None) -> bytes | None:
        connected = self._writer is not None or await self._connect(deadline)
        if replacing is not None:
            replacing.close()
        if not connected:
            return None
        assert self._reader is not None and self._writer is not None
        self._writer.write(frame(data))
        await self._writer.drain()
        (n,) = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))
        return await self._reader.readexactly(n)

    async def exchange(self, data: bytes, timeout_ms: int, replacing: AsyncUnixChannel | None = None) -> bytes | None:
        """As :meth:`UnixChannel.exchange`: the reply's bytes, or None (``failure`` says
        why) if none came within ``timeout_ms`` or the connection failed."""
        self.failure = None
        deadline = time.monotonic() + timeout_ms / 1000
        try:
            return await asyncio.wait_for(self._exchange(data, deadline, replacing), timeout_ms / 1000)
        except asyncio.TimeoutError:
            self.failure = f"no reply within {timeout_ms} ms"
        except asyncio.IncompleteReadError:
            self.failure = "the node closed the connection"
        except OSError as e:
            self.failure = f"the connection failed: {e}"
        if replacing is not None:
            replacing.close()  # a timeout while connecting
        return None
