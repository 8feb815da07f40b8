//! The equilibrium layer: z* = f(z*, x; θ) solved forward in `f64` by a
//! [forward solver](crate::solvers), recorded on ad-core's tape as one node whose
//! backward pass is implicit's (exact, phantom or Jacobian-free, chosen by
//! [`IftOptions::backward`]). Gradients reach every block of θ and the input x; memory
//! does not depend on how many iterations found z*.

use std::sync::Arc;

use ad_core::{MatOps, MatVar};
use implicit::{IftOptions, ImplicitNode, implicit_node};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{DeqError, check_finite};
use crate::linearization::DeqProblem;
use crate::map::EquilibriumMap;
use crate::solvers::{Solution, SolveStats, SolverOptions, StopMode, solve};

/// Options of a [`DeqLayer`]: the forward solver and the backward pass.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DeqOptions {
    /// The forward solver (method, tolerance, fallback chain, ...).
    pub solver: SolverOptions,
    /// The implicit differentiation (backward pass, linear solver, accepted residual).
    pub ift: IftOptions,
}

impl DeqOptions {
    /// Set the forward solver's options.
    pub fn solver(mut self, solver: SolverOptions) -> Self {
        self.solver = solver;
        self
    }
    /// Set the implicit differentiation's options.
    pub fn ift(mut self, ift: IftOptions) -> Self {
        self.ift = ift;
        self
    }
    /// Check both option sets.
    pub fn validate(&self) -> Result<(), DeqError> {
        self.solver.validate()?;
        self.ift.validate()?;
        Ok(())
    }
}

/// What [`DeqLayer::forward`] returns.
#[derive(Debug)]
pub struct DeqOutput {
    /// z* on the tape (`d x batch`).
    pub z: MatVar,
    /// The forward solve's stats.
    pub stats: SolveStats,
    /// The node: the residual it checked and the reports of its backward passes.
    pub node: ImplicitNode,
}

/// A deep equilibrium layer over a map f (see [`EquilibriumMap`]).
///
/// ```
/// use ad_core::{MatOps, Tape};
/// use deq::{DeqLayer, map::TanhLayer};
/// use nalgebra::DMatrix;
/// let layer = DeqLayer::new(TanhLayer::default());
/// let tape = Tape::new();
/// let w = tape.mat_var(DMatrix::from_fn(3, 3, |i, j| 0.2 * (i as f64 - j as f64).sin()));
/// let u = tape.mat_var(DMatrix::from_fn(3, 2, |i, j| 0.3 * (i + j) as f64 - 0.4));
/// let b = tape.mat_var(DMatrix::from_element(3, 1, 0.1));
/// let x = tape.mat_var(DMatrix::from_fn(2, 4, |i, j| (i as f64 + 1.0) * (j as f64 - 1.5)));
/// let out = layer.forward(&x, &[w, u, b])?;            // z* is 3 x 4, one node
/// let loss = out.z.square().mean();
/// let g = tape.gradient(loss)?;                        // implicit backward pass
/// assert_eq!(g.wrt_mat(&w).shape(), (3, 3));
/// assert_eq!(g.wrt_mat(&x).shape(), (2, 4));           // the input gets its gradient too
/// assert!(out.stats.converged && out.stats.lowest_residual <= 1e-10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DeqLayer<F> {
    map: Arc<F>,
    options: DeqOptions,
}

impl<F> Clone for DeqLayer<F> {
    fn clone(&self) -> Self {
        DeqLayer {
            map: Arc::clone(&self.map),
            options: self.options.clone(),
        }
    }
}

