"""The Gymnasium environment (spikebus_client.gym_env.RateHoldEnv) against the real node:
Gymnasium's own checker passes, ``reset`` restores the node's snapshot (one node process for
every episode) so that the same seed and actions give the same episode bit for bit, and the
example policy (examples-py/gym_rate_hold.py) holds the firing rate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from gymnasium.utils.env_checker import check_env

from helpers import EXAMPLES, REPO_ROOT  # noqa: E402  (puts examples-py/ on sys.path)
from spikebus_client.gym_env import RateHoldEnv  # noqa: E402


def test_check_env_passes(spikebus_bin: Path) -> None:
    """Gymnasium's checker, with its warnings made errors (it warns about what it does not
    fail on: bounds, dtypes, determinism)."""
    import warnings

    with RateHoldEnv(step_ms=25.0, episode_ms=200.0, noise=0.5, binary=str(spikebus_bin)) as env:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env, skip_render_check=True)
        assert env.resets >= 2


def episode(env: RateHoldEnv, seed: int, weights: list[float]) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    out = [(obs.tobytes(), info["hash"])]
    for w in weights:
        obs, reward, terminated, truncated, info = env.step(np.array([w], dtype=np.float32))
        out.append((obs.tobytes(), reward, terminated, truncated, info["hash"], info["t"]))
    return out


def test_reset_restores_the_same_episode_bit_for_bit(spikebus_bin: Path) -> None:
    weights = [0.02, 0.05, 0.03, 0.01, 0.04, 0.025, 0.035, 0.045]
    with RateHoldEnv(step_ms=25.0, episode_ms=200.0, noise=0.7, binary=str(spikebus_bin)) as env:
        pid = env._node.pid
        a = episode(env, 3, weights)
        other = episode(env, 4, weights)
        b = episode(env, 3, weights)
        assert env._node.pid == pid, "reset restarted the node"
    assert a == b, "the same seed and actions gave another episode"
    assert a[-1][3] is True, "the episode ends (truncated) at episode_ms"
    assert [x[0] for x in a[1:]] != [x[0] for x in other[1:]], "another seed, another noisy episode"
    # A fresh node gives the episode of the first node: the snapshot is the run's own state.
    with RateHoldEnv(step_ms=25.0, episode_ms=200.0, noise=0.7, binary=str(spikebus_bin), threads=2) as env:
        assert episode(env, 3, weights) == a


def test_the_example_policy_holds_the_rate(spikebus_bin: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "gym_rate_hold.py"), "--target-hz", "70", "--episodes", "2", "--noise", "0.3",
         "--tolerance", "0.1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env={"SPIKEBUS": str(spikebus_bin), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "held: yes" in r.stdout
    assert r.stdout.count("within 10%") == 2, r.stdout
