//! The event queue, as NEURON's TQueue (tqueue.cpp) orders it: a cached least item and a
//! splay tree that keeps equal times in the order they entered the tree. An insertion earlier
//! than the least item makes it the least and moves the old least into the tree (behind the
//! tree's items of its time); `move` (NMODL's `net_move`) follows TQueue::move case by case.
//! The tree is a binary heap keyed by (time, entry number), which pops in the same order. A
//! moved item enters the heap again with a new entry number; its old entry stays behind, dead,
//! and is dropped when it reaches the top (`Moved` tells which entry of an event is alive).
//! The heap holds only keys and slot numbers (24 bytes an entry); the events wait in slots
//! beside it: a pop moves an entry down the heap's levels, and a network of 10^4 to 10^5
//! cells keeps as many events waiting. With whole events (64 bytes) in the heap, its pops were
//! 6% of the calling thread's time at 10^4 cells on two threads, time the other step thread
//! spends waiting (perf); the slots took 10^5 cells from 13.3-15.7 to 11.8-13.8 ns per
//! cell-step on one thread (`step_time`).
//! The heap holds only the entries of the nearest bucket of time (`Tree`, 1 ms); later ones
//! wait in a list per bucket until the heap runs empty: pops walk a short heap in cache
//! (10^4 cells: the heap's pops from 2.7% to 0.7% of a two-thread run's samples, perf).
//! Once the heap and the buckets have grown to the run's largest, nothing is allocated.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

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

impl Event {
    /// Its entry number in the tree: among events of equal time there, the lower is
    /// delivered first.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// An event as `EventQueue::live` gave it (a restored snapshot's).
    pub fn restored(t: f64, id: EventId, seq: u64, kind: EventKind) -> Event {
        Event { t, id, seq, kind }
    }
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

/// A heap entry: the event's key and its slot (keys are unique: entry numbers are).
type Entry = (Key, u32);

/// An event moved while in the tree: the entry number of its live entry (`NOT_IN_TREE` while
/// it is the least or delivered) and how many dead entries of it the heap still holds.
#[derive(Debug, Clone, Copy)]
struct Moved {
    live: u64,
    dead: u32,
}

const NOT_IN_TREE: u64 = u64::MAX;

#[derive(Debug, Default, Clone)]
pub struct EventQueue {
    least: Option<Event>,
    tree: Tree,
    /// The events of the heap's entries, by slot.
    slots: Vec<Event>,
    /// Slots of entries that left the heap.
    free: Vec<u32>,
    /// The events with dead entries in `tree` (few: an artificial cell's pending self-event).
    moved: HashMap<EventId, Moved>,
    /// Dead entries in `tree`.
    dead: usize,
    next_seq: u64,
    next_id: EventId,
}

/// TQueue's `least_t()` of an empty queue.
const EMPTY_LEAST_T: f64 = 1e15;

impl EventQueue {
    pub fn clear(&mut self) {
        self.least = None;
        self.tree.clear();
        self.slots.clear();
        self.free.clear();
        self.moved.clear();
        self.dead = 0;
        self.next_seq = 0;
        self.next_id = 0;
    }

    fn enqueue(&mut self, mut ev: Event) {
        ev.seq = self.next_seq;
        self.next_seq += 1;
        self.insert(ev);
    }

    /// Into the tree with the entry number it has.
    fn insert(&mut self, ev: Event) {
        if let Some(m) = self.moved.get_mut(&ev.id) {
            m.live = ev.seq;
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = ev;
                s
            }
            None => {
                self.slots.push(ev);
                (self.slots.len() - 1) as u32
            }
        };
        self.tree.push((Key::of(&ev), slot), ev.t);
    }

    /// Takes the heap's top entry out: its event, its slot freed.
    fn pop_top(&mut self) -> Option<Event> {
        let (_, slot) = self.tree.pop()?;
        self.free.push(slot);
        Some(self.slots[slot as usize])
    }

    fn top(&mut self) -> Option<&Event> {
        self.tree.peek().map(|(_, slot)| &self.slots[slot as usize])
    }

