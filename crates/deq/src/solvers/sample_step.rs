//! The per-sample update rule every solver implements (below the solvers and the driver).

/// The per-sample state of a solver.
pub(crate) trait SampleStep {
    /// Replace z by the next iterate, given g = f(z) − z.
    fn step(&mut self, z: &mut [f64], g: &[f64]);
    /// History restarts so far.
    fn restarts(&self) -> usize {
        0
    }
}
