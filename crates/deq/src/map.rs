//! The layer map f(z, x; θ) of an equilibrium layer, written once against ad-core's
//! [`MatOps`] (evaluated in `f64` by the forward solvers, recorded on the tape for the
//! backward pass), and ready maps: [`TanhLayer`] and the monotone [`MonotoneLayer`].
//!
//! The state z is `d x batch` (one sample per column), the input x is `p x batch`, θ is a
//! list of parameter blocks. The map is split in two: the **input injection**
//! [`inject`](EquilibriumMap::inject)(x; θ), computed once per solve (for a tanh layer
//! U x + b), and [`map`](EquilibriumMap::map)(z, injection; θ), evaluated at every
//! iteration. A map must treat the columns independently (column k of f depends on
//! columns k of z and of the injection only): per-sample convergence evaluates it on
//! subsets of columns.

use ad_core::MatOps;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{DeqError, check_shape};

/// The map f(z, x; θ) = map(z, inject(x; θ); θ) of an equilibrium layer z* = f(z*, x; θ).
pub trait EquilibriumMap {
    /// The input injection: everything of f that depends on x and θ only (a matrix with
    /// one column per sample), computed once per solve. The default is x itself.
    fn inject<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        let _ = theta;
        x.clone()
    }

    /// f(z, injection; θ): shaped like z (`d x batch`).
    fn map<M: MatOps>(&self, z: &M, injection: &M, theta: &[M]) -> M;

    /// f(z, x; θ) = map(z, inject(x; θ); θ).
    fn apply<M: MatOps>(&self, z: &M, x: &M, theta: &[M]) -> M {
        self.map(z, &self.inject(x, theta), theta)
    }

    /// The state dimension d for these parameters and input (the rows of z).
    fn state_rows(&self, x: &DMatrix<f64>, theta: &[DMatrix<f64>]) -> usize;

    /// Check the shapes of x and of the blocks before any work (default: accept).
    /// Return [`DeqError::Shape`] or [`DeqError::BlockCount`] naming what is wrong.
    fn check_shapes(&self, x: (usize, usize), theta: &[(usize, usize)]) -> Result<(), DeqError> {
        let _ = (x, theta);
        Ok(())
    }
}

impl<T: EquilibriumMap + ?Sized> EquilibriumMap for std::sync::Arc<T> {
    fn inject<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        (**self).inject(x, theta)
    }
    fn map<M: MatOps>(&self, z: &M, injection: &M, theta: &[M]) -> M {
        (**self).map(z, injection, theta)
    }
    fn state_rows(&self, x: &DMatrix<f64>, theta: &[DMatrix<f64>]) -> usize {
        (**self).state_rows(x, theta)
    }
    fn check_shapes(&self, x: (usize, usize), theta: &[(usize, usize)]) -> Result<(), DeqError> {
        (**self).check_shapes(x, theta)
    }
}

/// How [`TanhLayer`] uses its W block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub enum Scaling {
    /// W as given.
    #[default]
    None,
    /// Weight normalization with a fixed gain: W_eff = gain · W / ‖W‖_F. Since
    /// ‖W_eff‖₂ <= ‖W_eff‖_F = gain and tanh' <= 1, a gain below 1 makes f a contraction
    /// in z, so the fixed point exists, is unique, and Picard converges.
    Normalized {
        /// The gain (the Frobenius norm of W_eff).
        gain: f64,
    },
}

/// The single-layer map z ↦ tanh(W z + U x + b 1ᵀ), θ = [W (d x d), U (d x p), b (d x 1)];
/// the injection is U x + b 1ᵀ.
///
/// ```
/// use deq::map::{EquilibriumMap, TanhLayer};
/// use nalgebra::DMatrix;
/// let theta = [DMatrix::identity(2, 2) * 0.5, DMatrix::from_element(2, 1, 1.0), DMatrix::zeros(2, 1)];
/// let x = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, -1.0]);
/// let fz = TanhLayer::default().apply(&DMatrix::zeros(2, 3), &x, &theta);
/// assert!((fz[(0, 1)] - 1f64.tanh()).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TanhLayer {
    /// Scaling of W.
    pub scaling: Scaling,
}

impl TanhLayer {
    /// A layer with W normalized to Frobenius norm `gain` (see [`Scaling::Normalized`]).
    pub fn normalized(gain: f64) -> TanhLayer {
        TanhLayer {
            scaling: Scaling::Normalized { gain },
        }
    }

    /// The W this layer multiplies by (after scaling).
    pub fn effective_w<M: MatOps>(&self, w: &M) -> M {
        match self.scaling {
            Scaling::None => w.clone(),
            Scaling::Normalized { gain } => {
                let inv = ad_core::Real::recip(ad_core::Real::sqrt(w.sq_norm()));
                w.scale(inv * gain)
            }
        }
    }
}

