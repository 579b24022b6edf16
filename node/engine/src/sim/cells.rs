//! Cells as lanes: the model's cells (a root section, the sections under it, the point
//! processes on them) grouped by identical structure, each group stored in tiles of up to
//! `TILE` cells whose arrays hold a value per cell side by side (`[node * lanes + lane]`), so
//! that every kernel runs the same operations on all the cells of a tile at once, and each
//! cell's arithmetic is exactly NEURON's.
//!
//! A cell's nodes are numbered as NEURON numbers them (`reorder_secorder`): its root node
//! first, then a breadth-first walk of its sections, each section's nodes in order, children
//! visited by connection position on the parent, the most recently connected first among
//! equal positions. NEURON numbers all root nodes of the model first, then each cell's other
//! nodes; restricted to one cell that is the same order, so every sum over a cell's nodes
//! (the matrix, the tree solve) is done in NEURON's order.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::ops::Range;
use std::sync::Arc;

use crate::mech::block::lane_count;
use crate::mech::col::{Col, Interner};
use crate::mech::{lanes, Block, Cx, MechDef, MechId, MechKind, Rates};
use crate::model::{FastHash, Model, SectionSpec, SEC_DIAM};

/// The most cells in one tile. A tile is the unit of work of a thread; 128 cells' arrays stay
/// in the second-level cache while a step runs over them, and the loops over lanes are long
/// enough that their set-up costs little.
pub const TILE: usize = 128;

/// Cells per tile for a group of `cells` cells run by `threads` threads: `TILE`, or fewer so
/// that every thread gets about two tiles of the group.
pub fn tile_lanes(cells: usize, threads: usize) -> usize {
    if threads <= 1 {
        TILE
    } else {
        cells.div_ceil(2 * threads).clamp(8, TILE)
    }
}

/// A section of a cell, in cell-local nodes: segment j's center is node `first + j`, the 1 end
/// is node `first + nseg`, its 0 end sits on `parent_node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalSec {
    pub first: u32,
    pub nseg: u32,
    pub parent_node: u32,
}

impl LocalSec {
    /// NEURON's `node_index`: the segment holding x (0 <= x <= 1).
    pub fn segment_node(&self, x: f64) -> u32 {
        let n = f64::from(self.nseg);
        let mut i = (n * x) as u32;
        if i == self.nseg {
            i = self.nseg - 1;
        }
        self.first + i
    }

    /// NEURON's `node_exact`: like `segment_node`, but x = 0 and x = 1 are the end points.
    pub fn node_at(&self, x: f64) -> u32 {
        if x <= 0.0 {
            self.parent_node
        } else if x >= 1.0 {
            self.first + self.nseg
        } else {
            self.segment_node(x)
        }
    }

    pub fn end_node(&self) -> u32 {
        self.first + self.nseg
    }
}

/// The structure shared by the cells of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    pub nnode: u32,
    /// Each node's parent (node 0, the root, has none: u32::MAX).
    pub parent: Vec<u32>,
    /// Each node's children in increasing order: `kids[kid_start[i]..kid_start[i + 1]]`
    /// (from `parent`; see `Tile::matrix_solve_one`).
    pub kid_start: Vec<u32>,
    pub kids: Vec<u32>,
    /// Each node's entry in `cap_nodes` (u32::MAX: none).
    pub cap_of: Vec<u32>,
    /// The cell's sections in NEURON's order.
    pub sections: Vec<LocalSec>,
    /// Membrane mechanisms and point processes present, in NEURON's type order, each with the
    /// node of each instance (by node, newest point first on a shared node).
    pub blocks: Vec<(MechId, Vec<u32>)>,
    /// Per local point process (the cell's points in model order): its block and instance.
    pub points: Vec<(u16, u32)>,
    /// Per local section: the density mechanisms inserted (ions included).
    pub inserted: Vec<Vec<MechId>>,
}

impl Template {
    pub fn nsec(&self) -> usize {
        self.sections.len()
    }

