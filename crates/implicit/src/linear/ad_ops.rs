//! Operators from ad-core derivative products: Hessian-vector and Jacobian-vector
//! products at a point, so a Hessian or Jacobian is never formed unless a dense method asks.
//!
//! ```
//! use ad_core::{Real, ScalarFn};
//! use implicit::linear::{cg, HessianOperator, SolveOptions};
//! // f(x) = sum_i (i + 1) x_i^2 / 2 + x_0 x_1 has Hessian diag(1, 2, 3) + offdiag at (0, 1).
//! struct F;
//! impl ScalarFn for F {
//!     fn eval<S: Real>(&self, x: &[S]) -> S {
//!         let mut s = x[0] * x[1];
//!         for (i, xi) in x.iter().enumerate() {
//!             s += xi.square() * (0.5 * (i + 1) as f64);
//!         }
//!         s
//!     }
//! }
//! let h = HessianOperator::new(&F, &[0.3, -0.2, 0.5]);
//! let sol = cg(&h, &[1.0, 1.0, 3.0], None, None, &SolveOptions::default()).unwrap();
//! // [[1, 1, 0], [1, 2, 0], [0, 0, 3]] x = [1, 1, 3]  =>  x = [1, 0, 1]
//! assert!((sol.x[0] - 1.0).abs() < 1e-10 && sol.x[1].abs() < 1e-10 && (sol.x[2] - 1.0).abs() < 1e-10);
//! ```

use ad_core::{MatFn, ScalarFn, VectorFn, hvp, hvp_mat, jvp, vjp};
use nalgebra::DMatrix;

use crate::linear::operator::{LinearOperator, OperatorError, Structure};

fn copy_checked(src: &[f64], dst: &mut [f64]) -> Result<(), OperatorError> {
    if src.len() != dst.len() {
        return Err(OperatorError::Length {
            expected: dst.len(),
            got: src.len(),
        });
    }
    dst.copy_from_slice(src);
    Ok(())
}

/// The Hessian `∇²f(x)` of a scalar function at a point, applied by ad-core's exact
/// Hessian-vector product ([`ad_core::hvp`], reverse over forward; one tape per product).
/// Symmetric; declare positive definiteness with [`HessianOperator::with_structure`] if
/// known (for example at a strict local minimum), which lets
/// [`Method::Auto`](crate::linear::Method::Auto) pick CG instead of MINRES.
#[derive(Debug)]
pub struct HessianOperator<'a, F> {
    f: &'a F,
    x: &'a [f64],
    structure: Structure,
}

impl<'a, F: ScalarFn> HessianOperator<'a, F> {
    /// The Hessian of `f` at `x`.
    pub fn new(f: &'a F, x: &'a [f64]) -> Self {
        HessianOperator {
            f,
            x,
            structure: Structure::SYMMETRIC,
        }
    }

    /// Declare more structure (for example [`Structure::SPD`]). A Hessian is always
    /// symmetric: this panics if `structure.symmetric` is false (a programmer error).
    pub fn with_structure(mut self, structure: Structure) -> Self {
        assert!(
            structure.is_symmetric(),
            "a Hessian is symmetric; declare Structure::SYMMETRIC or Structure::SPD"
        );
        self.structure = structure;
        self
    }

    /// The point the Hessian is taken at.
    pub fn point(&self) -> &[f64] {
        self.x
    }
}

impl<F: ScalarFn> LinearOperator for HessianOperator<'_, F> {
    fn nrows(&self) -> usize {
        self.x.len()
    }
    fn ncols(&self) -> usize {
        self.x.len()
    }
    fn apply(&self, v: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let hv = hvp(self.f, self.x, v)?;
        copy_checked(&hv, y)
    }
    fn apply_transpose(&self, v: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        self.apply(v, y)
    }
    fn structure(&self) -> Structure {
        self.structure
    }
}

/// The Hessian of a matrix function ([`ad_core::MatFn`]) with respect to all its parameter
/// blocks, seen as one flat vector: the blocks' entries in order, each block column-major
/// (nalgebra's storage order). Applied by [`ad_core::hvp_mat`]. Symmetric.
///
/// Use [`MatHessianOperator::flatten`] and [`MatHessianOperator::unflatten`] to move
/// between blocks and flat vectors.
#[derive(Debug)]
pub struct MatHessianOperator<'a, F> {
    f: &'a F,
    params: &'a [DMatrix<f64>],
    n: usize,
    structure: Structure,
}

impl<'a, F: MatFn> MatHessianOperator<'a, F> {
    /// The Hessian of `f` at `params`.
    pub fn new(f: &'a F, params: &'a [DMatrix<f64>]) -> Self {
        MatHessianOperator {
            f,
            params,
            n: params.iter().map(|p| p.len()).sum(),
            structure: Structure::SYMMETRIC,
        }
    }

