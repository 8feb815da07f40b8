//! The W1/W2 regression data of the peer benchmarks (`../shared/peers/README.md`), from
//! closed-form formulas (no random generator), so the numbers match the Python peers up to
//! the rounding of `sin`/`cos`.
//!
//! For a training row `i` use `r = i`; for a validation row `r = i + 1000`:
//!
//! ```text
//! X[i,j]    = sin(0.37*(r+1) + 1.3*(j+1)) + 0.1*cos(1.1*(r+1)*(j+1))
//! w_true[j] = cos(0.5*(j+1))
//! y[i]      = sum_j w_true[j]*X[i,j] + 0.05*sin(7.0*(r+1))
//! ```
//!
//! ```
//! use workloads::data;
//! let w1 = data::w1();
//! assert_eq!(w1.train.x.shape(), (500, 50));
//! assert_eq!(w1.val.x.shape(), (200, 50));
//! let w2 = data::w2(); // the same rows, labels 1{y > 0}
//! let positives = w2.train.y.iter().filter(|&&c| c == 1.0).count();
//! assert_eq!(positives, 244);
//! ```

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// Row-index offset of the validation rows.
pub const VAL_OFFSET: usize = 1000;
/// Row-index offset of the held-out test rows (ours, not the peers': the same formulas at
/// rows no training or validation row of W1/W2 uses).
pub const TEST_OFFSET: usize = 2000;
/// Held-out test rows.
pub const N_TEST: usize = 200;
/// Training rows of W1/W2.
pub const N_TRAIN: usize = 500;
/// Validation rows of W1/W2.
pub const N_VAL: usize = 200;
/// Features of W1/W2.
pub const D: usize = 50;
/// The ridge hyperparameter of W1.
pub const W1_LAMBDA: f64 = 0.1;
/// The gradient-descent step of W1's unrolled baseline.
pub const W1_STEP: f64 = 0.075;

/// A design matrix and its targets (or 0/1 labels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// `n x d` design matrix.
    pub x: DMatrix<f64>,
    /// `n` targets or labels.
    pub y: DVector<f64>,
}

/// Training and validation data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// The rows the inner problem is fitted on.
    pub train: Dataset,
    /// The rows the hyperparameters are judged on.
    pub val: Dataset,
}

/// `X[i,j] = sin(0.37 (r+1) + 1.3 (j+1)) + 0.1 cos(1.1 (r+1)(j+1))`, `r = i + offset`.
pub fn design(n: usize, d: usize, offset: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, d, |i, j| {
        let r1 = (i + offset) as f64 + 1.0;
        let j1 = j as f64 + 1.0;
        (0.37 * r1 + 1.3 * j1).sin() + 0.1 * (1.1 * r1 * j1).cos()
    })
}

/// `w_true[j] = cos(0.5 (j+1))`.
pub fn w_true(d: usize) -> DVector<f64> {
    DVector::from_fn(d, |j, _| (0.5 * (j as f64 + 1.0)).cos())
}

/// `y[i] = sum_j w_true[j] X[i,j] + 0.05 sin(7 (r+1))`, `r = i + offset`.
pub fn targets(x: &DMatrix<f64>, offset: usize) -> DVector<f64> {
    let mut y = x * w_true(x.ncols());
    for (i, yi) in y.iter_mut().enumerate() {
        *yi += 0.05 * (7.0 * ((i + offset) as f64 + 1.0)).sin();
    }
    y
}

/// Regression data with `n_train` training rows, `n_val` validation rows (offset
/// [`VAL_OFFSET`]) and `d` features.
pub fn regression(n_train: usize, n_val: usize, d: usize) -> Split {
    let x = design(n_train, d, 0);
    let y = targets(&x, 0);
    let xv = design(n_val, d, VAL_OFFSET);
    let yv = targets(&xv, VAL_OFFSET);
    Split {
        train: Dataset { x, y },
        val: Dataset { x: xv, y: yv },
    }
}

/// Regression data with `n_train` training rows (offset 0) and `n_val` validation rows at
/// row offset `val_offset` (the large ridge problem puts them beyond its training rows).
pub fn regression_at(n_train: usize, n_val: usize, d: usize, val_offset: usize) -> Split {
    let x = design(n_train, d, 0);
    let y = targets(&x, 0);
    let xv = design(n_val, d, val_offset);
    let yv = targets(&xv, val_offset);
    Split {
        train: Dataset { x, y },
        val: Dataset { x: xv, y: yv },
    }
}

/// The held-out test rows of W1 (`N_TEST` rows at [`TEST_OFFSET`], `D` features): the
/// same formulas as the training and validation rows.
pub fn w1_test() -> Dataset {
    let x = design(N_TEST, D, TEST_OFFSET);
    let y = targets(&x, TEST_OFFSET);
    Dataset { x, y }
}

/// The held-out test rows of W2: [`w1_test`] with 0/1 labels `1{y > 0}`.
pub fn w2_test() -> Dataset {
    let mut t = w1_test();
    t.y = labels(&t.y);
    t
}

/// Labels `c_i = 1` if `y_i > 0` (strictly), else 0.
pub fn labels(y: &DVector<f64>) -> DVector<f64> {
    y.map(|v| if v > 0.0 { 1.0 } else { 0.0 })
}

/// W1: 500 training rows, 200 validation rows, 50 features.
pub fn w1() -> Split {
    regression(N_TRAIN, N_VAL, D)
}

/// W2: W1's rows with 0/1 labels `1{y > 0}` for training and validation.
pub fn w2() -> Split {
    let mut s = w1();
    s.train.y = labels(&s.train.y);
    s.val.y = labels(&s.val.y);
    s
}

/// W2's starting hyperparameters: `u_j = log λ_j = -3 + 0.05 j`.
pub fn w2_log_lambda(d: usize) -> Vec<f64> {
    (0..d).map(|j| -3.0 + 0.05 * j as f64).collect()
}
