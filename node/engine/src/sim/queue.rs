//! The event queue. NEURON's TQueue (a splay tree with a cached least item) delivers events in
//! time order and, among equal times, in insertion order; a binary heap keyed by (time,
//! insertion number) gives the same order. Pushing allocates only when the heap grows.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What an event does when delivered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventKind {
    /// A NetCon delivers its weight to its target.
    NetCon(u32),
    /// An artificial cell's own `net_send` (cell index in `Sim::cells`, NMODL flag).
    SelfEvent { cell: u32, flag: u8 },
    /// An event injected from outside (`NetCon.event` semantics) into a target.
    External { target: super::Target, weight: f64 },
    /// A scheduled sync time (`Sim::add_at`), as NEURON queues a `CVode.event` (a HocEvent).
    At(u32),
}

#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub t: f64,
    seq: u64,
    pub kind: EventKind,
}

impl Event {
    /// Its insertion number: among events of equal time, the lower is delivered first.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed, so that the max-heap pops the earliest (then the first inserted) event.
    fn cmp(&self, other: &Self) -> Ordering {
        other.t.total_cmp(&self.t).then(other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default, Clone)]
pub struct EventQueue {
    heap: BinaryHeap<Event>,
    next_seq: u64,
}

impl EventQueue {
    pub fn clear(&mut self) {
        self.heap.clear();
        self.next_seq = 0;
    }

    pub fn push(&mut self, t: f64, kind: EventKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Event { t, seq, kind });
    }

    /// Removes and returns the earliest event if it is due by `til` (te <= til).
    pub fn pop_due(&mut self, til: f64) -> Option<Event> {
        if self.heap.peek()?.t <= til {
            self.heap.pop()
        } else {
            None
        }
    }

    /// Puts back an event just popped (its place in the order is its time and insertion number).
    pub fn unpop(&mut self, ev: Event) {
        self.heap.push(ev);
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Every waiting event in delivery order, and the next insertion number (what a snapshot
    /// holds: the heap's own layout depends on its history, this order does not).
    pub fn in_order(&self) -> (Vec<Event>, u64) {
        let mut v: Vec<Event> = self.heap.iter().copied().collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        (v, self.next_seq)
    }

    /// The queue `in_order` described.
    pub fn restore(&mut self, events: impl IntoIterator<Item = (f64, u64, EventKind)>, next_seq: u64) {
        self.heap.clear();
        self.heap.extend(events.into_iter().map(|(t, seq, kind)| Event { t, seq, kind }));
        self.next_seq = next_seq;
    }
}