impl<F: EquilibriumMap + 'static> DeqLayer<F> {
    /// A layer with default options (Anderson forward, exact implicit backward).
    pub fn new(map: F) -> DeqLayer<F> {
        DeqLayer {
            map: Arc::new(map),
            options: DeqOptions::default(),
        }
    }

    /// Replace the options.
    pub fn with_options(mut self, options: DeqOptions) -> DeqLayer<F> {
        self.options = options;
        self
    }

    /// The options.
    pub fn options(&self) -> &DeqOptions {
        &self.options
    }

    /// The map.
    pub fn map(&self) -> &F {
        &self.map
    }

    /// Check options, finiteness and shapes; the state dimension.
    fn check(&self, x: &DMatrix<f64>, theta: &[DMatrix<f64>]) -> Result<usize, DeqError> {
        self.options.validate()?;
        let shapes: Vec<_> = theta.iter().map(|t| t.shape()).collect();
        self.map.check_shapes(x.shape(), &shapes)?;
        check_finite("input x", 0, x)?;
        for (i, t) in theta.iter().enumerate() {
            check_finite("parameters theta", i, t)?;
        }
        Ok(self.map.state_rows(x, theta))
    }

    /// Solve for z* in plain `f64` (no tape), from z₀ = 0.
    ///
    /// # Errors
    /// Invalid options, shapes or non-finite inputs; the forward solver's failure with
    /// its stats (or the explicit fallback the options ask for).
    pub fn solve(&self, x: &DMatrix<f64>, theta: &[DMatrix<f64>]) -> Result<Solution, DeqError> {
        let d = self.check(x, theta)?;
        let z0 = DMatrix::zeros(d, x.ncols());
        self.solve_from(x, theta, &z0)
    }

    /// [`solve`](Self::solve) from a given z₀ (a warm start), without the checks.
    fn solve_from(
        &self,
        x: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
        z0: &DMatrix<f64>,
    ) -> Result<Solution, DeqError> {
        let batch = x.ncols();
        let map = &*self.map;
        let injection = map.inject(x, theta);
        if injection.ncols() != batch {
            return Err(DeqError::Shape {
                what: "input injection (one column per sample)",
                expected: (injection.nrows(), batch),
                got: injection.shape(),
            });
        }
        let f = |z: &DMatrix<f64>, cols: &[usize]| -> DMatrix<f64> {
            if cols.len() == batch {
                map.map(z, &injection, theta)
            } else {
                map.map(z, &crate::solvers::gather_columns(&injection, cols), theta)
            }
        };
        solve(f, z0, &self.options.solver)
    }

    /// The layer as an ad-core [`CustomFn`](ad_core::CustomFn) of the blocks `[θ..., x]`
    /// with the one output z*, for use inside any function written against `MatOps`
    /// (`M::custom(&f, &blocks)`): plain `f64` evaluation solves, forward mode
    /// (`DualMat`) applies the implicit JVP, the tape records one node (implicit's
    /// [`SolutionFn`](implicit::SolutionFn) around this layer's solver). A failed solve is
    /// `AdError::CustomRule` carrying the [`DeqError`].
    ///
    /// ```
    /// use ad_core::{jvp_mat, value_and_grad_mat, CustomFn, MatFn, MatOps};
    /// use deq::{DeqLayer, TanhLayer};
    /// use nalgebra::DMatrix;
    /// struct Loss<F>(F);
    /// impl<F: CustomFn> MatFn for Loss<F> {
    ///     fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
    ///         M::custom(&self.0, p).expect("the solve succeeds")[0].square().sum()
    ///     }
    /// }
    /// let layer = DeqLayer::new(TanhLayer::normalized(0.5));
    /// let loss = Loss(layer.solution_fn());
    /// let p = vec![
    ///     DMatrix::from_fn(3, 3, |i, j| ((i * 3 + j) as f64).sin()),   // W
    ///     DMatrix::from_fn(3, 2, |i, j| ((i + j) as f64).cos()),       // U
    ///     DMatrix::from_element(3, 1, 0.1),                           // b
    ///     DMatrix::from_fn(2, 4, |i, j| i as f64 - 0.3 * j as f64),   // x
    /// ];
    /// let (_, g) = value_and_grad_mat(&loss, &p)?;                     // reverse mode
    /// let (_, d) = jvp_mat(&loss, &p, &g)?;                            // forward mode
    /// let gg: f64 = g.iter().map(|m| m.norm_squared()).sum();
    /// assert!((d - gg).abs() <= 1e-8 * gg);                            // <∇L, ∇L> both ways
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn solution_fn(&self) -> impl ad_core::CustomFn + use<F> {
        let problem = DeqProblem {
            map: Arc::clone(&self.map),
            input: None,
            known_residual: None,
        };
        let layer = self.clone();
        let solver = move |blocks: &[DMatrix<f64>]| -> Result<DMatrix<f64>, DeqError> {
            let (x, theta) = blocks.split_last().ok_or(DeqError::BlockCount {
                expected: 2,
                got: 0,
            })?;
            Ok(layer.solve(x, theta)?.z)
        };
        implicit::SolutionFn::new(problem, solver, self.options.ift.clone())
    }

    /// The layer on the tape: solve at the values of `x` (`p x batch`) and θ, then record
    /// z* as one node with inputs `[θ..., x]`.
    ///
    /// # Errors
    /// As [`solve`](Self::solve); then implicit's checks ([`DeqError::Implicit`]: the
    /// residual of z* above `ift.residual_tol`, for instance).
    pub fn forward(&self, x: &MatVar, theta: &[MatVar]) -> Result<DeqOutput, DeqError> {
        let xv = x.value();
        let mut inputs = theta.to_vec();
        inputs.push(*x);
        self.record(&xv, &inputs, None)
    }

    /// [`forward`](Self::forward) for an input that is data (a plain matrix, no gradient):
    /// the node's inputs are θ alone, so the backward pass forms no x̄.
    pub fn forward_data(&self, x: &DMatrix<f64>, theta: &[MatVar]) -> Result<DeqOutput, DeqError> {
        let data = Arc::new(x.clone());
        self.record(x, theta, Some(data))
    }

    fn record(
        &self,
        xv: &DMatrix<f64>,
        inputs: &[MatVar],
        data: Option<Arc<DMatrix<f64>>>,
    ) -> Result<DeqOutput, DeqError> {
        let n_theta = if data.is_some() {
            inputs.len()
        } else {
            inputs.len() - 1
        };
        let tv: Vec<DMatrix<f64>> = inputs[..n_theta].iter().map(|t| t.value()).collect();
        let sol = self.solve(xv, &tv)?;
        // The solver measured each sample's absolute residual at the returned iterate: their
        // root sum of squares is ‖f(z*) − z*‖_F, which the node checks (no second evaluation).
        let opts = &self.options.solver;
        let known_residual = (opts.stop == StopMode::Absolute).then(|| {
            let r = sol
                .stats
                .sample_residuals
                .iter()
                .map(|r| r * r)
                .sum::<f64>()
                .sqrt();
            (sol.z.clone(), r)
        });
        let problem = DeqProblem {
            map: Arc::clone(&self.map),
            input: data,
            known_residual,
        };
        let shape = sol.z.shape();
        let ift = self.options.ift.clone().solution_shape(shape.0, shape.1);
        let z_star = sol.z;
        let (z, node) = implicit_node(problem, inputs, move |_: &[DMatrix<f64>]| z_star, ift)?;
        Ok(DeqOutput {
            z,
            stats: sol.stats,
            node,
        })
    }
}
