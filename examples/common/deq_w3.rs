//! The W3 / W3b DEQ workload of ../shared/peers (w3_deq.py), in column layout: the state
//! z is 64 x 32 (one sample per column), x is 16 x 32, z = tanh(W z + U x + b).
//! Shared by `examples/peers_w3.rs` and `crates/deq/tests/w3.rs`.

use nalgebra::DMatrix;

/// Hidden size, input size, batch.
pub const H: usize = 64;
/// Input size.
pub const DIN: usize = 16;
/// Batch size.
pub const B: usize = 32;

/// W3's parameters and input.
pub struct W3 {
    /// ‖Wraw‖₂.
    pub spectral_norm: f64,
    /// W = 0.9 Wraw / ‖Wraw‖₂ (64 x 64).
    pub w: DMatrix<f64>,
    /// U (64 x 16).
    pub u: DMatrix<f64>,
    /// b (64 x 1).
    pub b: DMatrix<f64>,
    /// x (16 x 32): the peers' x (32 x 16) transposed.
    pub x: DMatrix<f64>,
}

/// The peers' reference answers (numpy, forward to 1e-14, dense per-sample adjoint).
pub struct Reference {
    /// ‖Wraw‖₂.
    pub spectral_norm: f64,
    /// mean(Z*²).
    pub loss: f64,
    /// ‖dL/dW‖_F.
    pub dw_fro: f64,
    /// ‖dL/dU‖_F.
    pub du_fro: f64,
    /// dL/db[0..4].
    pub db: [f64; 4],
    /// Z*[0, 0..3] (sample 0, hidden units 0..3).
    pub z0: [f64; 3],
}

/// The reference answers of W3 (`fullrank = false`) or W3b, from
/// ../shared/peers/results/W3_deq.json and W3b_deq_fullrank.json.
pub fn reference(fullrank: bool) -> Reference {
    if fullrank {
        Reference {
            spectral_norm: 34.87101881465325,
            loss: 0.11316306805128773,
            dw_fro: 0.0649294804610474,
            du_fro: 0.02670136899238807,
            db: [
                0.002273273921617102,
                0.0045972681205958795,
                0.0037852277689800233,
                0.0021076462404188054,
            ],
            z0: [0.3594153881317289, 0.462335024471638, 0.4463013424203071],
        }
    } else {
        Reference {
            spectral_norm: 32.10025883514427,
            loss: 0.11311056616195694,
            dw_fro: 0.06483074200120248,
            du_fro: 0.026591468485671413,
            db: [
                0.0025052577584943193,
                0.004259148451968466,
                0.004237126489924843,
                0.0019916085235178087,
            ],
            z0: [0.404651026092512, 0.4670784662439231, 0.45341255400113617],
        }
    }
}

/// The workload's data (the formulas of ../shared/peers/README.md, 0-based indices).
pub fn data(fullrank: bool) -> W3 {
    let wraw = DMatrix::from_fn(H, H, |i, j| {
        let (i, j) = (i as f64, j as f64);
        let mut v = (0.3 * i + 0.7 * j + 0.1).sin();
        if fullrank {
            v += (0.37 * (i + 1.0) * (j + 1.0)).cos();
        }
        v
    });
    // ‖Wraw‖₂ from the symmetric eigenvalues of WrawᵀWraw (no SVD).
    let gram = wraw.transpose() * &wraw;
    let spectral_norm = gram.symmetric_eigen().eigenvalues.max().sqrt();
    let w = &wraw * (0.9 / spectral_norm);
    let u = DMatrix::from_fn(H, DIN, |i, m| (0.2 * i as f64 - 0.5 * m as f64).cos() / 4.0);
    let b = DMatrix::from_fn(H, 1, |i, _| 0.1 * (i as f64).sin());
    let x = DMatrix::from_fn(DIN, B, |m, k| {
        (0.1 * (k as f64 + 1.0) * (m as f64 + 1.0)).sin()
    });
    W3 {
        spectral_norm,
        w,
        u,
        b,
        x,
    }
}
