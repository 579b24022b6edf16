"""A ROS 2 bridge: a spikebus node's sync points, spikes and state as ROS 2 topics, and ROS 2
messages as actions at the next sync point, the node keeping the lockstep.

Run beside a node (needs rclpy, e.g. ``pip install ros-rclpy ros-rmw-fastrtps-cpp
ros-std-msgs``, or a ROS 2 installation)::

    spikebus run --control tcp://127.0.0.1:5555 --pub tcp://127.0.0.1:5556 --wait-subscribers 1 &
    python3 -m spikebus_client.ros2_bridge --control tcp://127.0.0.1:5555 --pub tcp://127.0.0.1:5556 \\
        --every-ms 1 --watch soma.v --lockstep

The bridge is the node's controller: it drives the run from sync point to sync point (the
schedule given by ``--every-ms``/``--every-steps``/``--scatter-gather``/``--at``/``--on-spike``,
or set by agents' ``schedule`` actions) and publishes, under ``--namespace`` (default
``/spikebus``):

======================  =======================  ===================================================
topic                   type                     what
======================  =======================  ===================================================
``sync``                std_msgs/String (JSON)   each sync point: ``{"point": k, "t", "step", "reasons",
                                                 "at", "spike", "values", "spikes"}`` (the node's report;
                                                 k counts the points from 1)
``spikes``              std_msgs/String (JSON)   each spike: ``{"source", "t"}``
``state``               std_msgs/Float64MultiArray  with ``--pub``: each state message of the node's
                                                 stream, row-major, ``layout.dim[0]`` the samples,
                                                 ``dim[1]`` the columns, labelled ``step,t,<signals>``
``done``                std_msgs/String (JSON)   the end of the run: ``{"reason", "t", "step", ...}``
``errors``              std_msgs/String (JSON)   actions the node refused: ``{"point", "code",
                                                 "message", "field"}`` (the run goes on without them)
======================  =======================  ===================================================

and turns messages on these into actions at the next sync point:

- ``set`` (String JSON ``{"name": "nc.weight", "value": 0.02}``): a parameter;
- ``event`` (String JSON ``{"target": "syn", "t": 12.5, "weight": 0.05}``): an event
  (``weight`` optional for a NetCon target);
- ``command`` (String JSON ``{"point": k, "actions": [...]}``): any actions of the protocol
  (``set``, ``event``, ``schedule``, ``watch``, ``stop``; ``schemas/README.md``) for sync
  point k.  With ``--lockstep`` the bridge waits at each point k for the command of k (an
  agent that acts at every point: a ROS 2 program gets NEURON's exact numbers); without
  it, the bridge never waits, and commands of earlier points are applied at the next one.

Why std_msgs only: a custom message needs its interface package generated (rosidl, CMake,
colcon), which a pip-installed rclpy cannot do; std_msgs is in every ROS 2 installation and
every tool (``ros2 topic echo``, rosbag) reads it.  JSON carries names (signals, sources) that
numeric arrays cannot, and Python writes each double in its shortest round-trip form, so
values cross ROS bit for bit.  Topics are reliable with a history of ``--depth`` messages;
``sync`` and ``command`` also keep their last messages for late joiners (transient local).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from typing import Any

from .actions import Action, event, schedule, set_, watch
from .controller import Controller, steps_of
from .messages import Done, NodeUnreachable, SpikebusError, SpikebusTimeout, Sync
from .stream import Observer

__all__ = ["Bridge", "main", "sync_json"]

log = logging.getLogger("spikebus_client.ros2_bridge")


def sync_json(point: int, s: Sync) -> str:
    """The ``sync`` topic's JSON for sync point number ``point`` (exact doubles)."""
    return json.dumps({
        "point": point,
        "t": s.t,
        "step": s.step,
        "reasons": list(s.reasons),
        "at": list(s.at),
        "spike": None if s.spike is None else {"source": s.spike.source, "t": s.spike.t},
        "values": s.values,
        "spikes": [{"source": sp.source, "t": sp.t} for sp in s.spikes],
    })