    /// The nodes that carry membrane capacitance: every section's segment centers.
    pub fn cap_nodes(&self) -> impl Iterator<Item = u32> + '_ {
        self.sections.iter().flat_map(|s| s.first..s.first + s.nseg)
    }

    /// Section j's entries in the capacitance list.
    pub fn cap_range(&self, j: usize) -> Range<usize> {
        let start: u32 = self.sections[..j].iter().map(|s| s.nseg).sum();
        start as usize..(start + self.sections[j].nseg) as usize
    }

    /// The instances of block `b` on section j's segments (a density mechanism's instances
    /// follow the nodes, and a section's nodes are consecutive).
    pub fn instances(&self, b: usize, j: usize) -> Range<usize> {
        let s = self.sections[j];
        let nodes = &self.blocks[b].1;
        let start = nodes.partition_point(|&n| n < s.first);
        let end = nodes.partition_point(|&n| n < s.first + s.nseg);
        start..end
    }
}

/// Where a section of the model lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecAt {
    pub tile: u32,
    pub lane: u32,
    /// Its index among its cell's sections (`Template::sections`).
    pub local: u32,
}

/// Where a point process of the model lives: a tile, a block, an entry `i * lanes + lane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointAt {
    pub tile: u32,
    pub block: u16,
    pub at: u32,
}

/// A group's cells, side by side.
#[derive(Debug, Clone)]
pub struct Tile {
    pub template: Arc<Template>,
    pub lanes: usize,
    /// The model sections of each (local section, lane): `[j * lanes + lane]`.
    pub secs: Vec<u32>,
    /// The model points of each (local point, lane).
    pub points: Vec<u32>,
    pub v: Vec<f64>,
    /// The axial coefficients of each node and its parent (NEURON's NODEA, NODEB).
    pub a: Col,
    pub b: Col,
    pub area: Vec<f64>,
    pub(crate) rinv: Vec<f64>,
    /// cm of each capacitance node (`Template::cap_nodes`) and lane.
    pub cm: Col,
    cap_nodes: Vec<u32>,
    pub blocks: Vec<Block>,
    /// The spike detector of each section (at its middle, NEURON's default for a NetCon
    /// source): its node, and per (section, lane) its threshold, whether v is above it now
    /// (kept up to date with v and the threshold), and whether it was at the last check.
    det_nodes: Vec<u32>,
    pub thresh: Col,
    pub above: Vec<bool>,
    pub flag: Vec<bool>,
    /// Some detector's `above` may differ from its `flag` (false: `crossings` has nothing to
    /// do).
    pub changed: bool,
    /// The crossings found inside a window of steps (`Work::Window`): the window's step after
    /// which each was found, and its model section; fired by the calling thread after it.
    pub window_fired: Vec<(u32, u32)>,
    /// The values a window samples in this tile (`Sim::set_windows`), read after each of its
    /// steps into `probed` (step after step, `probes.len()` values each).
    pub probes: Vec<Probe>,
    pub probed: Vec<f64>,
}

/// A value of a tile that a window samples: v of a node-lane, or a block's variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    V { idx: u32 },
    Var { block: u16, var: u16, at: u32 },
}

/// Every cell of a model, in tiles, and where each section and point process went.
#[derive(Debug, Clone, Default)]
pub struct Cells {
    pub tiles: Vec<Tile>,
    pub sec_at: Vec<SecAt>,
    pub point_at: Vec<PointAt>,
}

/// One cell of the model: its sections (model indices) in template order, its points in
/// model order.
struct Member {
    secs: Vec<u32>,
    points: Vec<u32>,
}

