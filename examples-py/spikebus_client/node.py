"""Run a spikebus node as a subprocess (for tests, and for users embedding a node in their
own integration tests)."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Mapping, Sequence

__all__ = ["Node", "NodeError", "find_binary", "parse_listening"]

LISTENING_PREFIX = "spikebus: listening"


class NodeError(RuntimeError):
    """The node process did not start as expected (exited early, or never printed its
    ``listening`` line)."""


def _repo_root_candidates() -> list[Path]:
    here = Path(__file__).resolve()
    out: list[Path] = []
    # A source checkout: <repo>/examples-py/spikebus_client/node.py
    if len(here.parents) >= 3:
        out.append(here.parents[2])
    cwd = Path.cwd().resolve()
    out.extend([cwd, *cwd.parents])
    return out


def find_binary() -> Path:
    """The spikebus binary: ``$SPIKEBUS`` if set, else ``target/release/spikebus`` of the
    repository (this package's checkout, or the current directory or one of its parents),
    else ``spikebus`` on ``PATH``.  Nothing is built.

    Raises:
        FileNotFoundError: with what was looked for.
    """
    env = os.environ.get("SPIKEBUS")
    if env:
        p = Path(env)
        if not p.is_file():
            raise FileNotFoundError(f"$SPIKEBUS={env!r} is not a file")
        return p
    looked: list[str] = []
    for root in _repo_root_candidates():
        if (root / "Cargo.toml").is_file():
            p = root / "target" / "release" / "spikebus"
            looked.append(str(p))
            if p.is_file():
                return p
    which = shutil.which("spikebus")
    if which:
        return Path(which)
    raise FileNotFoundError(
        "spikebus binary not found (set $SPIKEBUS, or run `cargo build --release` in the "
        f"repository); looked at: {', '.join(looked) or 'no repository found'} and PATH"
    )


def parse_listening(line: str) -> dict[str, str]:
    """Parse ``spikebus: listening control=EP pub=EP`` (either part may be absent) into
    ``{"control": EP, "pub": EP}``."""
    if not line.startswith(LISTENING_PREFIX):
        raise ValueError(f"not a listening line: {line!r}")
    out: dict[str, str] = {}
    for word in line[len(LISTENING_PREFIX) :].split():
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise ValueError(f"malformed listening line: {line!r}")
        out[key] = value
    return out


class Node:
    """A spikebus node process: ``spikebus run ARGS...``.

    On entry (or :meth:`start`) the process is started; if ``args`` contain ``--control``
    or ``--pub``, the node's ``listening`` line is read from its stdout (no sleeping: the
    node prints it once its sockets are bound) and the actually bound endpoints are exposed
    as :attr:`control` and :attr:`pub`.  On exit the process is killed if still running.

    Args:
        args: the arguments after ``run``, e.g.
            ``["--control", "tcp://127.0.0.1:0", "--set", "soma.threshold=0", "--out", d]``.
        binary: the spikebus binary (default: :func:`find_binary`).
        subcommand: the subcommand placed before ``args`` (``"run"``; ``None`` for none).
        cwd: working directory of the process.
        env: extra environment variables.
        start_timeout: seconds to wait for the ``listening`` line.

    Example::

        with Node(["--control", "tcp://127.0.0.1:0", "--out", str(tmp)]) as node:
            with Controller(node.control) as c:
                ...
            assert node.wait(timeout=30) == 0
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        binary: str | os.PathLike[str] | None = None,
        subcommand: str | None = "run",
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.binary = Path(binary) if binary is not None else find_binary()
        self.argv = [str(self.binary), *([subcommand] if subcommand else []), *map(str, args)]
        self.cwd = cwd
        self.env = {**os.environ, **env} if env else None
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[str] | None = None
        #: Every stdout line so far (without newlines).
        self.stdout_lines: list[str] = []
        self._stderr_chunks: list[str] = []
        self._lines: "queue.Queue[str | None]" = queue.Queue()
        self._threads: list[threading.Thread] = []
        #: The endpoints from the ``listening`` line.
        self.endpoints: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> "Node":
        """Start the process and, with ``--control``/``--pub``, wait for its endpoints."""
        if self.process is not None:
            raise NodeError("node already started")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=self.cwd,
            env=self.env,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self.process.stderr,), daemon=True),
        ]
        for th in self._threads:
            th.start()
        if any(a in ("--control", "--pub") or a.startswith(("--control=", "--pub=")) for a in self.argv):
            try:
                self._await_listening()
            except BaseException:
                self.kill()
                raise
        return self

    def _read_stdout(self, f: IO[str]) -> None:
        for line in f:
            line = line.rstrip("\r\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self, f: IO[str]) -> None:
        for chunk in iter(lambda: f.read(4096), ""):
            self._stderr_chunks.append(chunk)

    def _await_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NodeError(
                    f"no `listening` line within {self.start_timeout} s from {self.argv}; "
                    f"stdout so far: {self.stdout_lines!r}"
                )
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                rc = self.process.wait(timeout=10) if self.process else None
                self._join_readers(5)
                raise NodeError(f"{self.argv} exited (status {rc}) before listening; stderr: {self.stderr.strip()!r}")
            if line.startswith(LISTENING_PREFIX):
                self.endpoints = parse_listening(line)
                return

    def _join_readers(self, timeout: float) -> None:
        for th in self._threads:
            th.join(timeout)

    def __enter__(self) -> "Node":
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    # -- state -------------------------------------------------------------------------

    @property
    def control(self) -> str:
        """The bound control endpoint (from the ``listening`` line)."""
        try:
            return self.endpoints["control"]
        except KeyError:
            raise NodeError("the node listens on no control endpoint") from None

    @property
    def pub(self) -> str:
        """The bound pub endpoint (from the ``listening`` line)."""
        try:
            return self.endpoints["pub"]
        except KeyError:
            raise NodeError("the node listens on no pub endpoint") from None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise NodeError("node not started")
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or ``None`` while running."""
        return None if self.process is None else self.process.poll()

    @property
    def stdout(self) -> str:
        """Everything the node printed on stdout so far."""
        return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        """Everything the node printed on stderr so far."""
        return "".join(self._stderr_chunks)

    @property
    def summary(self) -> str | None:
        """The node's final summary line (``spikebus: N steps to t=...``), once printed."""
        for line in reversed(self.stdout_lines):
            if line.startswith("spikebus:") and not line.startswith(LISTENING_PREFIX):
                return line
        return None

    def wait(self, timeout: float | None = 60.0) -> int:
        """Wait for the node to exit and return its status (its output is then complete).

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` seconds (the process
                is left running; leaving the ``with`` block kills it).
        """
        if self.process is None:
            raise NodeError("node not started")
        rc = self.process.wait(timeout=timeout)
        self._join_readers(10)
        return rc

    def kill(self) -> None:
        """Kill the process (SIGKILL) if it is still running, and reap it."""
        p = self.process
        if p is None:
            return
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=10)
        finally:
            self._join_readers(5)
            for f in (p.stdout, p.stderr):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