    /// Whether the top entry is dead; if so it is dropped.
    fn drop_dead_top(&mut self) -> bool {
        let Some(&ev) = self.top() else { return false };
        let Some(m) = self.moved.get_mut(&ev.id) else { return false };
        if m.live == ev.seq {
            return false;
        }
        m.dead -= 1;
        if m.dead == 0 && m.live == NOT_IN_TREE {
            self.moved.remove(&ev.id);
        }
        self.dead -= 1;
        self.pop_top();
        true
    }

    /// The tree's first live event.
    fn first(&mut self) -> Option<&Event> {
        while self.drop_dead_top() {}
        self.top()
    }

    fn dequeue(&mut self) -> Option<Event> {
        while self.drop_dead_top() {}
        let ev = self.pop_top()?;
        if let Some(m) = self.moved.get_mut(&ev.id) {
            // its live entry leaves the tree
            if m.dead == 0 {
                self.moved.remove(&ev.id);
            } else {
                m.live = NOT_IN_TREE;
            }
        }
        Some(ev)
    }

    pub fn least_t(&self) -> f64 {
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
            self.insert(l);
        }
    }

    /// TQueue::move of event `id` (of `kind`) to `tnew` (NMODL's `net_move`). The event must
    /// be waiting: an artificial cell moves only its pending self-event.
    pub fn move_to(&mut self, id: EventId, kind: EventKind, tnew: f64) {
        if let Some(mut l) = self.least.filter(|l| l.id == id) {
            // move_least_nolock: it stays least unless the tree's first is now earlier.
            l.t = tnew;
            match self.first() {
                Some(first) if tnew > first.t => {
                    self.least = self.dequeue();
                    self.enqueue(l);
                }
                _ => self.least = Some(l),
            }
            return;
        }
        // Its entry in the tree dies; the event enters again (as TQueue's remove and insert).
        let m = self.moved.entry(id).or_insert(Moved { live: NOT_IN_TREE, dead: 0 });
        m.dead += 1;
        m.live = NOT_IN_TREE;
        self.dead += 1;
        let ev = Event { t: tnew, id, seq: 0, kind };
        if tnew < self.least_t() {
            if let Some(old) = self.least.take() {
                self.enqueue(old);
            }
            self.least = Some(ev);
        } else {
            self.enqueue(ev);
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.least.is_some()) + self.tree.len() - self.dead
    }

    /// The waiting events as a snapshot holds them: the least item, the tree's live entries in
    /// their order (dead entries of moved events are left out: they only ever get dropped),
    /// and the next entry number and event id. The heap's own layout depends on its history;
    /// this does not.
    pub fn live(&self) -> (Option<Event>, Vec<Event>, u64, EventId) {
        let alive = |ev: &Event| self.moved.get(&ev.id).is_none_or(|m| m.live == ev.seq);
        let mut tree: Vec<Event> = self.tree.iter().map(|(_, slot)| self.slots[slot as usize]).filter(alive).collect();
        tree.sort_unstable_by_key(Key::of);
        (self.least, tree, self.next_seq, self.next_id)
    }

    /// The queue `live` described.
    pub fn restore(&mut self, least: Option<Event>, tree: Vec<Event>, next_seq: u64, next_id: EventId) {
        self.clear();
        self.least = least;
        tree.into_iter().for_each(|ev| self.insert(ev));
        self.next_seq = next_seq;
        self.next_id = next_id;
    }
}

/// Width of a far bucket, ms (a power of two: `t / width` rounds monotonically, and exactly).
const BUCKET_MS: f64 = 1.0;