impl Cells {
    /// The cells of `model` in tiles sized for `threads` threads (see `tile_lanes`).
    pub fn build(model: &Model, threads: usize) -> Cells {
        let nsec = model.sections.len();
        let index_of = |name: &str| model.section_index(name).expect("checked parent");
        let parent_sec: Vec<Option<(usize, f64)>> = model
            .sections
            .iter()
            .map(|s| s.parent.as_ref().map(|p| (index_of(&p.section), p.x)))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![vec![]; nsec];
        for (i, p) in parent_sec.iter().enumerate() {
            if let Some((pi, _)) = p {
                children[*pi].push(i);
            }
        }
        for kids in children.iter_mut() {
            // Stable sort of the reversed creation order: newest first among equal positions.
            kids.reverse();
            kids.sort_by(|&x, &y| parent_sec[x].unwrap().1.total_cmp(&parent_sec[y].unwrap().1));
        }
        let roots: Vec<usize> = (0..nsec).filter(|&i| parent_sec[i].is_none()).collect();
        let mut root_of = vec![0usize; nsec];
        let mut cell_sections: Vec<Vec<usize>> = Vec::with_capacity(roots.len());
        for (c, &r) in roots.iter().enumerate() {
            let mut order = vec![];
            let mut queue = std::collections::VecDeque::from([r]);
            while let Some(s) = queue.pop_front() {
                queue.extend(children[s].iter().copied());
                root_of[s] = c;
                order.push(s);
            }
            cell_sections.push(order);
        }
        let mut cell_points: Vec<Vec<usize>> = vec![vec![]; roots.len()];
        for (p, spec) in model.points.iter().enumerate() {
            cell_points[root_of[index_of(&spec.at.section)]].push(p);
        }

        // Templates, grouped: lanes in the order of the cells' roots in the model.
        let mut groups: Vec<(Arc<Template>, Vec<Member>)> = vec![];
        let mut by_template: HashMap<Arc<Template>, usize, FastHash> = HashMap::default();
        for (order, points) in cell_sections.iter().zip(&cell_points) {
            let (template, member) = shape(model, order, points, &parent_sec);
            let g = match by_template.get(&template) {
                Some(&g) => g,
                None => {
                    let t = Arc::new(template);
                    by_template.insert(t.clone(), groups.len());
                    groups.push((t, vec![]));
                    groups.len() - 1
                }
            };
            groups[g].1.push(member);
        }

        let mut cells = Cells {
            tiles: vec![],
            sec_at: vec![SecAt { tile: 0, lane: 0, local: 0 }; nsec],
            point_at: vec![PointAt { tile: 0, block: 0, at: 0 }; model.points.len()],
        };
        for (template, shapes) in groups {
            for chunk in shapes.chunks(tile_lanes(shapes.len(), threads)) {
                let ti = cells.tiles.len() as u32;
                let lanes = chunk.len();
                for (lane, sh) in chunk.iter().enumerate() {
                    for (j, &s) in sh.secs.iter().enumerate() {
                        cells.sec_at[s as usize] = SecAt { tile: ti, lane: lane as u32, local: j as u32 };
                    }
                    for (k, &p) in sh.points.iter().enumerate() {
                        let (block, i) = template.points[k];
                        cells.point_at[p as usize] = PointAt { tile: ti, block, at: i * lanes as u32 + lane as u32 };
                    }
                }
                cells.tiles.push(Tile::new(template.clone(), chunk));
            }
        }
        cells
    }
}

impl Cells {
    /// The scratch a thread needs to step any tile (`Tile::scratch_len` of the largest).
    pub fn scratch_len(&self) -> usize {
        self.tiles.iter().map(Tile::scratch_len).max().unwrap_or(0)
    }

    /// Makes the columns a step only reads (parameters, point factors, decay constants for
    /// `dt`, axial coefficients, cm, thresholds) one allocation wherever tiles hold equal
    /// values (`mech::col`). Values do not change; called after initialization and restores,
    /// when parameters were last set wholesale.
    pub fn share(&mut self, dt: f64) {
        let mut i = Interner::default();
        for tile in &mut self.tiles {
            i.share_all([&mut tile.a, &mut tile.b, &mut tile.cm, &mut tile.thresh]);
            for block in &mut tile.blocks {
                block.share(dt, &mut i);
            }
        }
    }
}

