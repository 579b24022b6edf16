//! The cable: node layout, geometry coefficients and the tree (Hines) solve, in NEURON's node
//! order and NEURON's arithmetic (treeset.cpp, solve.cpp, multicore.cpp of NEURON 9.0.2).

use std::f64::consts::PI;

use crate::model::{Model, SectionSpec};

/// Where a section's nodes are: segment j's center is node `first + j` (j < nseg), the 1 end
/// is node `first + nseg`; `parent_node` is the node its 0 end sits on.
#[derive(Debug, Clone, Copy)]
pub struct SecLayout {
    pub first: usize,
    pub nseg: usize,
    pub parent_node: usize,
}

impl SecLayout {
    /// NEURON's `node_index`: the segment holding x (0 <= x <= 1).
    pub fn segment_node(&self, x: f64) -> usize {
        let n = self.nseg as f64;
        let mut i = (n * x) as usize;
        if i == self.nseg {
            i = self.nseg - 1;
        }
        self.first + i
    }

    /// NEURON's `node_exact`: like `segment_node`, but x = 0 and x = 1 are the end points.
    pub fn node_at(&self, x: f64) -> usize {
        if x <= 0.0 {
            self.parent_node
        } else if x >= 1.0 {
            self.first + self.nseg
        } else {
            self.segment_node(x)
        }
    }

    pub fn end_node(&self) -> usize {
        self.first + self.nseg
    }
}

/// The node arrays of the whole model (SoA, indexed by node).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Number of root nodes; they come first and have no parent.
    pub ncell: usize,
    pub parent: Vec<usize>,
    pub v: Vec<f64>,
    pub rhs: Vec<f64>,
    pub d: Vec<f64>,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub area: Vec<f64>,
    rinv: Vec<f64>,
    /// Nodes that carry membrane capacitance (segment centers) and their cm.
    pub cap_node: Vec<usize>,
    pub cap_cm: Vec<f64>,
    /// Per section, its entries in `cap_node` and `cap_cm`.
    cap_range: Vec<std::ops::Range<usize>>,
    pub sections: Vec<SecLayout>,
}

impl Tree {
    /// Lays out the nodes as NEURON's `reorder_secorder` does: all root nodes first, then for
    /// each root a breadth-first walk of its sections, each section's nodes in order. Children
    /// are visited in NEURON's sibling order: by connection position on the parent, the most
    /// recently connected first among equal positions.
    pub fn layout(model: &Model) -> Tree {
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

        let mut first = vec![0usize; nsec];
        let mut order = Vec::with_capacity(nsec);
        let mut next = roots.len();
        for &r in &roots {
            let mut queue = std::collections::VecDeque::from([r]);
            while let Some(s) = queue.pop_front() {
                queue.extend(children[s].iter().copied());
                first[s] = next;
                next += model.sections[s].nseg as usize + 1;
                order.push(s);
            }
        }
        let nnode = next;
        let root_node_of: Vec<Option<usize>> = {
            let mut v = vec![None; nsec];
            for (k, &r) in roots.iter().enumerate() {
                v[r] = Some(k);
            }
            v
        };
        // NEURON's nrn_parent_info: climb while the connection is at the parent's 0 end.
        let parent_node_of = |s: usize| -> usize {
            let mut sec = s;
            loop {
                match parent_sec[sec] {
                    None => return root_node_of[sec].expect("a section without parent is a root"),
                    Some((p, x)) if x != 0.0 => {
                        let nseg = model.sections[p].nseg as usize;
                        let lay = SecLayout { first: first[p], nseg, parent_node: usize::MAX };
                        return if x == 1.0 { lay.end_node() } else { lay.segment_node(x) };
                    }
                    Some((p, _)) => sec = p,
                }
            }
        };
        let sections: Vec<SecLayout> = (0..nsec)
            .map(|s| SecLayout { first: first[s], nseg: model.sections[s].nseg as usize, parent_node: parent_node_of(s) })
            .collect();
        let mut parent = vec![usize::MAX; nnode];
        let mut cap_node = vec![];
        let mut cap_range = vec![0..0; nsec];
        for &s in &order {
            let lay = sections[s];
            for j in 0..=lay.nseg {
                parent[lay.first + j] = if j == 0 { lay.parent_node } else { lay.first + j - 1 };
            }
            cap_range[s] = cap_node.len()..cap_node.len() + lay.nseg;
            cap_node.extend(lay.first..lay.first + lay.nseg);
        }
        let zeros = vec![0.0; nnode];
        let mut tree = Tree {
            ncell: roots.len(),
            parent,
            // A new section's v in NEURON (DEF_vrest), what a reader sees before initialization.
            v: vec![-65.0; nnode],
            rhs: zeros.clone(),
            d: zeros.clone(),
            a: zeros.clone(),
            b: zeros.clone(),
            // Root nodes have no membrane; NEURON treats their area as 100.
            area: vec![100.0; nnode],
            rinv: zeros,
            cap_cm: vec![0.0; cap_node.len()],
            cap_node,
            cap_range,
            sections,
        };
        tree.geometry(&model.sections);
        tree
    }

