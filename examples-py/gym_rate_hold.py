#!/usr/bin/env python3
"""A simple policy in the Gymnasium environment: hold the soma's firing rate.

``spikebus_client.gym_env.RateHoldEnv`` gives the soma's rate over the last window and the
weight that acted; the action is the weight for the next window.  The policy here is an
integral controller on the rate's error (the weight it chose last, moved by ``gain`` times the
relative error), which settles on the weight that fires at the target:

    w_{k+1} = clip(w_k + gain * w_scale * (target - rate_k) / target, 0, max_weight)

It runs ``--episodes`` episodes (each begins with ``reset``: the node restores a snapshot)
and prints, per episode, the mean rate and mean |error| over its second half, then
``held: yes`` when every episode's mean |error| there is within ``--tolerance`` (relative).
Exit status 0 when held, 1 otherwise.

    python3 examples-py/gym_rate_hold.py --target-hz 80 --episodes 3
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from spikebus_client.gym_env import RateHoldEnv  # noqa: E402


def policy(obs: np.ndarray, target: float, gain: float, w_scale: float, max_weight: float) -> np.ndarray:
    rate, w = float(obs[0]), float(obs[1])
    w = min(max(w + gain * w_scale * (target - rate) / target, 0.0), max_weight)
    return np.array([w], dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target-hz", type=float, default=80.0)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--episode-ms", type=float, default=2000.0)
    p.add_argument("--step-ms", type=float, default=100.0)
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--gain", type=float, default=0.5)
    p.add_argument("--tolerance", type=float, default=0.05)
    a = p.parse_args(argv)
    held = True
    with RateHoldEnv(target_hz=a.target_hz, step_ms=a.step_ms, episode_ms=a.episode_ms, noise=a.noise) as env:
        for ep in range(a.episodes):
            obs, info = env.reset(seed=ep)
            rates, total = [], 0.0
            truncated = False
            while not truncated:
                obs, reward, _, truncated, info = env.step(policy(obs, a.target_hz, a.gain, 0.01, env.max_weight))
                rates.append(info["rate"])
                total += reward
            tail = np.array(rates[len(rates) // 2 :])
            err = float(np.mean(np.abs(tail - a.target_hz)) / a.target_hz)
            ok = err <= a.tolerance
            held = held and ok
            print(
                f"episode {ep}: return {total:.3f}; second half: mean rate {tail.mean():.1f} Hz, "
                f"mean |error| {100 * err:.1f}% ({'within' if ok else 'outside'} {100 * a.tolerance:.0f}%), "
                f"final weight {float(obs[1]):.4f} uS, state hash {info['hash']}"
            )
    print(f"held: {'yes' if held else 'no'}")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
