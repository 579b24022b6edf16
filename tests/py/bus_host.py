"""The bus host of the callback programs of ``tests/golden/programs.py``: a NEURON program's
callbacks, ported onto a spikebus node through the protocol's sync points.

The program registers its callbacks at set-up; they become the node's schedule
(``init``, ``add_at``, ``scatter_gather``, ``every``, ``on_spike``).  At each sync point the
callbacks its reasons stand for run, in NEURON's order (the reasons' order, then ``at``
times in the report's order); their ``set`` and ``event`` calls (and ``at`` registrations)
become the actions of the next ``continue``; their reads are ``get`` requests, answered at
the sync point itself.  Like ``NeuronHost`` in ``generate.py``, it logs every callback
(``["cb", kind, h.t]``) and every value read (``["get", name, value]``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Callable

from spikebus_client import Controller, Done, Sync, event, schedule, set_, watch

Callback = Callable[[], Any]


class BusHost:
    def __init__(self, controller: Controller) -> None:
        self.c = controller
        self.log: list[list[Any]] = []
        self.t = 0.0
        self._setup = True
        self._init: dict[int, list[Callback]] = defaultdict(list)
        self._at: dict[float, deque[Callback]] = defaultdict(deque)
        self._at_setup: list[float] = []
        self._scatter_gather: tuple[int, Callback] | None = None
        self._every: tuple[int, Callback] | None = None
        self._on_spike: dict[str, Callback] = {}
        self._end: list[Callback] = []
        self._actions: list[dict[str, Any]] = []
        self._set_now: dict[str, float] = {}
        self.syncs = 0

    def _wrap(self, kind: str, cb: Callback) -> Callback:
        def f() -> None:
            self.log.append(["cb", kind, self.t])
            cb()

        return f

    # -- what a program calls --------------------------------------------------------------

    def get(self, name: str) -> float:
        # A parameter set earlier in this callback reads back as set (as in NEURON); the
        # node applies it with the next `continue`.
        v = self._set_now[name] if name in self._set_now else self.c.get([name]).values[name]
        self.log.append(["get", name, v])
        return v

    def set(self, name: str, value: float) -> None:
        self._actions.append(set_(name, value))
        self._set_now[name] = float(value)

    def event(self, target: str, te: float, weight: float | None = None) -> None:
        self._actions.append(event(target, te, weight))

    def init(self, kind: int, cb: Callback) -> None:
        self._init[kind].append(self._wrap(f"init_{kind}", cb))

    def at(self, T: float, cb: Callback) -> None:
        self._at[T].append(self._wrap(f"at:{T!r}", cb))
        if self._setup:
            self._at_setup.append(T)
        else:
            self._actions.append(schedule(add_at=[T]))

    def scatter_gather(self, cb: Callback, n: int = 1) -> None:
        assert self._scatter_gather is None, "one scatter_gather callback per program"
        self._scatter_gather = (n, self._wrap("scatter_gather", cb))

    def every(self, n: int, cb: Callback) -> None:
        assert self._every is None, "one per-step hook per program"
        self._every = (n, self._wrap("every", cb))

    def on_spike(self, source: str, cb: Callback) -> None:
        self._on_spike[source] = self._wrap(f"spike:{source}", cb)

    def at_end(self, cb: Callback) -> None:
        self._end.append(self._wrap("end", cb))

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Done:
        """Runs the registered program to ``done`` (the node must be at its start point)."""
        h = self.c.hello()
        assert h.pending.is_start, h.pending
        self._setup = False
        setup = schedule(
            init=sorted(self._init),
            add_at=self._at_setup,
            scatter_gather=self._scatter_gather[0] if self._scatter_gather else 0,
            every=self._every[0] if self._every else 0,
            on_spike=list(self._on_spike),
        )
        r: Sync | Done = self.c.cont([setup, watch(values=[], spikes=False)])
        while isinstance(r, Sync):
            self.syncs += 1
            self.t = r.t
            self._actions = []
            self._set_now = {}
            for reason in r.reasons:
                self._dispatch(reason, r)
            r = self.c.cont(self._actions)
        return r

    def _dispatch(self, reason: str, r: Sync) -> None:
        if reason == "at":
            for T in r.at:
                self._at[T].popleft()()
        elif reason.startswith("init_"):
            for cb in self._init[int(reason[5:])]:
                cb()
        elif reason == "spike":
            assert r.spike is not None
            self._on_spike[r.spike.source]()
        elif reason == "scatter_gather":
            assert self._scatter_gather is not None
            self._scatter_gather[1]()
        elif reason == "every":
            assert self._every is not None
            self._every[1]()
        elif reason == "end":
            for cb in self._end:
                cb()
        else:
            raise AssertionError(f"unexpected reason {reason!r} at t={r.t!r}")