    /// Areas and axial coefficients from the sections' geometry (NEURON's `nrn_area_ri` for
    /// every section, then `connection_coef`), and the capacitances.
    pub fn geometry(&mut self, specs: &[SectionSpec]) {
        for (spec, lay) in specs.iter().zip(&self.sections) {
            let dx = spec.l / lay.nseg as f64;
            let mut rright = 0.0;
            for j in 0..lay.nseg {
                let nd = lay.first + j;
                self.area[nd] = PI * spec.diam * dx;
                let rleft = 1e-2 * spec.ra * (dx / 2.0) / (PI * spec.diam * spec.diam / 4.0);
                self.rinv[nd] = 1.0 / (rleft + rright);
                rright = rleft;
            }
            let end = lay.end_node();
            self.area[end] = 1.0e2;
            self.rinv[end] = 1.0 / rright;
        }
        for lay in &self.sections {
            for j in 0..=lay.nseg {
                let nd = lay.first + j;
                let parent_area = self.area[self.parent[nd]];
                self.a[nd] = -1.0e2 * self.rinv[nd] / parent_area;
                self.b[nd] = -1.0e2 * self.rinv[nd] / self.area[nd];
            }
        }
        for (s, spec) in specs.iter().enumerate() {
            self.refresh_cm(s, spec.cm);
        }
    }

    /// The capacitance of section `s`'s nodes (read by every step's matrix, so a change acts
    /// at the next matrix, unlike the geometry).
    pub fn refresh_cm(&mut self, s: usize, cm: f64) {
        self.cap_cm[self.cap_range[s].clone()].fill(cm);
    }

    /// Adds capacitance and axial terms to the matrix whose rhs and d already hold the
    /// membrane currents and conductances (NEURON's nrn_rhs and nrn_lhs, after the mechanisms).
    #[inline]
    pub fn add_cap_and_axial(&mut self, dt: f64) {
        let cfac = 0.001 * (1.0 / dt);
        for (&nd, &cm) in self.cap_node.iter().zip(&self.cap_cm) {
            self.d[nd] += cfac * cm;
        }
        for i in self.ncell..self.v.len() {
            let p = self.parent[i];
            let dv = self.v[p] - self.v[i];
            self.rhs[i] -= self.b[i] * dv;
            self.rhs[p] += self.a[i] * dv;
            self.d[i] -= self.b[i];
            self.d[p] -= self.a[i];
        }
    }

    /// Gaussian elimination over the tree (triang, bksub), then v += dv.
    #[inline]
    pub fn solve_and_update(&mut self) {
        let n = self.v.len();
        for i in (self.ncell..n).rev() {
            let p = self.a[i] / self.d[i];
            let pi = self.parent[i];
            self.d[pi] -= p * self.b[i];
            self.rhs[pi] -= p * self.rhs[i];
        }
        for i in 0..self.ncell {
            self.rhs[i] /= self.d[i];
        }
        for i in self.ncell..n {
            self.rhs[i] -= self.b[i] * self.rhs[self.parent[i]];
            self.rhs[i] /= self.d[i];
        }
        for (v, dv) in self.v.iter_mut().zip(&self.rhs) {
            *v += dv;
        }
    }
}
