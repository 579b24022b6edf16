//! The event queue, as NEURON's TQueue (tqueue.cpp) orders it: a cached least item and a
//! splay tree that keeps equal times in the order they entered the tree. An insertion earlier
//! than the least item makes it the least and moves the old least into the tree (behind the
//! tree's items of its time); `move` (NMODL's `net_move`) follows TQueue::move case by case.
//! The tree is a B-tree keyed by (time, entry number), which gives the same order and, unlike
//! a heap, removes a moved item at once. Pushing allocates only when the tree grows.

use std::collections::BTreeMap;

/// What an event does when delivered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventKind {
    /// A NetCon delivers its weight to its target.
    NetCon(u32),
    /// An artificial cell's own `net_send` (cell index in `Model::cells`, NMODL flag).
    SelfEvent { cell: u32, flag: u8 },
    /// An event injected from outside (`NetCon.event` semantics) into a target.
    External { target: super::Target, weight: f64 },
    /// A scheduled sync time (`Sim::add_at`), as NEURON queues a `CVode.event` (a HocEvent).
    At(u32),
    /// The next element of a `Vector.play` (its index in `Model::plays`).
    Play(u32),
}

/// An event's identity, stable while it waits (NEURON's `TQItem*`).
pub type EventId = u64;

#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub t: f64,
    pub id: EventId,
    /// Its place among equal times in the tree (given when it enters the tree).
    seq: u64,
    pub kind: EventKind,
}

/// A tree key: time (total order; event times are never NaN), then entry number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key(i64, u64);

impl Key {
    fn of(ev: &Event) -> Key {
        // IEEE total order as a signed integer.
        let b = ev.t.to_bits() as i64;
        Key(b ^ ((((b >> 63) as u64) >> 1) as i64), ev.seq)
    }
}

#[derive(Debug, Default, Clone)]
pub struct EventQueue {
    least: Option<Event>,
    tree: BTreeMap<Key, Event>,
    next_seq: u64,
    next_id: EventId,
}

/// TQueue's `least_t()` of an empty queue.
const EMPTY_LEAST_T: f64 = 1e15;

impl EventQueue {
    pub fn clear(&mut self) {
        self.least = None;
        self.tree.clear();
        self.next_seq = 0;
        self.next_id = 0;
    }

    fn enqueue(&mut self, mut ev: Event) {
        ev.seq = self.next_seq;
        self.next_seq += 1;
        self.tree.insert(Key::of(&ev), ev);
    }

    fn dequeue(&mut self) -> Option<Event> {
        self.tree.pop_first().map(|(_, ev)| ev)
    }

    fn least_t(&self) -> f64 {
        self.least.map_or(EMPTY_LEAST_T, |l| l.t)
    }

    /// TQueue::insert.
    pub fn push(&mut self, t: f64, kind: EventKind) -> EventId {
        let id = self.next_id;
        self.next_id += 1;
        let ev = Event { t, id, seq: 0, kind };
        if t < self.least_t() {
            if let Some(old) = self.least.take() {
                self.enqueue(old);
            }
            self.least = Some(ev);
        } else {
            self.enqueue(ev);
        }
        id
    }

    /// TQueue::atomic_dq: removes and returns the least event if it is due by `til`.
    pub fn pop_due(&mut self, til: f64) -> Option<Event> {
        match self.least {
            Some(l) if l.t <= til => {
                self.least = self.dequeue();
                Some(l)
            }
            _ => None,
        }
    }

    /// Puts back the event just popped: it is the least again and the item that replaced it
    /// returns to the front of the tree, with its entry number (so the order is as before).
    pub fn unpop(&mut self, ev: Event) {
        if let Some(l) = self.least.replace(ev) {
            self.tree.insert(Key::of(&l), l);
        }
    }

