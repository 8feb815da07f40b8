//! What a forward solver may return: x* directly (`DMatrix<f64>`, or `Vec<f64>` for a
//! column), or a `Result` of either with any error convertible into
//! [`ad_core::RuleError`] (any `std::error::Error + Send + Sync + 'static`, `String`,
//! `&str`). So infallible solvers need no `Ok::<_, Infallible>`.

use ad_core::RuleError;
use nalgebra::DMatrix;

/// The return type of a forward solver given to [`implicit_node`](crate::implicit_node)
/// or [`implicit_scalar_node`](crate::implicit_scalar_node).
pub trait SolverOutput {
    /// x*, or the solver's error.
    fn into_solution(self) -> Result<DMatrix<f64>, RuleError>;
}

impl SolverOutput for DMatrix<f64> {
    fn into_solution(self) -> Result<DMatrix<f64>, RuleError> {
        Ok(self)
    }
}

/// A column x*.
impl SolverOutput for Vec<f64> {
    fn into_solution(self) -> Result<DMatrix<f64>, RuleError> {
        Ok(DMatrix::from_vec(self.len(), 1, self))
    }
}

impl<T: SolverOutput, E: Into<RuleError>> SolverOutput for Result<T, E> {
    fn into_solution(self) -> Result<DMatrix<f64>, RuleError> {
        self.map_err(Into::into)?.into_solution()
    }
}
