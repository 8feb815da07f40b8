//! Small dense vector kernels for the solvers: implicit's (reductions with four partial
//! sums, so they vectorize), not a second copy.

pub(crate) use implicit::linear::kernels::{axpy, dot, norm};