/// The template of one cell (sections `order`, NEURON's order; `points` in model order).
fn shape(model: &Model, order: &[usize], points: &[usize], parent_sec: &[Option<(usize, f64)>]) -> (Template, Member) {
    let mut local = HashMap::new();
    let mut sections = Vec::with_capacity(order.len());
    let mut next = 1u32;
    for (j, &s) in order.iter().enumerate() {
        local.insert(s, j);
        let nseg = model.sections[s].nseg;
        sections.push(LocalSec { first: next, nseg, parent_node: 0 });
        next += nseg + 1;
    }
    // NEURON's nrn_parent_info: climb while the connection is at the parent's 0 end.
    for j in 0..order.len() {
        let mut sec = order[j];
        sections[j].parent_node = loop {
            match parent_sec[sec] {
                None => break 0,
                Some((p, x)) if x != 0.0 => {
                    let lay = sections[local[&p]];
                    break if x == 1.0 { lay.end_node() } else { lay.segment_node(x) };
                }
                Some((p, _)) => sec = p,
            }
        };
    }
    let mut parent = vec![u32::MAX; next as usize];
    for s in &sections {
        for j in 0..=s.nseg {
            parent[(s.first + j) as usize] = if j == 0 { s.parent_node } else { s.first + j - 1 };
        }
    }
    let inserted: Vec<Vec<MechId>> =
        order.iter().map(|&s| model.sections[s].mechs.iter().map(|m| m.mech).collect()).collect();

    // Blocks in type order; density instances by node, points by node, newest first on a
    // shared node (NEURON prepends a new point process to its node's list).
    let mut blocks: Vec<(MechId, Vec<u32>)> = vec![];
    let mut point_inst = vec![(0u16, 0u32); points.len()];
    for def in crate::mech::MECHANISMS.iter() {
        let id = def.id();
        match def.kind {
            MechKind::Density => {
                let nodes: Vec<u32> = sections
                    .iter()
                    .zip(&inserted)
                    .filter(|(_, ins)| ins.contains(&id))
                    .flat_map(|(s, _)| s.first..s.first + s.nseg)
                    .collect();
                if !nodes.is_empty() {
                    blocks.push((id, nodes));
                }
            }
            MechKind::Point => {
                let mut mine: Vec<(u32, usize)> = points
                    .iter()
                    .enumerate()
                    .filter(|(_, &p)| model.points[p].mech == id)
                    .map(|(k, &p)| {
                        let at = &model.points[p].at;
                        (sections[local[&model.section_index(&at.section).expect("checked")]].node_at(at.x), k)
                    })
                    .collect();
                mine.sort_by_key(|&(nd, k)| (nd, std::cmp::Reverse(k)));
                if !mine.is_empty() {
                    for (i, &(_, k)) in mine.iter().enumerate() {
                        point_inst[k] = (blocks.len() as u16, i as u32);
                    }
                    blocks.push((id, mine.iter().map(|m| m.0).collect()));
                }
            }
            MechKind::Ion | MechKind::Artificial => {}
        }
    }
    let (kid_start, kids) = children(&parent);
    let mut template =
        Template { nnode: next, parent, kid_start, kids, cap_of: vec![u32::MAX; next as usize], sections, blocks, points: point_inst, inserted };
    for (c, nd) in template.cap_nodes().enumerate().collect::<Vec<_>>() {
        template.cap_of[nd as usize] = c as u32;
    }
    let member = Member { secs: order.iter().map(|&s| s as u32).collect(), points: points.iter().map(|&p| p as u32).collect() };
    (template, member)
}

/// Each node's children, in increasing order, as `(start, kids)`: node i's are
/// `kids[start[i]..start[i + 1]]`.
fn children(parent: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; parent.len() + 1];
    for &p in parent.iter().skip(1) {
        start[p as usize + 1] += 1;
    }
    for i in 0..parent.len() {
        start[i + 1] += start[i];
    }
    let mut next = start.clone();
    let mut kids = vec![0; parent.len().saturating_sub(1)];
    for (c, &p) in parent.iter().enumerate().skip(1) {
        kids[next[p as usize] as usize] = c as u32;
        next[p as usize] += 1;
    }
    (start, kids)
}

impl Tile {
    fn new(template: Arc<Template>, shapes: &[Member]) -> Tile {
        let lanes = shapes.len();
        let nn = template.nnode as usize * lanes;
        let mut secs = vec![0; template.nsec() * lanes];
        let mut points = vec![0; template.points.len() * lanes];
        for (lane, sh) in shapes.iter().enumerate() {
            for (j, &s) in sh.secs.iter().enumerate() {
                secs[j * lanes + lane] = s;
            }
            for (k, &p) in sh.points.iter().enumerate() {
                points[k * lanes + lane] = p;
            }
        }
        let cap_nodes: Vec<u32> = template.cap_nodes().collect();
        let det_nodes: Vec<u32> = template.sections.iter().map(|s| s.segment_node(0.5)).collect();
        let ndet = det_nodes.len() * lanes;
        let blocks = template.blocks.iter().map(|(id, nodes)| Block::new(id.def(), nodes.clone(), lanes)).collect();
        Tile {
            lanes,
            secs,
            points,
            // A new section's v in NEURON (DEF_vrest), what a reader sees before initialization.
            v: vec![-65.0; nn],
            a: Col::new(nn, 0.0),
            b: Col::new(nn, 0.0),
            // Root nodes have no membrane; NEURON treats their area as 100.
            area: vec![100.0; nn],
            rinv: vec![0.0; nn],
            cm: Col::new(cap_nodes.len() * lanes, 0.0),
            cap_nodes,
            blocks,
            det_nodes,
            thresh: Col::new(ndet, 0.0),
            above: vec![false; ndet],
            flag: vec![false; ndet],
            changed: true,
            window_fired: vec![],
            probes: vec![],
            probed: vec![],
            template,
        }
    }

