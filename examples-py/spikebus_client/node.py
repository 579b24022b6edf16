"""Run a spikebus node as a subprocess (for tests, and for users embedding a node in their
own integration tests), and find the ``spikebus`` command.

A :class:`Node` never outlives the Python process that started it: leaving its ``with``
block or calling :meth:`Node.stop` ends the run gracefully (SIGTERM: the node writes its
files and ``manifest.json`` with reason ``signal``); a ``Node`` never stopped is stopped when
it is garbage-collected or at interpreter exit; and if the Python process dies without
cleaning up (even by SIGKILL), the node stops as on one SIGTERM: it holds the read end of a
pipe (``spikebus run --lifeline FD``) whose write end only this process holds, and the end of
that pipe is its signal.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Callable, Mapping, Sequence

__all__ = ["Node", "NodeError", "find_binary", "parse_listening"]

LISTENING_PREFIX = "spikebus: listening"

log = logging.getLogger("spikebus_client.node")


class NodeError(RuntimeError):
    """The node process did not start as expected (exited early, or never printed its
    ``listening`` line)."""


def _checkout_root() -> Path | None:
    """The repository this package sits in (``<repo>/examples-py/spikebus_client``), if any."""
    here = Path(__file__).resolve()
    if len(here.parents) >= 3 and (here.parents[2] / "Cargo.toml").is_file():
        return here.parents[2]
    return None


def _installed_candidates() -> list[Path]:
    """Where pip puts the wheel's ``spikebus`` command: the interpreter's scripts directory
    (a venv's ``bin/``), the user scheme's (``pip install --user``), next to the interpreter."""
    dirs: list[Path] = []
    for scheme in (None, f"{os.name}_user"):
        try:
            d = sysconfig.get_path("scripts") if scheme is None else sysconfig.get_path("scripts", scheme)
        except KeyError:
            continue
        if d:
            dirs.append(Path(d))
    dirs.append(Path(sys.executable).parent)
    name = "spikebus.exe" if os.name == "nt" else "spikebus"
    out: list[Path] = []
    for d in dirs:
        if d / name not in out:
            out.append(d / name)
    return out


def find_binary() -> Path:
    """The spikebus binary, the first of:

    1. ``$SPIKEBUS``;
    2. in a source checkout (this package imported from ``<repo>/examples-py``): the
       checkout's ``target/release/spikebus``;
    3. the ``spikebus`` command installed with this package (the ``spikebus`` wheel): in the
       interpreter's scripts directory (the venv's ``bin/``), the user scripts directory, or
       next to the interpreter;
    4. ``spikebus`` on ``PATH``;
    5. ``target/release/spikebus`` of a repository at the current directory or above.

    Nothing is built.

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

    def executable(p: Path) -> bool:
        looked.append(str(p))
        return p.is_file() and os.access(p, os.X_OK)

    root = _checkout_root()
    if root is not None and executable(root / "target" / "release" / "spikebus"):
        return root / "target" / "release" / "spikebus"
    for p in _installed_candidates():
        if executable(p):
            return p
    which = shutil.which("spikebus")
    looked.append("PATH")
    if which:
        return Path(which)
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "Cargo.toml").is_file() and executable(d / "target" / "release" / "spikebus"):
            return d / "target" / "release" / "spikebus"
    raise FileNotFoundError(
        "spikebus binary not found: install the `spikebus` wheel (it carries the node), set "
        "$SPIKEBUS, or run `cargo build --release` in the repository; looked at: " + ", ".join(looked)
    )


def _read_stdout(f: IO[str], lines: list[str], q: "queue.Queue[str | None]") -> None:
    for line in f:
        line = line.rstrip("\r\n")
        lines.append(line)
        q.put(line)
    q.put(None)


def _read_stderr(f: IO[str], chunks: list[str], pid: int) -> None:
    for line in f:
        chunks.append(line)
        log.info("node pid %d: %s", pid, line.rstrip("\r\n"))


# -- the node never outlives this process ------------------------------------------------------