    /// Declare more structure; panics if `structure.symmetric` is false (a Hessian is
    /// symmetric).
    pub fn with_structure(mut self, structure: Structure) -> Self {
        assert!(
            structure.is_symmetric(),
            "a Hessian is symmetric; declare Structure::SYMMETRIC or Structure::SPD"
        );
        self.structure = structure;
        self
    }

    /// The blocks' entries as one flat vector (each block column-major).
    pub fn flatten(blocks: &[DMatrix<f64>]) -> Vec<f64> {
        blocks
            .iter()
            .flat_map(|b| b.as_slice().iter().copied())
            .collect()
    }

    /// A flat vector cut into blocks of the parameters' shapes. Panics if the length is
    /// not the operator's dimension (a programmer error).
    pub fn unflatten(&self, flat: &[f64]) -> Vec<DMatrix<f64>> {
        assert_eq!(
            flat.len(),
            self.n,
            "flat vector has length {}, the parameters have {} entries",
            flat.len(),
            self.n
        );
        let mut offset = 0;
        self.params
            .iter()
            .map(|p| {
                let len = p.len();
                let block =
                    DMatrix::from_column_slice(p.nrows(), p.ncols(), &flat[offset..offset + len]);
                offset += len;
                block
            })
            .collect()
    }
}

impl<F: MatFn> LinearOperator for MatHessianOperator<'_, F> {
    fn nrows(&self) -> usize {
        self.n
    }
    fn ncols(&self) -> usize {
        self.n
    }
    fn apply(&self, v: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let blocks = self.unflatten(v);
        let hv = hvp_mat(self.f, self.params, &blocks)?;
        let mut offset = 0;
        for (block, p) in hv.iter().zip(self.params) {
            if block.shape() != p.shape() {
                return Err(OperatorError::Length {
                    expected: p.len(),
                    got: block.len(),
                });
            }
            y[offset..offset + block.len()].copy_from_slice(block.as_slice());
            offset += block.len();
        }
        Ok(())
    }
    fn apply_transpose(&self, v: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        self.apply(v, y)
    }
    fn structure(&self) -> Structure {
        self.structure
    }
}

/// The Jacobian `∂f/∂x` of a vector function at a point: `apply` is a forward-mode
/// Jacobian-vector product ([`ad_core::jvp`]), `apply_transpose` a reverse-mode
/// vector-Jacobian product ([`ad_core::vjp`]). Square or rectangular; general structure.
///
/// ```
/// use ad_core::{Real, VectorFn};
/// use implicit::linear::{gmres, JacobianOperator, LinearOperator, SolveOptions};
/// struct F;
/// impl VectorFn for F {
///     fn eval<S: Real>(&self, x: &[S]) -> Vec<S> {
///         vec![x[0] * x[1], x[0] + x[1].sin()]
///     }
/// }
/// let j = JacobianOperator::new(&F, &[2.0, 0.0]); // J = [[0, 2], [1, 1]]
/// assert_eq!(j.value(), &[0.0, 2.0]);
/// let sol = gmres(&j, &[2.0, 2.0], None, None, &SolveOptions::default()).unwrap();
/// assert!((sol.x[0] - 1.0).abs() < 1e-12 && (sol.x[1] - 1.0).abs() < 1e-12);
/// let mut y = [0.0; 2];
/// j.apply_transpose(&[1.0, 0.0], &mut y).unwrap(); // first row of J
/// assert_eq!(y, [0.0, 2.0]);
/// ```
#[derive(Debug)]
pub struct JacobianOperator<'a, F> {
    f: &'a F,
    x: &'a [f64],
    value: Vec<f64>,
}

impl<'a, F: VectorFn> JacobianOperator<'a, F> {
    /// The Jacobian of `f` at `x` (evaluates `f(x)` once, to learn the output size).
    pub fn new(f: &'a F, x: &'a [f64]) -> Self {
        let value = f.eval(x);
        JacobianOperator { f, x, value }
    }

    /// `f(x)`, computed at construction (for example the optimality residual `F(x*, θ)`).
    pub fn value(&self) -> &[f64] {
        &self.value
    }

    /// The point the Jacobian is taken at.
    pub fn point(&self) -> &[f64] {
        self.x
    }
}

impl<F: VectorFn> LinearOperator for JacobianOperator<'_, F> {
    fn nrows(&self) -> usize {
        self.value.len()
    }
    fn ncols(&self) -> usize {
        self.x.len()
    }
    fn apply(&self, v: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let (_, jv) = jvp(self.f, self.x, v)?;
        copy_checked(&jv, y)
    }
    fn apply_transpose(&self, u: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let (_, ju) = vjp(self.f, self.x, u)?;
        copy_checked(&ju, y)
    }
}