    /// Areas and axial coefficients from the sections' geometry (NEURON's `nrn_area_ri` for
    /// every section: from L and diam, or from its 3-d points; then `connection_coef`), and
    /// the point processes' area factors.
    pub fn geometry(&mut self, specs: &[SectionSpec]) {
        let n = self.lanes;
        let t = self.template.clone();
        for (j, lay) in t.sections.iter().enumerate() {
            for lane in 0..n {
                let spec = &specs[self.secs[j * n + lane] as usize];
                if let Some(pt) = spec.pt3d.as_deref() {
                    // diam_from_list: each segment's area and resistance from the points.
                    let (area, rinv) = (&mut self.area, &mut self.rinv);
                    let last = pt.area_ri(lay.nseg, spec.ra, |s, g| {
                        let k = (lay.first as usize + s) * n + lane;
                        area[k] = g.area;
                        rinv[k] = g.rinv;
                    });
                    let k = lay.end_node() as usize * n + lane;
                    self.area[k] = 1.0e2;
                    self.rinv[k] = last;
                    continue;
                }
                let dx = spec.l / f64::from(lay.nseg);
                let mut rright = 0.0;
                for s in 0..lay.nseg {
                    let k = (lay.first + s) as usize * n + lane;
                    let diam = spec.own_at(SEC_DIAM, s);
                    self.area[k] = PI * diam * dx;
                    let rleft = 1e-2 * spec.ra * (dx / 2.0) / (PI * diam * diam / 4.0);
                    self.rinv[k] = 1.0 / (rleft + rright);
                    rright = rleft;
                }
                let k = lay.end_node() as usize * n + lane;
                self.area[k] = 1.0e2;
                self.rinv[k] = 1.0 / rright;
            }
        }
        let (a, b) = (&mut *self.a, &mut *self.b);
        for lay in &t.sections {
            for nd in lay.first..=lay.end_node() {
                let (me, par) = (nd as usize * n, t.parent[nd as usize] as usize * n);
                for l in 0..n {
                    a[me + l] = -1.0e2 * self.rinv[me + l] / self.area[par + l];
                    b[me + l] = -1.0e2 * self.rinv[me + l] / self.area[me + l];
                }
            }
        }
        for (b, block) in self.blocks.iter_mut().enumerate() {
            if t.blocks[b].0.def().kind != MechKind::Point {
                continue;
            }
            for (i, &nd) in t.blocks[b].1.iter().enumerate() {
                for l in 0..n {
                    block.set_mfact(i * n + l, 1.0e2 / self.area[nd as usize * n + l]);
                }
            }
        }
    }

    /// Area and axial resistance (1 / NODERINV) of each segment of local section j, lane `lane`.
    pub fn segment_geometry(&self, j: usize, lane: usize) -> Vec<(f64, f64)> {
        let lay = self.template.sections[j];
        (lay.first..lay.first + lay.nseg)
            .map(|nd| {
                let k = nd as usize * self.lanes + lane;
                (self.area[k], 1.0 / self.rinv[k])
            })
            .collect()
    }

    /// cm of local section j in one lane, segment by segment (read by every step's matrix, so
    /// a change acts at the next matrix, unlike the geometry).
    pub fn set_cm(&mut self, j: usize, lane: usize, cm: impl Fn(u32) -> f64) {
        for (seg, c) in self.template.cap_range(j).enumerate() {
            self.cm[c * self.lanes + lane] = cm(seg as u32);
        }
    }

    /// A parameter of mechanism `def` inserted in local section j, lane `lane`, segment by
    /// segment (`value(seg)`): into the mechanism's block, or for an ion into every block that
    /// uses it.
    pub fn set_section_param(&mut self, j: usize, lane: usize, def: &'static MechDef, field: usize, value: impl Fn(u32) -> f64) {
        let n = self.lanes;
        let id = def.id();
        for b in 0..self.blocks.len() {
            let f = if self.template.blocks[b].0 == id {
                field
            } else if def.kind == MechKind::Ion {
                match self.blocks[b].ion_field(def) {
                    Some(f) => f,
                    None => continue,
                }
            } else {
                continue;
            };
            for (seg, i) in self.template.instances(b, j).enumerate() {
                self.blocks[b].set_param(f, i * n + lane, value(seg as u32));
            }
        }
    }

