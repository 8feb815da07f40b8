//! Jacobian regularization: a Hutchinson estimate of ‖J_f‖²_F = ‖∂f/∂z‖²_F at the fixed
//! point, on the tape, so it can be added to a loss (Bai et al.: it keeps the layer well
//! conditioned and the forward solve short).
//!
//! For probes ε with E(εεᵀ) = I (Rademacher ±1 here), E‖J_f ε‖² = tr(J_fᵀJ_f) = ‖J_f‖²_F.
//! Each probe costs one forward-mode evaluation of the map over the tape
//! (`DualMat<MatVar>`: J_f ε is recorded as a matrix variable), so the estimate is
//! differentiable with respect to θ, x and z*.

use ad_core::{DualMat, MatOps, MatVar, Var};
use nalgebra::DMatrix;

use crate::map::EquilibriumMap;

/// `count` Rademacher probes (entries ±1) of shape `rows x cols`, from a seed.
pub fn rademacher_probes(rows: usize, cols: usize, count: usize, seed: u64) -> Vec<DMatrix<f64>> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..count)
        .map(|_| DMatrix::from_fn(rows, cols, |_, _| if next() & 1 == 0 { 1.0 } else { -1.0 }))
        .collect()
}

/// The Hutchinson estimate (1/k) Σᵢ ‖J_f εᵢ‖² of ‖∂f/∂z‖²_F at (z, x, θ) — for a batch, the
/// sum over samples of each sample's squared Frobenius norm — as a tape scalar.
///
/// ```
/// use ad_core::{MatOps, Tape};
/// use deq::map::TanhLayer;
/// use deq::regularization::{jacobian_penalty, rademacher_probes};
/// use nalgebra::DMatrix;
/// // z ↦ tanh(W z + U x + b) at z = 0, x = 0, b = 0: J = W, so the estimate is ‖W‖²_F
/// // exactly for any ±1 probe when W is diagonal.
/// let tape = Tape::new();
/// let w = tape.mat_var(DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![0.5, -0.3])));
/// let u = tape.mat_var(DMatrix::zeros(2, 1));
/// let b = tape.mat_var(DMatrix::zeros(2, 1));
/// let z = tape.constant_mat(DMatrix::zeros(2, 1));
/// let x = tape.constant_mat(DMatrix::zeros(1, 1));
/// let probes = rademacher_probes(2, 1, 3, 7);
/// let r = jacobian_penalty(&TanhLayer::default(), &z, &x, &[w, u, b], &probes);
/// assert!((r.value_f64() - 0.34).abs() < 1e-15);
/// let g = tape.gradient(r).unwrap().wrt_mat(&w);   // d‖W‖²/dW = 2W
/// assert!((g[(0, 0)] - 1.0).abs() < 1e-15);
/// ```
///
/// # Panics
/// If `probes` is empty or a probe is not shaped like z.
pub fn jacobian_penalty<F: EquilibriumMap + ?Sized>(
    map: &F,
    z: &MatVar,
    x: &MatVar,
    theta: &[MatVar],
    probes: &[DMatrix<f64>],
) -> Var {
    assert!(
        !probes.is_empty(),
        "deq: jacobian_penalty needs at least one probe"
    );
    let still = |m: &MatVar| DualMat::new(*m, m.zeros_like(m.nrows(), m.ncols()));
    let xd = still(x);
    let td: Vec<DualMat<MatVar>> = theta.iter().map(still).collect();
    let mut total: Option<Var> = None;
    for eps in probes {
        let zd = DualMat::new(*z, z.constant_like(eps.clone()));
        let jv = map.apply(&zd, &xd, &td).eps;
        let sq = jv.sq_norm();
        total = Some(match total {
            Some(t) => t + sq,
            None => sq,
        });
    }
    total.expect("at least one probe") * (1.0 / probes.len() as f64)
}
