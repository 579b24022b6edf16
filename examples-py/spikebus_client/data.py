"""A run's numbers as numpy arrays and pandas DataFrames, exact to the last bit.

- The output files: :func:`read_traces` / :func:`traces_frame` (``traces.csv``),
  :func:`read_spikes` / :func:`spikes_frame` (``spikes.csv``), :func:`read_manifest` (checks
  that the files are complete and the run's own).
- The state stream: :func:`stream_arrays` / :func:`stream_frame` (``state`` messages),
  :func:`stream_spikes_frame` (``spike`` messages), from messages an
  :class:`~spikebus_client.Observer` received (``obs.collect()``).

The node writes every number in the shortest text that parses back to the same double, and
the stream carries 64-bit doubles; these helpers parse with Python's correctly rounded
``float()`` (never a faster approximate parser), so every value is the simulated double
bit for bit.  numpy and pandas are optional dependencies (``pip install
'spikebus-client[pandas]'``, or ``spikebus[pandas]``), imported when a function needs them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .stream import StreamMessage

if TYPE_CHECKING:
    import numpy
    import pandas

__all__ = [
    "IncompleteRun",
    "read_manifest",
    "read_traces",
    "traces_frame",
    "read_spikes",
    "spikes_frame",
    "stream_arrays",
    "stream_frame",
    "stream_spikes_frame",
]

PathLike = str | os.PathLike  # type: ignore[type-arg]


class IncompleteRun(RuntimeError):
    """A run's outputs are not complete or not its own: no ``manifest.json`` (the run was
    killed or is still running), ``"complete": false``, or a file whose length or SHA-256
    differs from the manifest."""


def _numpy() -> Any:
    try:
        import numpy as np
    except ImportError:
        raise ImportError("this needs numpy: pip install 'spikebus-client[numpy]' (or numpy)") from None
    return np


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("this needs pandas: pip install 'spikebus-client[pandas]' (or pandas)") from None
    return pd


def _file(path: PathLike, name: str) -> Path:
    """``path`` itself, or ``path/name`` when ``path`` is a directory (an ``--out`` DIR)."""
    p = Path(path)
    return p / name if p.is_dir() else p


def read_manifest(out_dir: PathLike, verify: bool = True) -> dict[str, Any]:
    """``DIR/manifest.json`` (README, "Outputs"); with ``verify``, check that the run is
    complete and that every file listed has the listed length and SHA-256.

    Raises:
        IncompleteRun: no manifest, an incomplete run, or a file that does not match.
    """
    d = Path(out_dir)
    try:
        with open(d / "manifest.json", encoding="utf-8") as f:
            m: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        raise IncompleteRun(f"{d}: no manifest.json (the run was killed, or is still running)") from None
    if not verify:
        return m
    if not m.get("complete"):
        raise IncompleteRun(f"{d}: the run is incomplete ({m.get('reason')}: {m.get('error')})")
    for name, info in (m.get("files") or {}).items():
        h = hashlib.sha256()
        n = 0
        with open(d / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                n += len(chunk)
        if n != info["bytes"] or h.hexdigest() != info["sha256"]:
            raise IncompleteRun(f"{d / name}: {n} bytes, SHA-256 {h.hexdigest()}; the manifest says {info}")
    return m


def _read_csv_columns(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        cols: list[list[str]] = [[] for _ in header]
        for r in rows:
            if len(r) != len(header):
                raise ValueError(f"{path}: a row of {len(r)} fields under a header of {len(header)}")
            for c, x in zip(cols, r):
                c.append(x)
    return header, cols


def read_traces(path: PathLike) -> dict[str, "numpy.ndarray"]:
    """``traces.csv`` (or an ``--out`` directory) as ``{column: float64 array}``, ``t``
    first, in the file's column order; every value the written double exactly."""
    np = _numpy()
    header, cols = _read_csv_columns(_file(path, "traces.csv"))
    return {h: np.array([float(x) for x in c], dtype=np.float64) for h, c in zip(header, cols)}