    /// Where the detector of local section j, lane `lane`, reads v.
    pub fn det_index(&self, j: usize, lane: usize) -> usize {
        self.det_nodes[j] as usize * self.lanes + lane
    }

    /// Whether each detector's v is above its threshold (NEURON's `v - threshold > 0`).
    #[inline(always)]
    pub fn detect<const N: usize>(&mut self) {
        let n = lane_count::<N>(self.lanes);
        for (j, &nd) in self.det_nodes.iter().enumerate() {
            let v = &self.v[nd as usize * n..(nd as usize + 1) * n];
            let (above, flag) = (&mut self.above[j * n..(j + 1) * n], &self.flag[j * n..(j + 1) * n]);
            // Written only when true: the calling thread reads the flag after every step, and
            // a write at every step would move its cache line between the threads twice.
            if lanes::above(above, flag, v, &self.thresh[j * n..(j + 1) * n]) {
                self.changed = true;
            }
        }
    }

    /// The threshold of the detector of local section j, lane `lane`.
    pub fn set_threshold(&mut self, j: usize, lane: usize, thresh: f64) {
        let x = j * self.lanes + lane;
        self.thresh[x] = thresh;
        self.above[x] = self.v[self.det_index(j, lane)] - thresh > 0.0;
        self.changed = true;
    }

    /// The threshold detectors with a spike (above now, not at the last check), as model
    /// sections, into `fired`; every detector's flag follows.
    pub fn crossings(&mut self, fired: &mut Vec<u32>) {
        self.crossings_into(|s| fired.push(s));
    }

    /// The probes' values now, after the ones before.
    #[inline(always)]
    pub fn probe(&mut self) {
        for p in &self.probes {
            self.probed.push(match *p {
                Probe::V { idx } => self.v[idx as usize],
                Probe::Var { block, var, at } => self.blocks[block as usize].var(var as usize, at as usize),
            });
        }
    }

    /// `crossings` inside a window of steps: into `window_fired`, as found after the window's
    /// step `j`.
    #[inline(always)]
    pub fn window_crossings(&mut self, j: u32) {
        // Most steps nothing changed: tested here, in the step loop, without a call.
        if self.changed {
            self.window_crossings_found(j);
        }
    }

    fn window_crossings_found(&mut self, j: u32) {
        let mut out = std::mem::take(&mut self.window_fired);
        self.crossings_into(|s| out.push((j, s)));
        self.window_fired = out;
    }

    #[inline(always)]
    fn crossings_into(&mut self, mut fire: impl FnMut(u32)) {
        if !self.changed {
            return;
        }
        self.changed = false;
        // Eight detectors at a time: most steps nothing changes.
        let (above, flag) = (&self.above, &mut self.flag);
        for (c, (a, f)) in above.chunks(8).zip(flag.chunks_mut(8)).enumerate() {
            if a.iter().zip(f.iter()).all(|(a, f)| a == f) {
                continue;
            }
            for (k, (&a, f)) in a.iter().zip(f.iter_mut()).enumerate() {
                if a && !*f {
                    fire(self.secs[c * 8 + k]);
                }
                *f = a;
            }
        }
    }

    /// INITIAL of every block.
    pub fn initial(&mut self, rates: &Rates) {
        for block in &mut self.blocks {
            block.initial(&self.v, rates);
        }
    }

    /// The length of the scratch rows a step needs (`Scratch`): rhs and d of every node.
    pub fn scratch_len(&self) -> usize {
        2 * self.v.len()
    }

    /// The membrane currents at time t (of a step dt), in NEURON's mechanism-type order, into
    /// rhs and d (the first two `v.len()` entries of `scratch`, rewritten whole); with
    /// `outputs`, also the mechanisms' `current_outputs`.
    #[inline(always)]
    pub fn currents<const N: usize>(&mut self, t: f64, dt: f64, outputs: bool, scratch: &mut [f64]) {
        let (rhs, d) = scratch[..2 * self.v.len()].split_at_mut(self.v.len());
        lanes::zero2(rhs, d);
        let mut cx = Cx::<N> { lanes: self.lanes, v: &self.v, rhs, d, t, dt, outputs };
        for block in &mut self.blocks {
            block.current(&mut cx);
        }
    }

