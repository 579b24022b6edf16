#!/usr/bin/env python3
"""The seed document's callback program as a ROS 2 agent, steering a spikebus node through
the ROS 2 bridge (``python -m spikebus_client.ros2_bridge``): it reads each sync point on
``/spikebus/sync`` and answers on ``/spikebus/command`` (``if int(t) % 50 == 0:
ns.interval += 10``), while it records the ``state`` and ``spikes`` topics.

    spikebus run --control tcp://127.0.0.1:5555 --pub tcp://127.0.0.1:5556 \\
        --wait-subscribers 1 --set soma.threshold=0 --out out &
    python3 -m spikebus_client.ros2_bridge --control tcp://127.0.0.1:5555 --pub tcp://127.0.0.1:5556 \\
        --scatter-gather 1 --watch ns.interval --lockstep --wait-agents 1 &
    python3 examples-py/ros2_seed_agent.py --record agent.json

With ``--lockstep`` the bridge waits for the agent at every point, so ``out/`` is NEURON's run
of the seed program bit for bit (tests/py/test_ros2.py checks it, and the state and spikes
that crossed ROS).  Needs rclpy with std_msgs (``pip install ros-rclpy ros-rmw-fastrtps-cpp
ros-std-msgs``).
"""

from __future__ import annotations

import argparse
import json
import sys

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray, String


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The seed program as a ROS 2 agent of the spikebus bridge.")
    p.add_argument("--namespace", default="/spikebus", help="the bridge's namespace (default: %(default)s)")
    p.add_argument("--record", metavar="FILE", help="write what arrived (state samples, spikes, done) as JSON")
    args = p.parse_args(argv)

    rclpy.init()
    node = rclpy.create_node("seed_agent", namespace=args.namespace)
    stream = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
    latched = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    command = node.create_publisher(String, "command", latched)
    seen = {"points": 0, "state": [], "columns": None, "spikes": [], "done": None}

    def on_sync(msg: String) -> None:
        s = json.loads(msg.data)
        seen["points"] += 1
        actions = []
        # The callback runs inside each step (the bridge's --scatter-gather 1 points).
        if "scatter_gather" in s["reasons"] and int(s["t"]) % 50 == 0:
            actions.append({"op": "set", "name": "ns.interval", "value": s["values"]["ns.interval"] + 10})
        command.publish(String(data=json.dumps({"point": s["point"], "actions": actions})))

    def on_state(msg: Float64MultiArray) -> None:
        rows, cols = msg.layout.dim[0].size, msg.layout.dim[1].size
        seen["columns"] = msg.layout.dim[1].label.split(",")
        data = list(msg.data)
        seen["state"].extend(data[i * cols:(i + 1) * cols] for i in range(rows))

    def on_done(msg: String) -> None:
        seen["done"] = json.loads(msg.data)

    node.create_subscription(String, "sync", on_sync, latched)
    node.create_subscription(Float64MultiArray, "state", on_state, stream)
    node.create_subscription(String, "spikes", lambda m: seen["spikes"].append(json.loads(m.data)), stream)
    node.create_subscription(String, "done", on_done, latched)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    while seen["done"] is None:
        ex.spin_once(timeout_sec=1.0)
    # What the bridge published before done is delivered in order on each topic; spin until
    # the state stream has caught up with the last step (or a second passes).
    last = seen["done"]["step"]
    for _ in range(100):
        if seen["state"] and seen["state"][-1][0] >= last:
            break
        ex.spin_once(timeout_sec=0.01)
    print(f"seed_agent: {seen['points']} sync points, {len(seen['state'])} state samples, "
          f"{len(seen['spikes'])} spikes, done ({seen['done']['reason']})", flush=True)
    if args.record:
        with open(args.record, "w", encoding="utf-8") as f:
            json.dump(seen, f)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
