//! One sample's update rule, shared by the driver: given an iterate z and its residual
//! g = f(z) − z, write the next iterate.

use super::anderson::Anderson;
use super::broyden::Broyden;
use super::options::Method;
use super::sample_step::SampleStep;

/// z ← z + τ g.
pub(crate) struct Picard {
    damping: f64,
}

impl SampleStep for Picard {
    fn step(&mut self, z: &mut [f64], g: &[f64]) {
        for (zi, gi) in z.iter_mut().zip(g) {
            *zi += self.damping * gi;
        }
    }
}

/// A fresh per-sample state of `method` for samples of dimension `d`.
pub(crate) fn make(method: &Method, d: usize) -> Box<dyn SampleStep> {
    match *method {
        Method::Picard(p) => Box::new(Picard { damping: p.damping }),
        Method::Anderson(a) => Box::new(Anderson::new(a, d)),
        Method::Broyden(b) => Box::new(Broyden::new(b, d)),
    }
}