def traces_frame(path: PathLike) -> "pandas.DataFrame":
    """``traces.csv`` (or an ``--out`` directory) as a DataFrame: one row per sample, a
    column per signal (``t`` first), float64, exact."""
    pd = _pandas()
    return pd.DataFrame(read_traces(path))


def read_spikes(path: PathLike) -> dict[str, "numpy.ndarray"]:
    """``spikes.csv`` (or an ``--out`` directory) as ``{source: float64 array of times}``,
    sources in order of their first spike, times in file (time) order."""
    np = _numpy()
    header, cols = _read_csv_columns(_file(path, "spikes.csv"))
    if header != ["source", "t"]:
        raise ValueError(f"{path}: header {header}, expected source,t")
    out: dict[str, list[float]] = {}
    for s, t in zip(cols[0], cols[1]):
        out.setdefault(s, []).append(float(t))
    return {s: np.array(ts, dtype=np.float64) for s, ts in out.items()}


def spikes_frame(path: PathLike) -> "pandas.DataFrame":
    """``spikes.csv`` (or an ``--out`` directory) as a DataFrame with columns ``source``
    (str) and ``t`` (float64), in file (time) order."""
    pd = _pandas()
    np = _numpy()
    header, cols = _read_csv_columns(_file(path, "spikes.csv"))
    if header != ["source", "t"]:
        raise ValueError(f"{path}: header {header}, expected source,t")
    return pd.DataFrame({"source": cols[0], "t": np.array([float(x) for x in cols[1]], dtype=np.float64)})


def stream_arrays(messages: Iterable[StreamMessage], signals: Iterable[str] | None = None) -> dict[str, "numpy.ndarray"]:
    """The samples of the ``state`` messages among ``messages``, in order, as arrays:
    ``step`` (int64), ``t`` and one float64 array per signal (default: the signals of the
    first ``state`` message).  Other topics are skipped; lost messages (gaps in ``seq``) are
    simply absent: compare ``step`` with what you expect."""
    np = _numpy()
    names = list(signals) if signals is not None else None
    steps: list[int] = []
    ts: list[float] = []
    values: dict[str, list[float]] = {}
    for m in messages:
        if m.topic != "state":
            continue
        d = m.data
        if names is None:
            names = [k for k, v in d.items() if k not in ("seq", "step", "t") and isinstance(v, list)]
        if not values:
            values = {n: [] for n in names}
        steps.extend(int(x) for x in d["step"])
        ts.extend(float(x) for x in d["t"])
        for n in names:
            values[n].extend(float(x) for x in d[n])
    out: dict[str, Any] = {"step": np.array(steps, dtype=np.int64), "t": np.array(ts, dtype=np.float64)}
    for n in names or ():
        out[n] = np.array(values.get(n, []), dtype=np.float64)
    return out


def stream_frame(messages: Iterable[StreamMessage], signals: Iterable[str] | None = None) -> "pandas.DataFrame":
    """:func:`stream_arrays` as a DataFrame indexed by ``step``."""
    pd = _pandas()
    return pd.DataFrame(stream_arrays(messages, signals)).set_index("step")


def stream_spikes_frame(messages: Iterable[StreamMessage]) -> "pandas.DataFrame":
    """The ``spike`` messages among ``messages`` as a DataFrame with columns ``seq``,
    ``source`` and ``t``, in arrival (time) order."""
    pd = _pandas()
    np = _numpy()
    rows = [(int(m.data["seq"]), str(m.data["source"]), float(m.data["t"])) for m in messages if m.topic == "spike"]
    return pd.DataFrame({
        "seq": np.array([r[0] for r in rows], dtype=np.int64),
        "source": [r[1] for r in rows],
        "t": np.array([r[2] for r in rows], dtype=np.float64),
    })
