//! What a forward solve did: iterations, residuals, map evaluations.

use serde::{Deserialize, Serialize};

use super::kind::MethodKind;

/// A failed attempt of a fallback chain, kept in the stats of the run that followed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The solver that failed.
    pub method: MethodKind,
    /// Its iterations.
    pub iterations: usize,
    /// Its lowest residual (worst sample).
    pub lowest_residual: f64,
    /// Its error message.
    pub error: String,
}

/// Statistics of a forward solve (also carried by its errors).
///
/// Per-sample quantities have one entry per column of the state (one entry in total
/// when [`per_sample`](super::SolverOptions::per_sample) is off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolveStats {
    /// The solver of this run.
    pub method: MethodKind,
    /// Iterations of this run: the most any sample made.
    pub iterations: usize,
    /// Map evaluations counted per sample (a call on k columns counts k), over every
    /// attempt of a fallback chain.
    pub function_evals: usize,
    /// Calls of the map (each on the batch of still active samples).
    pub map_calls: usize,
    /// Per iteration, the largest residual over the samples (a converged sample counts
    /// with its last residual).
    pub residual_trace: Vec<f64>,
    /// The residual of the returned iterate, worst sample: each sample's lowest residual,
    /// maximized over samples.
    pub lowest_residual: f64,
    /// Each sample's lowest residual (that of its returned iterate).
    pub sample_residuals: Vec<f64>,
    /// Each sample's iterations.
    pub sample_iterations: Vec<usize>,
    /// History restarts (Anderson: singular or ill-conditioned least squares; Broyden:
    /// skipped or reset updates).
    pub restarts: usize,
    /// Whether every sample reached the tolerance.
    pub converged: bool,
    /// Earlier failed attempts of a fallback chain (empty without one).
    pub attempts: Vec<Attempt>,
}

impl SolveStats {
    pub(crate) fn new(method: MethodKind, batch: usize) -> SolveStats {
        SolveStats {
            method,
            iterations: 0,
            function_evals: 0,
            map_calls: 0,
            residual_trace: Vec::new(),
            lowest_residual: f64::INFINITY,
            sample_residuals: vec![f64::INFINITY; batch],
            sample_iterations: vec![0; batch],
            restarts: 0,
            converged: false,
            attempts: Vec::new(),
        }
    }
}