    /// The first half of a step from t_n: currents at `t` = t_n + dt/2, the matrix, the solve,
    /// v = v_{n+1}. rhs and d live in `scratch`, not in the tile: they are dead once v is
    /// updated, so one thread's rows serve all its tiles and stay in its cache instead of
    /// adding 2 x 8 bytes per node to the memory every step streams.
    #[inline(always)]
    pub fn advance_v<const N: usize>(&mut self, t: f64, dt: f64, outputs: bool, scratch: &mut [f64]) {
        self.currents::<N>(t, dt, outputs, scratch);
        let (rhs, d) = scratch[..2 * self.v.len()].split_at_mut(self.v.len());
        if N == 1 {
            self.matrix_solve_one(dt, rhs, d);
        } else {
            self.matrix::<N>(dt, rhs, d);
            self.solve::<N>(rhs, d);
        }
        self.detect::<N>();
    }

    /// Capacitance and axial terms added to the currents (NEURON's nrn_rhs and nrn_lhs).
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // node i and its parent's rows, by index
    pub fn matrix<const N: usize>(&self, dt: f64, rhs: &mut [f64], d: &mut [f64]) {
        let n = lane_count::<N>(self.lanes);
        let cfac = 0.001 * (1.0 / dt);
        for (c, &nd) in self.cap_nodes.iter().enumerate() {
            lanes::add_scaled(&mut d[nd as usize * n..(nd as usize + 1) * n], cfac, &self.cm[c * n..(c + 1) * n]);
        }
        let parent = &self.template.parent;
        for i in 1..self.template.nnode as usize {
            let p = parent[i] as usize;
            // Node i's row and its parent's (p < i): split so both can be borrowed.
            let (lo, hi) = rhs.split_at_mut(i * n);
            let (rhs_p, rhs_i) = (&mut lo[p * n..(p + 1) * n], &mut hi[..n]);
            let (lo, hi) = d.split_at_mut(i * n);
            let (d_p, d_i) = (&mut lo[p * n..(p + 1) * n], &mut hi[..n]);
            let v = (&self.v[p * n..(p + 1) * n], &self.v[i * n..(i + 1) * n]);
            let (a, b) = (&self.a[i * n..(i + 1) * n], &self.b[i * n..(i + 1) * n]);
            lanes::axial(rhs_i, rhs_p, d_i, d_p, v, a, b);
        }
    }

    /// `matrix` and `solve` of a one-cell tile, with the same operations on each row in the
    /// same order, but one row at a time: a row's terms are summed in registers, where the
    /// passes of `matrix` and `solve` store the row after each term and load it for the next.
    /// A one-cell step is a chain of dependent operations (the gates need v, the next v the
    /// gates), so every such store and load is waited for (summing in registers took a
    /// one-cell step from 79 to 69 ns: BENCHMARKS.md, "Engine core v5"). The order of a
    /// row's terms in NEURON's passes: the
    /// currents (already in `rhs` and `d`), the capacitance (nrn_lhs's first loop), its own
    /// axial term, its children's axial terms in node order (the axial loop over the nodes),
    /// then its children's eliminations in reverse node order (triang). Children have higher
    /// numbers than their parent, so going from the last node to the root each row is
    /// complete before its parent's needs it; then back substitution and v += dv.
    #[inline(always)]
    fn matrix_solve_one(&mut self, dt: f64, rhs: &mut [f64], d: &mut [f64]) {
        let cfac = 0.001 * (1.0 / dt);
        let t = &*self.template;
        let nn = t.nnode as usize;
        let (parent, cap_of, cm) = (&t.parent[..nn], &t.cap_of[..nn], &self.cm[..]);
        let (a, b) = (&self.a[..nn], &self.b[..nn]);
        let (rhs, d, v) = (&mut rhs[..nn], &mut d[..nn], &mut self.v[..nn]);
        for i in (0..nn).rev() {
            let (mut r, mut dd) = (rhs[i], d[i]);
            if let Some(&cm) = cm.get(cap_of[i] as usize) {
                dd += cfac * cm;
            }
            if i > 0 {
                let dv = v[parent[i] as usize] - v[i];
                r -= b[i] * dv;
                dd -= b[i];
            }
            let kids = &t.kids[t.kid_start[i] as usize..t.kid_start[i + 1] as usize];
            for &c in kids {
                let c = c as usize;
                let dv = v[i] - v[c];
                r += a[c] * dv;
                dd -= a[c];
            }
            for &c in kids.iter().rev() {
                let c = c as usize;
                (r, dd) = lanes::eliminate(r, dd, rhs[c], d[c], a[c], b[c]);
            }
            rhs[i] = r;
            d[i] = dd;
        }
        rhs[0] /= d[0];
        v[0] += rhs[0];
        for i in 1..nn {
            let r = lanes::back_substitute(rhs[i], rhs[parent[i] as usize], b[i], d[i]);
            rhs[i] = r;
            v[i] += r;
        }
    }

