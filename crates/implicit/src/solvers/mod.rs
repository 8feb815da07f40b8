//! Forward solvers from other crates, adapted to this crate's problems.
//!
//! | module | what |
//! |---|---|
//! | [`forward_solver`] | an argmin method as the forward solver of `implicit_node` / `SolutionFn` |
//! | [`newton`] | the library's Newton method: dense Hessians from one batched sweep, factor returned for the backward pass |
//! | [`argmin_rs`] | the argmin crate's L-BFGS and Newton-CG on ad-core functions, exact gradients and Hessian-vector products |

pub mod argmin_rs;
mod forward;
pub mod newton;

pub use forward::forward_solver;
