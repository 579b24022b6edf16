"""A Gymnasium environment around a spikebus node: hold a neuron's firing rate.

``reset()`` restores a snapshot the node keeps (no process restart: one exchange), and
``step(action)`` is one exchange every ``step_ms`` of simulated time. Needs ``gymnasium``
and ``numpy`` (``pip install spikebus[gym]``).

The model is spikebus's seed model (a Hodgkin-Huxley soma driven through an ExpSyn by a
NetStim) with the NetStim firing every millisecond, so that the synaptic conductance is
nearly steady and the soma fires tonically at a rate that grows with the NetCon's weight
(about 65 Hz at 0.015 uS to 95 Hz at 0.05 uS; above about 0.06 uS the soma goes into
depolarization block and falls silent).

- **Action**: ``Box(0, max_weight, (1,), float32)``: the NetCon's weight ``nc.weight``
  (uS) for the next ``step_ms``.
- **Observation**: ``Box([0, 0], [1000, max_weight], (2,), float32)``: the soma's firing
  rate over the last ``step_ms`` (Hz: its spikes in the window / ``step_ms``) and the weight
  that acted during it.
- **Reward**: ``-|rate - target_hz| / target_hz`` (0 when the rate is on target).
- **Episode**: ``episode_ms`` of simulated time (``truncated`` at its end; never
  ``terminated``). With ``noise`` > 0 the NetStim is noisy and ``reset(seed=s)`` picks the
  random stream (``Random123_globalindex = s``); the same seed and actions give the same
  episode bit for bit (``info["hash"]`` is the node's state hash after each step).

Example (examples-py/gym_rate_hold.py)::

    from spikebus_client.gym_env import RateHoldEnv

    with RateHoldEnv(target_hz=80.0) as env:
        obs, info = env.reset(seed=1)
        for _ in range(20):
            obs, reward, terminated, truncated, info = env.step(policy(obs))
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .actions import restore, schedule, set_, snapshot, watch
from .controller import Controller, steps_of
from .messages import Done, Sync
from .node import Node

__all__ = ["RateHoldEnv"]


class RateHoldEnv(gym.Env):
    """Hold the seed neuron's firing rate at ``target_hz`` by choosing the synaptic weight.

    Args:
        target_hz: the rate to hold.
        step_ms: simulated time per ``step`` (a whole number of steps of dt).
        episode_ms: simulated time per episode (the node's tstop).
        max_weight: the largest weight an action may ask for (uS).
        noise: the NetStim's ``noise`` (0: regular input, 1: Poisson).
        sets: more ``--set NAME=VALUE`` for the node.
        binary: the spikebus binary (default: :func:`~spikebus_client.find_binary`).
        threads: the node's ``--threads``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        target_hz: float = 80.0,
        step_ms: float = 50.0,
        episode_ms: float = 1000.0,
        max_weight: float = 0.06,
        noise: float = 0.0,
        sets: Sequence[str] = (),
        binary: str | None = None,
        threads: int = 1,
    ) -> None:
        super().__init__()
        if not (target_hz > 0 and step_ms > 0 and episode_ms >= step_ms and max_weight > 0 and 0 <= noise <= 1):
            raise ValueError("expected target_hz > 0, 0 < step_ms <= episode_ms, max_weight > 0, 0 <= noise <= 1")
        self.target_hz = float(target_hz)
        self.step_ms = float(step_ms)
        self.episode_ms = float(episode_ms)
        self.max_weight = float(max_weight)
        self.noise = float(noise)
        self.action_space = spaces.Box(0.0, self.max_weight, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(
            np.array([0.0, 0.0], dtype=np.float32), np.array([1000.0, self.max_weight], dtype=np.float32), dtype=np.float32
        )
        args = [
            "--control", "tcp://127.0.0.1:0", "--out", "/dev/null", "--threads", str(threads),
            "--set", "soma.threshold=0", "--set", "ns.interval=1", "--set", f"ns.noise={self.noise!r}",
            "--set", f"tstop={self.episode_ms!r}", "--set", "nc.weight=0.02",
            *(a for s in sets for a in ("--set", s)),
        ]  # fmt: skip
        self._node = Node(args, binary=binary).start()
        self._c = Controller(self._node.control, client="gym")
        self._start: Sync | None = None  # the report of the snapshot's point
        self._last: Sync | None = None
        self._weight = 0.02
        self._pending: list[dict[str, Any]] = []  # actions for the first step after a reset
        self.resets = 0

    def _setup(self) -> Sync:
        """The first reset: the schedule and watch, a snapshot at step 0 (what every reset
        restores)."""
        h = self._c.hello()
        k = steps_of(self.step_ms, h.dt)
        r = self._c.cont([schedule(every=k), watch(values=["nc.weight"], spikes=True, hash=True)])
        assert isinstance(r, Sync) and r.step == 0, r
        r = self._c.cont([snapshot()])
        assert isinstance(r, Sync) and r.snapshots == (0,), r
        return r

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self._start is None:
            self._setup()
        r = self._c.cont([restore(0)])
        assert isinstance(r, Sync) and r.restored == 0, r
        self._start = self._last = r
        self._weight = r.values["nc.weight"]
        # A seed picks the NetStim's random stream; without one, the snapshot's stream.
        self._pending = [set_("Random123_globalindex", int(seed) % (1 << 32))] if seed is not None else []
        self.resets += 1
        return self._obs(0.0), {"t": r.t, "hash": r.hash}

    def _obs(self, rate: float) -> np.ndarray:
        return np.array([min(rate, 1000.0), self._weight], dtype=np.float32)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._last is None:
            raise RuntimeError("call reset() first")
        if self._last.is_end:
            raise RuntimeError("the episode is over: call reset()")
        w = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, self.max_weight))
        actions = [*self._pending, set_("nc.weight", w)]
        self._pending = []
        r = self._c.cont(actions)
        if isinstance(r, Done):  # the node ended the run (it should not: the end point is a sync)
            raise RuntimeError(f"the node ended the run: {r.reason} {r.error or ''}")
        window = r.t - self._last.t
        n = sum(1 for s in r.spikes if s.source == "soma")
        rate = 1000.0 * n / window if window > 0 else 0.0
        self._weight = w
        self._last = r
        reward = -abs(rate - self.target_hz) / self.target_hz
        truncated = r.is_end
        return self._obs(rate), float(reward), False, bool(truncated), {"t": r.t, "hash": r.hash, "rate": rate}

    def close(self) -> None:
        if getattr(self, "_node", None) is None:
            return
        try:
            if self._c.done is None and self._c.connected:
                self._c.stop()
        finally:
            self._c.close()
            self._node.stop()
            self._node = None  # type: ignore[assignment]

    def __enter__(self) -> "RateHoldEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