    /// TQueue::move of event `id`, which waits for time `t`, to `tnew` (NMODL's `net_move`).
    /// False if no such event waits.
    pub fn move_to(&mut self, id: EventId, t: f64, tnew: f64) -> bool {
        if let Some(mut l) = self.least.filter(|l| l.id == id) {
            // move_least_nolock: it stays least unless the tree's first is now earlier.
            l.t = tnew;
            match self.tree.first_key_value() {
                Some((_, first)) if tnew > first.t => {
                    self.least = self.dequeue();
                    self.enqueue(l);
                }
                _ => self.least = Some(l),
            }
            return true;
        }
        let Some(key) = self.find(id, t) else { return false };
        let mut ev = self.tree.remove(&key).expect("found");
        ev.t = tnew;
        if tnew < self.least_t() {
            if let Some(old) = self.least.take() {
                self.enqueue(old);
            }
            self.least = Some(ev);
        } else {
            self.enqueue(ev);
        }
        true
    }

    /// The tree key of event `id` waiting for time `t`.
    fn find(&self, id: EventId, t: f64) -> Option<Key> {
        let probe = Key::of(&Event { t, id, seq: 0, kind: EventKind::At(0) });
        self.tree.range(probe..Key(probe.0, u64::MAX)).find(|(_, ev)| ev.id == id).map(|(k, _)| *k)
    }

    pub fn len(&self) -> usize {
        usize::from(self.least.is_some()) + self.tree.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(q: &mut EventQueue) -> Vec<u32> {
        let mut out = vec![];
        while let Some(ev) = q.pop_due(f64::INFINITY) {
            let EventKind::At(n) = ev.kind else { unreachable!() };
            out.push(n);
        }
        out
    }

    #[test]
    fn equal_times_in_tree_order() {
        let mut q = EventQueue::default();
        q.push(5.0, EventKind::At(0));
        q.push(5.0, EventKind::At(1));
        q.push(1.0, EventKind::At(2));
        // The old least (0) enters the tree behind 1, as in NEURON's TQueue.
        assert_eq!(order(&mut q), vec![2, 1, 0]);
        q.push(3.0, EventKind::At(0));
        q.push(3.0, EventKind::At(1));
        q.push(-1.0, EventKind::At(2));
        q.push(3.0, EventKind::At(3));
        assert_eq!(order(&mut q), vec![2, 1, 0, 3]);
    }

    #[test]
    fn moves_as_tqueue() {
        let mut q = EventQueue::default();
        let a = q.push(5.0, EventKind::At(0));
        let b = q.push(7.0, EventKind::At(1));
        q.push(7.0, EventKind::At(2));
        // b to before the least: it becomes least, the old least enters the tree.
        assert!(q.move_to(b, 7.0, 2.0));
        // a (in the tree now) to 7: behind 2.
        assert!(q.move_to(a, 5.0, 7.0));
        assert!(!q.move_to(a, 5.0, 1.0), "no event at its old time");
        assert_eq!(q.len(), 3);
        assert_eq!(order(&mut q), vec![1, 2, 0]);
        // The least moved later but not past the tree's first: it stays first.
        let a = q.push(1.0, EventKind::At(0));
        q.push(4.0, EventKind::At(1));
        assert!(q.move_to(a, 1.0, 4.0));
        assert_eq!(order(&mut q), vec![0, 1]);
        let a = q.push(1.0, EventKind::At(0));
        q.push(4.0, EventKind::At(1));
        assert!(q.move_to(a, 1.0, 4.5));
        assert_eq!(order(&mut q), vec![1, 0]);
    }

    #[test]
    fn unpop_restores_the_order() {
        let mut q = EventQueue::default();
        for (i, t) in [2.0, 1.0, 1.0, 3.0].into_iter().enumerate() {
            q.push(t, EventKind::At(i as u32));
        }
        let ev = q.pop_due(10.0).unwrap();
        q.unpop(ev);
        assert_eq!(order(&mut q), vec![1, 2, 0, 3]);
    }
}
