//! Full reference hypergradients, dumped from the numpy peer by `scripts/peer_reference.py`
//! (the peer's own data and Newton + dense IFT computation, 17 significant digits):
//!
//! ```json
//! {"w1": {"hypergrad": 0.0694…, "val_loss": …},
//!  "w2": {"hypergrad": [50 numbers], "val_loss": …}}
//! ```
//!
//! The error measures used by the benchmarks: W1 relative error of the scalar; W2 the
//! largest error over all 50 entries relative to the largest entry,
//! `max_j |g_j − r_j| / max_j |r_j|` (entries near zero make entrywise relative errors
//! meaningless; the peers' own `max_abs_err` is the numerator of this measure).
//!
//! ```
//! use workloads::reference::Reference;
//! let r: Reference = serde_json::from_str(
//!     r#"{"w1": {"hypergrad": 2.0, "val_loss": 1.0}, "w2": {"hypergrad": [1.0, -4.0], "val_loss": 1.0}}"#,
//! ).unwrap();
//! assert!((r.w1_error(2.0 + 2e-9) - 1e-9).abs() < 1e-15);
//! assert!((r.w2_error(&[1.0 + 4e-9, -4.0]).unwrap() - 1e-9).abs() < 1e-15);
//! assert_eq!(r.w2_error(&[1.0]), None); // wrong length
//! ```

use serde::{Deserialize, Serialize};

/// One workload's reference values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry<T> {
    /// The hypergradient (a scalar for W1, 50 entries for W2).
    pub hypergrad: T,
    /// The validation loss at the inner solution.
    pub val_loss: f64,
}

/// The reference values of W1 and W2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// W1: d val / d λ at λ = 0.1.
    pub w1: Entry<f64>,
    /// W2: d val / d u, all 50 entries.
    pub w2: Entry<Vec<f64>>,
}

/// Why a reference file could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The file is not a reference document.
    Parse(serde_json::Error),
    /// A value is not finite or the W2 vector is empty.
    Invalid(&'static str),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(e) => write!(f, "cannot read the reference file: {e}"),
            LoadError::Parse(e) => write!(f, "malformed reference file: {e}"),
            LoadError::Invalid(what) => write!(f, "invalid reference file: {what}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl Reference {
    /// Read and check a reference file.
    pub fn load(path: &std::path::Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(LoadError::Io)?;
        let r: Reference = serde_json::from_str(&text).map_err(LoadError::Parse)?;
        if !r.w1.hypergrad.is_finite() || r.w1.hypergrad == 0.0 {
            return Err(LoadError::Invalid(
                "W1 hypergradient not finite and non-zero",
            ));
        }
        if r.w2.hypergrad.is_empty() || r.w2.hypergrad.iter().any(|v| !v.is_finite()) {
            return Err(LoadError::Invalid("W2 hypergradient empty or not finite"));
        }
        Ok(r)
    }

    /// `|g − r| / |r|` for W1.
    pub fn w1_error(&self, g: f64) -> f64 {
        (g - self.w1.hypergrad).abs() / self.w1.hypergrad.abs()
    }

    /// `max_j |g_j − r_j| / max_j |r_j|` over all W2 entries; `None` if the lengths differ.
    /// NaN entries give NaN.
    pub fn w2_error(&self, g: &[f64]) -> Option<f64> {
        if g.len() != self.w2.hypergrad.len() {
            return None;
        }
        let scale = self.w2.hypergrad.iter().fold(0.0f64, |m, r| m.max(r.abs()));
        let err = g
            .iter()
            .zip(&self.w2.hypergrad)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, |m, e| {
                if e.is_nan() || m.is_nan() {
                    f64::NAN
                } else {
                    m.max(e)
                }
            });
        Some(err / scale)
    }
}