/// The tree's entries in two levels, delivered in the order of one heap of them all: a heap
/// of the entries in buckets up to `near` (times below `(near + 1) * BUCKET_MS`) and, for
/// later buckets, unordered lists by bucket. A bucket enters the heap (heapified in one
/// pass) when the heap runs empty; as bucket numbers grow with time, every entry in the heap
/// is earlier than every entry outside it, so the heap's top is the first of all. Why: a
/// network keeps most of its events far ahead (a NetStim's next spike, a delayed NetCon),
/// and a pop costs a walk down the heap's levels; with only the next bucket in the heap, the
/// walk is short and stays in cache, while the far events wait in lists where adding one
/// costs a push.
#[derive(Debug, Default, Clone)]
struct Tree {
    heap: BinaryHeap<Reverse<Entry>>,
    /// The last bucket whose entries go to the heap (None: the heap is empty and no bucket
    /// has been taken since the tree was cleared).
    near: Option<i64>,
    far: BTreeMap<i64, Vec<Entry>>,
    far_len: usize,
    /// Emptied bucket lists, kept for new buckets (nothing allocated once the run's buckets
    /// exist).
    spare: Vec<Vec<Entry>>,
}

fn bucket(t: f64) -> i64 {
    // Saturating for times beyond i64 (a NetStim's 1e9-th spike is not one).
    (t / BUCKET_MS).floor() as i64
}

impl Tree {
    fn clear(&mut self) {
        self.heap.clear();
        self.near = None;
        for (_, mut v) in std::mem::take(&mut self.far) {
            v.clear();
            self.spare.push(v);
        }
        self.far_len = 0;
    }

    fn len(&self) -> usize {
        self.heap.len() + self.far_len
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, e: Entry, t: f64) {
        let b = bucket(t);
        match self.near {
            Some(near) if b > near => {
                let spare = &mut self.spare;
                self.far.entry(b).or_insert_with(|| spare.pop().unwrap_or_default()).push(e);
                self.far_len += 1;
            }
            _ => {
                // The first entry since the tree was cleared: its bucket is the near one.
                self.near.get_or_insert(b);
                self.heap.push(Reverse(e))
            }
        }
    }

    /// Refills an empty heap with the first far bucket.
    fn refill(&mut self) {
        if !self.heap.is_empty() {
            return;
        }
        let Some((b, mut list)) = self.far.pop_first() else { return };
        self.far_len -= list.len();
        let mut v = std::mem::take(&mut self.heap).into_vec();
        v.clear();
        v.extend(list.drain(..).map(Reverse));
        self.heap = BinaryHeap::from(v);
        self.near = Some(b);
        self.spare.push(list);
    }

    fn peek(&mut self) -> Option<Entry> {
        self.refill();
        self.heap.peek().map(|r| r.0)
    }

    fn pop(&mut self) -> Option<Entry> {
        self.refill();
        self.heap.pop().map(|r| r.0)
    }