def _stop_process(p: "subprocess.Popen[str]", timeout: float, why: str, lifeline: int | None = None) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; then close the lifeline's write end
    (only once the node is gone: its end of file would be a second signal).  A finalizer:
    holds no Node."""
    try:
        if p.poll() is None:
            log.info("stopping node pid %d (%s)", p.pid, why)
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("node pid %d still running %s s after SIGTERM: killed", p.pid, timeout)
        p.kill()
        p.wait(timeout=10)
    except OSError:
        pass
    finally:
        if lifeline is not None and p.poll() is not None:
            os.close(lifeline)


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
    as :attr:`control` and :attr:`pub`.  On exit the node is stopped gracefully if still
    running (:meth:`stop`: SIGTERM, its files complete), and killed only if it does not end
    within ``stop_timeout`` seconds.  A ``Node`` that is never stopped is stopped when
    garbage-collected or at interpreter exit, and the node of ``run`` stops by itself if this
    process dies (``die_with_parent``: the ``--lifeline`` pipe).

    The node's stderr lines are logged on the ``spikebus_client.node`` logger (INFO).

    Args:
        args: the arguments after ``run``, e.g.
            ``["--control", "tcp://127.0.0.1:0", "--set", "soma.threshold=0", "--out", d]``.
        binary: the spikebus binary (default: :func:`find_binary`).
        subcommand: the subcommand placed before ``args`` (``"run"``; ``None`` for none).
        cwd: working directory of the process.
        env: extra environment variables.
        start_timeout: seconds to wait for the ``listening`` line.
        stop_timeout: seconds :meth:`stop` (and leaving the ``with`` block) waits after
            SIGTERM before killing the node.
        die_with_parent: for ``run``, pass the node ``--lifeline FD``, the read end of a pipe
            whose write end this process keeps: when this process ends, however it ends, the
            node stops as on one SIGTERM (files complete).  A child made with a bare
            ``fork()`` (multiprocessing's fork start method) inherits the write end and keeps
            the node alive while it lives.  Turn it off for a node that must outlive this
            process.

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
        stop_timeout: float = 30.0,
        die_with_parent: bool = True,
    ) -> None:
        self.binary = Path(binary) if binary is not None else find_binary()
        self.argv = [str(self.binary), *([subcommand] if subcommand else []), *map(str, args)]
        """The command line the node runs with."""
        self.cwd = cwd
        self.env = {**os.environ, **env} if env else None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[str] | None = None
        """The node's process, once started."""
        self._finalizer: weakref.finalize | None = None
        self._lifeline: int | None = None  # the write end, open while the node should live
        self.stdout_lines: list[str] = []
        """Every stdout line so far (without newlines)."""
        self._stderr_chunks: list[str] = []
        self._lines: "queue.Queue[str | None]" = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.endpoints: dict[str, str] = {}
        """The endpoints from the ``listening`` line."""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> "Node":
        """Start the process and, with ``--control``/``--pub``, wait for its endpoints."""
        if self.process is not None:
            raise NodeError("node already started")
        argv, pass_fds = list(self.argv), ()
        read_end = None
        if self.die_with_parent and len(argv) > 1 and argv[1] == "run" and os.name == "posix":
            read_end, self._lifeline = os.pipe()  # neither is inherited by other children
            argv[2:2] = ["--lifeline", str(read_end)]
            pass_fds = (read_end,)
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
                cwd=self.cwd,
                env=self.env,
                pass_fds=pass_fds,
            )
        except BaseException:
            self._close_lifeline()
            raise
        finally:
            if read_end is not None:
                os.close(read_end)  # the node's copy is the one that counts
        self._started_process()
        return self

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    def _started_process(self) -> None:
        assert self.process is not None
        log.info("started node pid %d: %s", self.process.pid, " ".join(self.argv))
        # Stops the node when this object is collected or the interpreter exits (atexit).
        self._finalizer = weakref.finalize(
            self, _stop_process, self.process, self.stop_timeout, "not stopped", self._lifeline
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        # The readers hold no reference to this Node (so that it can be collected, and the
        # finalizer above run, while the node lives).
        self._threads = [
            threading.Thread(
                target=_read_stdout, args=(self.process.stdout, self.stdout_lines, self._lines), daemon=True
            ),
            threading.Thread(
                target=_read_stderr, args=(self.process.stderr, self._stderr_chunks, self.process.pid), daemon=True
            ),
        ]
        for th in self._threads:
            th.start()
        if any(a in ("--control", "--pub") or a.startswith(("--control=", "--pub=")) for a in self.argv):
            try:
                self._await_listening()
            except BaseException:
                self.kill()
                raise

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
                log.info("node pid %d listening: %s", self.pid, self.endpoints)
                return

    def _join_readers(self, timeout: float) -> None:
        for th in self._threads:
            th.join(timeout)

    def __enter__(self) -> "Node":
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
    def out_dir(self) -> Path | None:
        """The node's ``--out`` directory (``out``, the node's default, if not given; relative
        to ``cwd``); ``None`` when not running ``run``."""
        if len(self.argv) < 2 or self.argv[1] != "run":
            return None
        out = "out"
        for i, a in enumerate(self.argv):
            if a == "--out" and i + 1 < len(self.argv):
                out = self.argv[i + 1]
            elif a.startswith("--out="):
                out = a[len("--out="):]
        p = Path(out)
        return p if p.is_absolute() or self.cwd is None else Path(self.cwd) / p

    @property
    def pid(self) -> int:
        """The node's process id."""
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

    def stop(self, timeout: float | None = None) -> int | None:
        """End the run gracefully and return the exit status (``None`` if never started).

        The node gets SIGTERM: it stops at the next step boundary, writes what it recorded
        (``traces.csv``, ``spikes.csv``, ``manifest.json`` with reason ``signal``) and exits
        143; one that already finished keeps its own status (0 after ``done``).  If it has not
        exited after ``timeout`` seconds (default ``stop_timeout``) it is killed (SIGKILL:
        then no manifest is written).
        """
        p = self.process
        if p is None:
            return None
        if p.poll() is None:
            _stop_process(p, self.stop_timeout if timeout is None else timeout, "stop()")
        self.kill()
        return p.returncode

    def kill(self) -> None:
        """Kill the process (SIGKILL) if it is still running, and reap it."""
        p = self.process
        if p is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=10)
            self._close_lifeline()
        finally:
            self._join_readers(5)
            for f in (p.stdout, p.stderr):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
