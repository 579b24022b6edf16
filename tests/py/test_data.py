"""spikebus_client.data and spikebus_client.aio against a real node and NEURON's goldens:
the output files and the state stream as numpy arrays and pandas DataFrames, bit for bit;
the asyncio controller and observer in one event loop; read_manifest's checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from helpers import assert_same_doubles, load_golden
from spikebus_client import Controller, Observer, set_
from spikebus_client import data
from spikebus_client.aio import AsyncController, AsyncObserver

SIGNALS = ["soma.v", "syn.g", "syn.i", "soma.m_hh", "soma.h_hh", "soma.n_hh"]


def seed_program_node(start_node, out: Path, control: str = "tcp://127.0.0.1:0"):
    return start_node(["--control", control, "--pub", "tcp://127.0.0.1:0", "--set", "soma.threshold=0",
                       "--out", out, "--wait-subscribers", "1", "--pub-batch", "64"])


def test_files_and_stream_as_arrays_and_frames(start_node, tmp_path: Path) -> None:
    out = tmp_path / "d"
    node = seed_program_node(start_node, out)
    with Observer(node.pub) as obs, Controller(node.control) as c:
        for sync in c.run(every_ms=0.025, kind="scatter_gather", watch_values=["ns.interval"]):
            if int(sync.t) % 50 == 0:
                c.act(set_("ns.interval", sync.values["ns.interval"] + 10))
        msgs = obs.collect()
    assert node.wait(60) == 0
    g = load_golden("seed_interval")
    m = data.read_manifest(out)
    assert m["complete"] and m["reason"] == "end"

    traces = data.read_traces(out)
    assert list(traces) == g.signals
    for name in g.signals:
        assert traces[name].dtype == np.float64
        assert_same_doubles(traces[name].tolist(), g.traces[name], f"read_traces {name}")
    frame = data.traces_frame(out / "traces.csv")
    assert list(frame.columns) == g.signals and len(frame) == 20001
    for name in g.signals:
        assert_same_doubles(frame[name].to_numpy().tolist(), g.traces[name], f"traces_frame {name}")

    spikes = data.read_spikes(out)
    for source, want in g.spikes.items():
        assert_same_doubles(spikes[source].tolist(), want, f"read_spikes {source}")
    sf = data.spikes_frame(out)
    assert list(sf.columns) == ["source", "t"] and sf["t"].is_monotonic_increasing
    assert_same_doubles(sf[sf.source == "soma"]["t"].tolist(), g.spikes["soma"], "spikes_frame soma")

    arrays = data.stream_arrays(msgs)
    assert arrays["step"].dtype == np.int64 and arrays["step"].tolist() == list(range(20001))
    assert list(arrays) == ["step", "t", *SIGNALS]
    for name in ["t", *SIGNALS]:
        assert_same_doubles(arrays[name].tolist(), g.traces[name], f"stream_arrays {name}")
    sfr = data.stream_frame(msgs, signals=["soma.v"])
    assert list(sfr.columns) == ["t", "soma.v"] and sfr.index.name == "step"
    assert_same_doubles(sfr["soma.v"].tolist(), g.traces["soma.v"], "stream_frame soma.v")
    ssp = data.stream_spikes_frame(msgs)
    assert_same_doubles(ssp[ssp.source == "ns"]["t"].tolist(), g.spikes["ns"], "stream spikes ns")


def test_read_manifest_refuses_incomplete_or_altered_outputs(start_node, tmp_path: Path) -> None:
    out = tmp_path / "d"
    node = start_node(["--control", "tcp://127.0.0.1:0", "--set", "tstop=5", "--out", out])
    with pytest.raises(data.IncompleteRun, match="no manifest.json"):
        data.read_manifest(out)  # the run has not ended yet
    node.stop()
    assert data.read_manifest(out)["reason"] == "signal"
    with open(out / "spikes.csv", "a") as f:
        f.write("ns,99\n")
    with pytest.raises(data.IncompleteRun, match="spikes.csv"):
        data.read_manifest(out)
    assert data.read_manifest(out, verify=False)["complete"] is True


def test_asyncio_controller_and_observer_in_one_loop(start_node, tmp_path: Path, control: Callable[..., str]) -> None:
    """The seed program steered with AsyncController.run while an AsyncObserver reads the
    stream in the same event loop: NEURON's numbers in the files and in the stream (on each
    control transport)."""
    out = tmp_path / "d"
    node = seed_program_node(start_node, out, control("tcp"))

    async def steer() -> None:
        async with AsyncController(node.control) as c:
            async for sync in c.run(every_ms=0.025, kind="scatter_gather", watch_values=["ns.interval"]):
                if int(sync.t) % 50 == 0:
                    c.act(set_("ns.interval", sync.values["ns.interval"] + 10))
            assert c.done is not None and c.done.reason == "end"

    async def watch() -> list:
        async with AsyncObserver(node.pub) as obs:
            return [m async for m in obs.messages(timeout_ms=60_000)]

    async def main() -> tuple:
        return await asyncio.gather(steer(), watch())

    _, msgs = asyncio.run(main())
    assert node.wait(60) == 0
    g = load_golden("seed_interval")
    from helpers import assert_matches_golden

    assert_matches_golden(out, g)
    arrays = data.stream_arrays(msgs)
    assert_same_doubles(arrays["soma.v"].tolist(), g.traces["soma.v"], "async stream soma.v")
    assert msgs[-1].topic == "done"


@pytest.mark.parametrize("kind", ["ipc", "unix"])
def test_asyncio_wrong_endpoint_fails_within_2_s(kind: str, tmp_path: Path) -> None:
    import time

    from spikebus_client import NodeUnreachable

    async def main() -> None:
        async with AsyncController(f"{kind}://{tmp_path}/nobody.sock") as c:
            await c.get(["soma.v"])

    t0 = time.monotonic()
    with pytest.raises(NodeUnreachable):
        asyncio.run(main())
    assert 1.9 <= time.monotonic() - t0 < 2.5
