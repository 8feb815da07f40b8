//! Forward solvers from other crates, adapted to this crate's problems.
//!
//! | module | what |
//! |---|---|
//! | [`argmin_rs`] | the argmin crate's L-BFGS and Newton-CG on ad-core functions, exact gradients and Hessian-vector products |

pub mod argmin_rs;