class Bridge:
    """The ROS 2 node (rclpy) between ROS topics and a spikebus controller.

    Args:
        controller: a :class:`~spikebus_client.Controller` on the node's control endpoint.
        namespace: the topics' namespace.
        lockstep: wait at each sync point for the ``command`` of that point.
        agent_timeout: with ``lockstep``, the longest wait for a command, in seconds.
        depth: the history depth of every topic.
        pub: the node's pub endpoint, to forward its state stream on ``state``.
    """

    def __init__(self, controller: Controller, namespace: str = "/spikebus", lockstep: bool = False,
                 agent_timeout: float = 30.0, depth: int = 1000, pub: str | None = None) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float64MultiArray, String

        self._ctl = controller
        self._lockstep = lockstep
        self._agent_timeout = agent_timeout
        self._pub_endpoint = pub
        self._String = String
        self._Float64MultiArray = Float64MultiArray
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node("spikebus_bridge", namespace=namespace)
        """The rclpy node (``spikebus_bridge`` in ``namespace``)."""
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        stream = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        latched = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._sync_pub = self.node.create_publisher(String, "sync", latched)
        self._spikes_pub = self.node.create_publisher(String, "spikes", stream)
        self._state_pub = self.node.create_publisher(Float64MultiArray, "state", stream)
        self._done_pub = self.node.create_publisher(String, "done", latched)
        self._errors_pub = self.node.create_publisher(String, "errors", stream)
        self._queued: list[Action] = []
        self._commands: dict[int, list[Action]] = {}
        self.node.create_subscription(String, "set", self._on_set, stream)
        self.node.create_subscription(String, "event", self._on_event, stream)
        self.node.create_subscription(String, "command", self._on_command, latched)
        self.errors: list[str] = []
        """Messages refused so far (malformed ones, and actions the node refused)."""

    # -- command topics --------------------------------------------------------------

    def _decode(self, topic: str, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as e:
            self._refuse(topic, f"not JSON: {e}")
            return None

    def _refuse(self, topic: str, why: str) -> None:
        msg = f"{topic}: {why}"
        log.warning("%s", msg)
        self.errors.append(msg)

    def _on_set(self, msg: Any) -> None:
        m = self._decode("set", msg.data)
        try:
            if m is not None:
                self._queued.append(set_(m["name"], m["value"]))
        except (KeyError, TypeError) as e:
            self._refuse("set", f"expected {{\"name\": ..., \"value\": ...}}: {e!r}")

    def _on_event(self, msg: Any) -> None:
        m = self._decode("event", msg.data)
        try:
            if m is not None:
                self._queued.append(event(m["target"], m["t"], m.get("weight")))
        except (KeyError, TypeError, AttributeError) as e:
            self._refuse("event", f"expected {{\"target\": ..., \"t\": ..., \"weight\": ...}}: {e!r}")

    def _on_command(self, msg: Any) -> None:
        m = self._decode("command", msg.data)
        if m is None:
            return
        if not isinstance(m, dict) or not isinstance(m.get("point"), int) or not isinstance(m.get("actions", []), list):
            self._refuse("command", "expected {\"point\": k, \"actions\": [...]}")
            return
        self._commands.setdefault(m["point"], []).extend(m.get("actions", []))

    # -- running -----------------------------------------------------------------------

    def wait_for_agents(self, n: int, timeout: float) -> None:
        """Wait (spinning ROS) until ``n`` subscribers read ``sync`` and, with ``lockstep``,
        ``n`` publishers write ``command``: ROS discovery as a handshake."""
        deadline = time.monotonic() + timeout
        while True:
            subs = self._sync_pub.get_subscription_count()
            pubs = self.node.count_publishers(self.node.resolve_topic_name("command"))
            if subs >= n and (not self._lockstep or pubs >= n):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{subs} subscriber(s) of sync, {pubs} publisher(s) of command after {timeout} s; "
                                   f"waiting for {n}")
            self._executor.spin_once(timeout_sec=0.05)

    def _forward_state(self, stop: threading.Event) -> None:
        from std_msgs.msg import MultiArrayDimension

        assert self._pub_endpoint is not None
        # One subscription to everything (the node's --wait-subscribers counts subscriptions).
        with Observer(self._pub_endpoint) as obs:
            self._state_ready.set()
            while not stop.is_set():
                m = obs.recv(200)
                if m is None:
                    continue
                if m.topic == "done":
                    return
                if m.topic != "state":
                    continue
                d = m.data
                names = [k for k, v in d.items() if k not in ("seq", "step", "t") and isinstance(v, list)]
                cols = [d["step"], d["t"], *(d[n] for n in names)]
                rows = len(d["t"])
                msg = self._Float64MultiArray()
                msg.layout.dim = [
                    MultiArrayDimension(label="samples", size=rows, stride=rows * len(cols)),
                    MultiArrayDimension(label=",".join(["step", "t", *names]), size=len(cols), stride=len(cols)),
                ]
                msg.data = [float(c[i]) for i in range(rows) for c in cols]
                self._state_pub.publish(msg)

    def run(self, setup: list[Action], wait_agents: int = 0, discovery_timeout: float = 30.0) -> Done:
        """Drive the run to its end: ``setup`` with the first ``continue``, then each sync
        point published and answered with the actions that came for it."""
        if wait_agents:
            self.wait_for_agents(wait_agents, discovery_timeout)
        stop = threading.Event()
        forward = None
        if self._pub_endpoint is not None:
            self._state_ready = threading.Event()
            forward = threading.Thread(target=self._forward_state, args=(stop,), daemon=True)
            forward.start()
            self._state_ready.wait(10)
        try:
            h = self._ctl.hello()
            r: Sync | Done = self._ctl.cont(setup) if h.pending.is_start else h.pending
            point = 0
            while isinstance(r, Sync):
                point += 1
                self._sync_pub.publish(self._String(data=sync_json(point, r)))
                for sp in r.spikes:
                    self._spikes_pub.publish(self._String(data=json.dumps({"source": sp.source, "t": sp.t})))
                if self._lockstep:
                    deadline = time.monotonic() + self._agent_timeout
                    while point not in self._commands:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError(f"no command for sync point {point} (t={r.t!r}) within "
                                               f"{self._agent_timeout} s")
                        self._executor.spin_once(timeout_sec=min(left, 1.0))
                else:
                    self._executor.spin_once(timeout_sec=0)
                actions = self._queued + [a for k in sorted(self._commands) if k <= point for a in self._commands.pop(k)]
                self._queued = []
                try:
                    r = self._ctl.cont(actions)
                except SpikebusError as e:
                    if not actions:
                        raise
                    # The node refused the agents' actions (and applied none): say so on
                    # `errors`, and go on without them.
                    self._refuse("actions", f"refused at sync point {point}: {e}")
                    self._errors_pub.publish(self._String(data=json.dumps(
                        {"point": point, "code": e.code, "message": e.message, "field": e.field})))
                    r = self._ctl.cont()
            if forward is not None:
                # The state stream ends with the node's own done: forwarded in full first.
                forward.join(10)
            self._done_pub.publish(self._String(data=json.dumps({k: v for k, v in r.raw.items() if k != "id"})))
            return r
        finally:
            stop.set()
            if forward is not None:
                forward.join(5)

    def close(self) -> None:
        """Flush and destroy the ROS node."""
        import rclpy

        # Give late messages (done) a chance to reach reliable readers before leaving.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and self._done_pub.get_subscription_count() > 0:
            if self._done_pub.wait_for_all_acked(rclpy.duration.Duration(seconds=0.5)):
                break
        self.node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    """``python -m spikebus_client.ros2_bridge --help``."""
    p = argparse.ArgumentParser(prog="python -m spikebus_client.ros2_bridge",
                                description="Bridge a spikebus node to ROS 2 topics (std_msgs).")
    p.add_argument("--control", required=True, metavar="ENDPOINT", help="the node's control endpoint")
    p.add_argument("--pub", metavar="ENDPOINT", help="the node's pub endpoint: forward its state stream on `state`")
    p.add_argument("--namespace", default="/spikebus", help="the topics' namespace (default: %(default)s)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--every-ms", type=float, metavar="MS", help="a sync point at every step boundary MS apart")
    g.add_argument("--every-steps", type=int, metavar="N", help="a sync point at every Nth step boundary")
    p.add_argument("--scatter-gather", type=int, default=0, metavar="N",
                   help="a sync point inside every Nth step (CVode.extra_scatter_gather)")
    p.add_argument("--at", type=float, action="append", default=[], metavar="T", help="a sync point at T (repeatable)")
    p.add_argument("--on-spike", action="append", default=[], metavar="SOURCE", help="a sync point at each spike of SOURCE")
    p.add_argument("--watch", default="", metavar="NAMES", help="values each sync report carries (comma-separated)")
    p.add_argument("--lockstep", action="store_true", help="wait at each sync point for the agent's `command`")
    p.add_argument("--wait-agents", type=int, default=0, metavar="N",
                   help="before starting, wait until N agents have subscribed (and, with --lockstep, publish commands)")
    p.add_argument("--agent-timeout", type=float, default=30.0, metavar="S",
                   help="with --lockstep: the longest wait for a command (default: %(default)s)")
    p.add_argument("--timeout-ms", type=int, default=60_000, help="the controller's per-request timeout")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="ros2_bridge: %(message)s")
    try:
        import rclpy  # noqa: F401
    except ImportError:
        print("ros2_bridge: rclpy is not installed: pip install ros-rclpy ros-rmw-fastrtps-cpp ros-std-msgs "
              "(Linux x86_64, Python 3.10 to 3.13), or source a ROS 2 installation", file=sys.stderr)
        return 2
    with Controller(args.control, timeout_ms=args.timeout_ms, client="ros2-bridge") as ctl:
        try:
            h = ctl.hello()
        except NodeUnreachable as e:
            print(f"ros2_bridge: {e}", file=sys.stderr)
            return 2
        every = steps_of(args.every_ms, h.dt) if args.every_ms is not None else (args.every_steps or 0)
        setup: list[Action] = [
            schedule(every=every, scatter_gather=args.scatter_gather, add_at=args.at or None, on_spike=args.on_spike),
            watch(values=[n for n in args.watch.split(",") if n]),
        ]
        bridge = Bridge(ctl, namespace=args.namespace, lockstep=args.lockstep, agent_timeout=args.agent_timeout,
                        pub=args.pub)
        try:
            done = bridge.run(setup, wait_agents=args.wait_agents)
        except (SpikebusError, SpikebusTimeout, TimeoutError) as e:
            print(f"ros2_bridge: {e}", file=sys.stderr)
            return 1
        finally:
            bridge.close()
    print(f"ros2_bridge: done ({done.reason}) at t={done.t!r}, step {done.step}; refused messages: {len(bridge.errors)}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
