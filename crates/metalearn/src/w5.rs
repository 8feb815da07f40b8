//! The peers' W5 workload (`../shared/peers/w5_maml.py`): a fixed 1-40-40-1 ReLU network,
//! 25 fixed sinusoid tasks with K = 10, and the reference meta-gradients of JAX to 12
//! digits. Used by the W5 test and the `peers_w5` example.

use std::f64::consts::PI;

use ad_core::nn::{Activation, Mlp};
use nalgebra::DMatrix;

use crate::task::Task;

/// Tasks in the meta-batch.
pub const TASKS: usize = 25;
/// Points per support and query set.
pub const K: usize = 10;
/// MAML's inner rate.
pub const ALPHA: f64 = 0.01;

/// The network, 1-40-40-1 ReLU (1761 parameters).
pub fn mlp() -> Mlp {
    Mlp::new(&[1, 40, 40, 1], Activation::Relu, Activation::Identity)
}

/// The fixed meta-parameters of the workload, in the flat layout `W1, b1, W2, b2, W3, b3`.
pub fn theta() -> Vec<f64> {
    let h = 40;
    let f = |i: usize| (i + 1) as f64;
    let mut t = Vec::with_capacity(1761);
    t.extend((0..h).map(|i| 0.7 * (0.9 * f(i) + 0.4).sin()));
    t.extend((0..h).map(|i| 0.5 * (1.3 * f(i)).cos()));
    for i in 0..h {
        t.extend((0..h).map(|j| 0.1 * (0.7 * f(i) * f(j) + 0.3).cos()));
    }
    t.extend((0..h).map(|i| 0.1 * (0.6 * f(i)).sin()));
    t.extend((0..h).map(|j| 0.1 * (1.1 * f(j) + 0.2).sin()));
    t.push(0.05);
    t
}

/// The 25 tasks: amplitude `0.1 + 4.9 (t + 0.5) / 25`, phase `pi ((7t) mod 25) / 25`,
/// support inputs `-5 + 10 (k + 0.5) / 10 + 0.13 t`, query inputs shifted by `0.29 t`.
pub fn tasks() -> Vec<Task> {
    (0..TASKS)
        .map(|t| {
            let tf = t as f64;
            let amp = 0.1 + 4.9 * (tf + 0.5) / TASKS as f64;
            let phase = PI * ((7 * t) % TASKS) as f64 / TASKS as f64;
            let base = |k: usize| -5.0 + 10.0 * (k as f64 + 0.5) / K as f64;
            let xs = DMatrix::from_fn(K, 1, |k, _| base(k) + 0.13 * tf);
            let xq = DMatrix::from_fn(K, 1, |k, _| base(k) + 0.29 * tf);
            let ys = xs.map(|x| amp * (x - phase).sin());
            let yq = xq.map(|x| amp * (x - phase).sin());
            Task::new(xs, ys, xq, yq).expect("the W5 tasks are finite and consistent")
        })
        .collect()
}

/// One reference row of `results/W5_maml.json`: meta-loss, meta-gradient norm and the
/// meta-gradient's entries 0, 1, 40 and 1760.
#[derive(Clone, Copy, Debug)]
pub struct Reference {
    /// The row's name in the JSON file.
    pub name: &'static str,
    /// Mean query loss after adaptation.
    pub meta_loss: f64,
    /// Norm of the meta-gradient.
    pub grad_norm: f64,
    /// Entries 0, 1, 40 and 1760 of the meta-gradient.
    pub grad_entries: [f64; 4],
}

/// The entries of the meta-gradient the reference records.
pub const ENTRIES: [usize; 4] = [0, 1, 40, 1760];

/// MAML, 1 inner step.
pub const MAML_1: Reference = Reference {
    name: "MAML 1-step",
    meta_loss: 4.489336822851899,
    grad_norm: 2.770035275319921,
    grad_entries: [
        0.08574206169247023,
        0.09934036625446081,
        0.014856876154631127,
        -0.07972713990252744,
    ],
};
/// FOMAML, 1 inner step.
pub const FOMAML_1: Reference = Reference {
    name: "FOMAML 1-step",
    meta_loss: 4.489336822851899,
    grad_norm: 3.9905005002042646,
    grad_entries: [
        0.024355302137103012,
        0.0677914876059644,
        0.006217059793914332,
        -0.36851354954249504,
    ],
};
/// MAML, 5 inner steps.
pub const MAML_5: Reference = Reference {
    name: "MAML 5-step",
    meta_loss: 5.0884482708961025,
    grad_norm: 2.0047297359693004,
    grad_entries: [
        0.0772969446684939,
        0.09695686540693066,
        -0.0039727504975820135,
        0.44238522260298835,
    ],
};
/// FOMAML, 5 inner steps.
pub const FOMAML_5: Reference = Reference {
    name: "FOMAML 5-step",
    meta_loss: 5.0884482708961025,
    grad_norm: 7.189740786441324,
    grad_entries: [
        0.1884691303770564,
        0.22228940247562115,
        0.033696727908212806,
        -0.6487926857587492,
    ],
};
/// iMAML, lambda 2, 100 inner steps of 0.01, 5 CG iterations.
pub const IMAML: Reference = Reference {
    name: "iMAML",
    meta_loss: 5.114735553939241,
    grad_norm: 2.0579332252444837,
    grad_entries: [
        0.05744534183708014,
        0.033604631846080306,
        -0.029260135584307036,
        0.09179468194945187,
    ],
};

/// Pre-adaptation meta-loss `mean_t L_query_t(theta)`.
pub const PRE_ADAPTATION_LOSS: f64 = 4.237459102326792;
/// JAX's median time per meta-gradient (jit, vmap), seconds: MAML 1-step, FOMAML 1-step,
/// MAML 5-step, FOMAML 5-step, iMAML (from the reference run).
pub const JAX_MEDIAN_S: [f64; 5] = [
    0.0015584660000058648,
    0.0009254775000044901,
    0.007801290500083269,
    0.003408907499988345,
    0.04913968749997366,
];
