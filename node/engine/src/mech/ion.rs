//! The ions (NEURON's `na_ion`, `k_ion`): per-segment reversal potentials, inserted with the
//! mechanisms that use them. They add no current of their own; their parameters are copied
//! into the blocks of the mechanisms that read them (see `Block::ion_field`).

use super::{Allowed, Field, MechDef, MechKind};

pub static NA: MechDef = MechDef {
    name: "na_ion",
    kind: MechKind::Ion,
    params: &[Field::new("ena", "mV", 50.0, Allowed::Any)],
    vars: &[],
    ions: &[],
    receives: false,
    receive_writes: &[],
    current_outputs: &[],
    initial_writes: &[],
};

pub static K: MechDef = MechDef {
    name: "k_ion",
    kind: MechKind::Ion,
    params: &[Field::new("ek", "mV", -77.0, Allowed::Any)],
    vars: &[],
    ions: &[],
    receives: false,
    receive_writes: &[],
    current_outputs: &[],
    initial_writes: &[],
};