/// Shapes of [.., square (d x d), U (d x p), b (d x 1)] against x (p x batch), the square
/// block at `extra` named `square`.
fn check_wub(
    x: (usize, usize),
    theta: &[(usize, usize)],
    extra: usize,
    square: &'static str,
) -> Result<(), DeqError> {
    if theta.len() != 3 + extra {
        return Err(DeqError::BlockCount {
            expected: 3 + extra,
            got: theta.len(),
        });
    }
    let d = theta[extra].0;
    check_shape(square, (d, d), theta[extra])?;
    check_shape("U (d x p, p = rows of x)", (d, x.0), theta[extra + 1])?;
    check_shape("b (d x 1)", (d, 1), theta[extra + 2])
}

impl EquilibriumMap for TanhLayer {
    fn inject<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        theta[1].matmul(x).add_col(&theta[2])
    }
    fn map<M: MatOps>(&self, z: &M, injection: &M, theta: &[M]) -> M {
        let wz = match self.scaling {
            Scaling::None => theta[0].matmul(z), // no copy of W
            Scaling::Normalized { .. } => self.effective_w(&theta[0]).matmul(z),
        };
        wz.add(injection).tanh()
    }
    fn state_rows(&self, _x: &DMatrix<f64>, theta: &[DMatrix<f64>]) -> usize {
        theta[0].nrows()
    }
    fn check_shapes(&self, x: (usize, usize), theta: &[(usize, usize)]) -> Result<(), DeqError> {
        if let Scaling::Normalized { gain } = self.scaling {
            crate::error::require(
                gain.is_finite() && gain > 0.0,
                "scaling.gain",
                gain,
                "must be finite and > 0",
            )?;
        }
        check_wub(x, theta, 0, "W (d x d)")
    }
}

/// A monotone (monDEQ-style) layer: W = (1 − m) I − AᵀA + B − Bᵀ, so that I − W is
/// strongly monotone (I − W ⪰ m I) and the equilibrium z = relu(W z + U x + b) is unique.
/// It is found through the forward–backward splitting map
/// f(z) = relu((1 − α) z + α (W z + U x + b 1ᵀ)), whose fixed points are the same and
/// which is a contraction for α <= 2m / ‖I − W‖₂².
///
/// θ = [A (d x d), B (d x d), U (d x p), b (d x 1)]; the injection is U x + b 1ᵀ.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonotoneLayer {
    /// Monotonicity m in (0, 1].
    pub m: f64,
    /// Splitting step α in (0, 1].
    pub alpha: f64,
}

impl Default for MonotoneLayer {
    fn default() -> Self {
        MonotoneLayer { m: 0.5, alpha: 0.5 }
    }
}

impl MonotoneLayer {
    /// W = (1 − m) I − AᵀA + B − Bᵀ.
    pub fn weight<M: MatOps>(&self, a: &M, b: &M) -> M {
        let d = a.nrows();
        let eye = a.constant_like(DMatrix::identity(d, d) * (1.0 - self.m));
        eye.sub(&a.transpose().matmul(a)).add(b).sub(&b.transpose())
    }
}

impl EquilibriumMap for MonotoneLayer {
    fn inject<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        theta[2].matmul(x).add_col(&theta[3])
    }
    fn map<M: MatOps>(&self, z: &M, injection: &M, theta: &[M]) -> M {
        let w = self.weight(&theta[0], &theta[1]);
        let lin = w.matmul(z).add(injection);
        z.scale_f64(1.0 - self.alpha)
            .add(&lin.scale_f64(self.alpha))
            .relu()
    }
    fn state_rows(&self, _x: &DMatrix<f64>, theta: &[DMatrix<f64>]) -> usize {
        theta[0].nrows()
    }
    fn check_shapes(&self, x: (usize, usize), theta: &[(usize, usize)]) -> Result<(), DeqError> {
        crate::error::require(
            self.m > 0.0 && self.m <= 1.0,
            "monotone.m",
            self.m,
            "must be in (0, 1]",
        )?;
        crate::error::require(
            self.alpha > 0.0 && self.alpha <= 1.0,
            "monotone.alpha",
            self.alpha,
            "must be in (0, 1]",
        )?;
        if theta.len() != 4 {
            return Err(DeqError::BlockCount {
                expected: 4,
                got: theta.len(),
            });
        }
        check_shape("A (d x d)", (theta[0].0, theta[0].0), theta[0])?;
        check_wub(x, theta, 1, "B (d x d)")
    }
}