    /// Gaussian elimination over each cell's tree (triang, bksub), then v += dv.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // node i and its parent's rows, by index
    pub fn solve<const N: usize>(&mut self, rhs: &mut [f64], d: &mut [f64]) {
        let n = lane_count::<N>(self.lanes);
        let nn = self.template.nnode as usize;
        let parent = &self.template.parent;
        for i in (1..nn).rev() {
            let p = parent[i] as usize;
            let (lo, hi) = rhs.split_at_mut(i * n);
            let (rhs_p, rhs_i) = (&mut lo[p * n..(p + 1) * n], &hi[..n]);
            let (lo, hi) = d.split_at_mut(i * n);
            let (d_p, d_i) = (&mut lo[p * n..(p + 1) * n], &hi[..n]);
            lanes::triang(rhs_p, d_p, rhs_i, d_i, &self.a[i * n..(i + 1) * n], &self.b[i * n..(i + 1) * n]);
        }
        lanes::divide(&mut rhs[..n], &d[..n]);
        for i in 1..nn {
            let p = parent[i] as usize;
            let (lo, hi) = rhs.split_at_mut(i * n);
            lanes::bksub(&mut hi[..n], &lo[p * n..(p + 1) * n], &self.b[i * n..(i + 1) * n], &d[i * n..(i + 1) * n]);
        }
        lanes::add(&mut self.v, rhs);
    }

    /// The states of every block at the new v, at t = t_{n+1} (cnexp, the synapses' decay,
    /// the clamps' SOLVE blocks).
    #[inline(always)]
    pub fn states<const N: usize>(&mut self, t: f64, dt: f64, rates: &Rates) {
        for block in &mut self.blocks {
            block.state::<N>(&self.v, t, dt, rates);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{parse_model, Sim};

    /// After initialization, equal tiles hold one copy of their read-only columns (what makes
    /// large populations cheaper per cell); a tile with other values keeps its own.
    #[test]
    fn equal_tiles_share_their_columns_after_initialization() {
        let mut text = String::from("[run]\ntstop = 1.0\n");
        for i in 0..300 {
            let gna = if i == 290 { 0.2 } else { 0.12 };
            text += &format!(
                "[section.s{i}]\ninsert = [\"hh\"]\ngnabar_hh = {gna}\n[point.syn{i}]\ntype = \"ExpSyn\"\nat = \"s{i}(0.5)\"\n"
            );
        }
        let mut sim = Sim::new(parse_model(&text, "m").unwrap()).unwrap();
        sim.initialize(|_| {});
        let t = &sim.cells.tiles;
        assert_eq!(t.iter().map(|t| t.lanes).collect::<Vec<_>>(), [128, 128, 44]);
        let hh = |t: &super::Tile| match (&t.blocks[1], &t.blocks[0]) {
            (crate::mech::Block::Hh(h), crate::mech::Block::ExpSyn(s)) => (h.p.to_vec(), s.p.to_vec()),
            _ => unreachable!("ExpSyn, then hh"),
        };
        let (h0, s0) = hh(&t[0]);
        let (h1, s1) = hh(&t[1]);
        assert!(t[0].a.shares(&t[1].a) && t[0].b.shares(&t[1].b) && t[0].cm.shares(&t[1].cm));
        assert!(h0.iter().zip(&h1).all(|(x, y)| x.shares(y)), "hh parameters");
        assert!(s0.iter().zip(&s1).all(|(x, y)| x.shares(y)), "ExpSyn parameters");
        let (h2, _) = hh(&t[2]);
        assert!(!h2[0].shares(&h0[0]), "a different length and value");
    }
}