    /// Every entry, in no order.
    fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.heap.iter().map(|r| r.0).chain(self.far.values().flatten().copied())
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
        let k = |n| EventKind::At(n);
        let a = q.push(5.0, k(0));
        let b = q.push(7.0, k(1));
        q.push(7.0, k(2));
        // b to before the least: it becomes least, the old least enters the tree.
        q.move_to(b, k(1), 2.0);
        // a (in the tree now) to 7: behind 2.
        q.move_to(a, k(0), 7.0);
        assert_eq!(q.len(), 3);
        assert_eq!(order(&mut q), vec![1, 2, 0]);
        // The least moved later but not past the tree's first: it stays first.
        let a = q.push(1.0, k(0));
        q.push(4.0, k(1));
        q.move_to(a, k(0), 4.0);
        assert_eq!(order(&mut q), vec![0, 1]);
        let a = q.push(1.0, k(0));
        q.push(4.0, k(1));
        q.move_to(a, k(0), 4.5);
        assert_eq!(order(&mut q), vec![1, 0]);
        assert_eq!(q.len(), 0);
        assert!(q.moved.is_empty() && q.dead == 0, "no dead entries left behind");
    }

    /// TQueue as the splay tree orders it, written plainly: a least item and a list searched
    /// for its least (time, entry number); a move removes the item from the list.
    #[derive(Default)]
    struct Plain {
        least: Option<(f64, u64, u64)>,
        list: Vec<(f64, u64, u64)>,
        seq: u64,
    }

    impl Plain {
        fn enqueue(&mut self, t: f64, id: u64) {
            self.list.push((t, self.seq, id));
            self.seq += 1;
        }
        fn dequeue(&mut self) -> Option<(f64, u64, u64)> {
            let i = (0..self.list.len()).min_by(|&i, &j| {
                let (a, b) = (self.list[i], self.list[j]);
                a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
            })?;
            Some(self.list.remove(i))
        }
        fn insert(&mut self, t: f64, id: u64) {
            match self.least {
                Some(l) if t < l.0 => {
                    self.enqueue(l.0, l.2);
                    self.least = Some((t, 0, id));
                }
                None => self.least = Some((t, 0, id)),
                _ => self.enqueue(t, id),
            }
        }
        fn pop_due(&mut self, til: f64) -> Option<(f64, u64)> {
            let l = self.least.filter(|l| l.0 <= til)?;
            self.least = self.dequeue();
            Some((l.0, l.2))
        }
        fn unpop(&mut self, t: f64, id: u64) {
            if let Some(l) = self.least.replace((t, 0, id)) {
                self.list.push(l);
            }
        }
        fn move_to(&mut self, id: u64, tnew: f64) {
            if let Some(l) = self.least.filter(|l| l.2 == id) {
                let first = (0..self.list.len()).map(|i| self.list[i]).min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                match first {
                    Some(f) if tnew > f.0 => {
                        self.least = self.dequeue();
                        self.enqueue(tnew, id);
                    }
                    _ => self.least = Some((tnew, l.1, id)),
                }
                return;
            }
            let i = self.list.iter().position(|e| e.2 == id).expect("waiting");
            self.list.remove(i);
            self.insert(tnew, id);
        }
    }

    /// Random pushes (many equal times, some several buckets ahead), moves (of events in the
    /// tree and of the least, again and again), deliveries and unpops: the two-level tree
    /// with dead entries delivers as the plain TQueue does, and leaves nothing dead behind.
    #[test]
    fn heap_with_dead_entries_is_tqueue() {
        let mut x: u64 = 0x2545F4914F6CDD1D;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _round in 0..50 {
            let (mut q, mut p) = (EventQueue::default(), Plain::default());
            let mut waiting: Vec<u64> = vec![];
            let mut now = 0.0;
            for _ in 0..400 {
                match rnd(10) {
                    0..=3 => {
                        // Mostly near (several per bucket), some buckets ahead.
                        let t = now + if rnd(4) == 0 { rnd(16) as f64 * 0.625 } else { rnd(8) as f64 * 0.25 };
                        let id = q.push(t, EventKind::At(0));
                        p.insert(t, id);
                        waiting.push(id);
                    }
                    4..=6 if !waiting.is_empty() => {
                        let id = waiting[rnd(waiting.len() as u64) as usize];
                        let t = now + rnd(24) as f64 * 0.25;
                        q.move_to(id, EventKind::At(0), t);
                        p.move_to(id, t);
                    }
                    _ => {
                        let til = now + rnd(3) as f64 * 0.25;
                        let (a, b) = (q.pop_due(til), p.pop_due(til));
                        assert_eq!(a.map(|e| (e.t, e.id)), b);
                        if let Some(e) = a {
                            if rnd(4) == 0 {
                                q.unpop(e);
                                p.unpop(e.t, e.id);
                            } else {
                                waiting.retain(|&w| w != e.id);
                                now = f64::max(now, e.t);
                            }
                        }
                    }
                }
                assert_eq!(q.len(), p.list.len() + usize::from(p.least.is_some()));
            }
            while let Some(b) = p.pop_due(f64::INFINITY) {
                assert_eq!(q.pop_due(f64::INFINITY).map(|e| (e.t, e.id)), Some(b));
            }
            assert!(q.pop_due(f64::INFINITY).is_none());
            assert!(q.moved.is_empty() && q.dead == 0 && q.tree.is_empty());
        }
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
