//! The guarantees of `ift_fd.rs` and `ift_factor.rs` for a **matrix solution** and **several
//! parameter blocks of random shapes** (2 or 3 blocks): a matrix ridge regression (argmin,
//! and the same condition written as a root) and a batched equilibrium layer (fixed point).
//!
//! 1. The Jacobian over the flattening (x column-major; blocks column-major, concatenated)
//!    equals central differences of re-solving at θ ± h·e_k; the block API (`vjp`, `jvp`)
//!    is the flat API (`vjp_flat`, `jvp_flat`) cut into blocks, to the last bit.
//! 2. The dot-product test `<vjp(U), V> = <U, jvp(V)>` with block inner products.
//! 3. Argmin and root forms agree for CG, GMRES and LU.
//! 4. `implicit_node` with matrix variables W, U, b inside a tape gives, per block, the
//!    gradient `Implicit::vjp` gives, and `Tape::forward` the tangent `Implicit::jvp` gives.
//! 5. A condition written with scalars (`Scalars`) keeps a matrix solution's shape.
//!
//! Tolerances: see `FD_STEP` and `dot_product_bound` in `ift_common/harness.rs`.

mod ift_common;

use ad_core::{MatOps, Seeds, Tape};
use implicit::linear::Method;
use implicit::{FixedPoint, IftOptions, Implicit, Shapes, implicit_node};
use nalgebra::DMatrix;
use proptest::prelude::*;

use ift_common::blocks::{BatchDeq, MatRidge, MatRidgeRoot};
use ift_common::*;

/// Which family, its sizes and seed: (kind, rows, batch k, blocks, seed).
fn block_cases() -> impl Strategy<Value = (usize, usize, usize, usize, u64)> {
    (0usize..3, 1usize..=5, 1usize..=3, 2usize..=3, any::<u64>())
}

/// A forward solve: θ blocks to x*.
type Solve = Box<dyn Fn(&[DMatrix<f64>]) -> DMatrix<f64>>;

/// An instance: its shapes, θ, the re-solve, and the implicit derivatives at x*(θ).
struct Case {
    shapes: Shapes,
    theta: Vec<DMatrix<f64>>,
    solve: Solve,
    kind: usize,
    ridge: MatRidge,
    deq: BatchDeq,
}

impl Case {
    fn new((kind, rows, k, blocks, seed): (usize, usize, usize, usize, u64)) -> Case {
        let ridge = MatRidge::random(rows, k, blocks, seed);
        let deq = BatchDeq::random(rows, rows.max(2) - 1, k, blocks, seed);
        let (shapes, theta, solve): (_, _, Solve) = if kind < 2 {
            let r = ridge.clone();
            (
                ridge.shapes(),
                ridge.theta(seed),
                Box::new(move |t| r.solve(t)),
            )
        } else {
            let d = deq.clone();
            (
                deq.shapes(),
                deq.theta(seed, 0.5),
                Box::new(move |t| d.solve(t)),
            )
        };
        Case {
            shapes,
            theta,
            solve,
            kind,
            ridge,
            deq,
        }
    }
    fn implicit(
        &self,
        x: &DMatrix<f64>,
        options: IftOptions,
    ) -> Result<Box<dyn Derivs + '_>, implicit::ImplicitError> {
        Ok(match self.kind {
            0 => Box::new(Implicit::argmin(&self.ridge, x, &self.theta, options)?),
            1 => Box::new(Implicit::root(
                &MatRidgeRoot(self.ridge.clone()),
                x,
                &self.theta,
                options,
            )?),
            _ => Box::new(Implicit::fixed_point(&self.deq, x, &self.theta, options)?),
        })
    }
    /// x*(θ) flattened, as a function of the flattened θ.
    fn flat_solve(&self, flat: &[f64]) -> Vec<f64> {
        (self.solve)(&self.shapes.theta_blocks(flat))
            .as_slice()
            .to_vec()
    }
}

/// Properties 1 and 2 (see the file docs), for every family and block layout.
#[test]
fn block_derivatives_match_finite_differences_and_are_adjoint() {
    check("blocks: FD and dot product", 96, block_cases(), |case| {
        let c = Case::new(case);
        let x = (c.solve)(&c.theta);
        prop_assert_eq!(x.shape(), c.shapes.x);
        let flat_theta = Shapes::flatten(&c.theta);
        let (n, p) = (c.shapes.n(), c.shapes.p());
        let opts = IftOptions::default();
        let derivs = c.implicit(&x, opts.clone()).or_fail()?;
        let jac = derivs.jacobian().or_fail()?;
        let fd = fd_jacobian(&|t| c.flat_solve(t), &flat_theta, FD_STEP);
        let e_fd = (&jac - &fd).norm() / fd_scale(fd.norm(), p);
        prop_assert!(e_fd <= FD_TOL, "Jacobian vs FD: {:e}", e_fd);

        // The block API is the flat one cut into blocks (same computation, same bits).
        let mut rng = SplitMix::new(case.4 ^ 0xAB);
        let (u, v) = (rng.vec(n, -1.0, 1.0), rng.vec(p, -1.0, 1.0));
        let (flat_bar, flat_dot) = (derivs.vjp(&u).or_fail()?, derivs.jvp(&v).or_fail()?);
        let imp_blocks = match c.kind {
            0 => {
                let imp = Implicit::argmin(&c.ridge, &x, &c.theta, opts.clone()).or_fail()?;
                (
                    imp.vjp(&c.shapes.x_matrix(&u)).or_fail()?.0,
                    imp.jvp(&c.shapes.theta_blocks(&v)).or_fail()?.0,
                )
            }
            1 => {
                let root = MatRidgeRoot(c.ridge.clone());
                let imp = Implicit::root(&root, &x, &c.theta, opts.clone()).or_fail()?;
                (
                    imp.vjp(&c.shapes.x_matrix(&u)).or_fail()?.0,
                    imp.jvp(&c.shapes.theta_blocks(&v)).or_fail()?.0,
                )
            }
            _ => {
                let imp = Implicit::fixed_point(&c.deq, &x, &c.theta, opts.clone()).or_fail()?;
                (
                    imp.vjp(&c.shapes.x_matrix(&u)).or_fail()?.0,
                    imp.jvp(&c.shapes.theta_blocks(&v)).or_fail()?.0,
                )
            }
        };
        let (bar_blocks, x_dot) = imp_blocks;
        prop_assert_eq!(
            bar_blocks.iter().map(|b| b.shape()).collect::<Vec<_>>(),
            c.shapes.theta.clone()
        );
        prop_assert_eq!(x_dot.shape(), c.shapes.x);
        prop_assert_eq!(Shapes::flatten(&bar_blocks), flat_bar.clone());
        prop_assert_eq!(x_dot.as_slice(), &flat_dot[..]);

        // Dot-product test.
        let (a, b) = derivs.blocks();
        let gap = (dot(&flat_bar, &v) - dot(&u, &flat_dot)).abs();
        let bound = dot_product_bound(&a, &b, &u, &v, &opts);
        prop_assert!(gap <= bound, "dot-product gap {:e} > {:e}", gap, bound);
        Ok(vec![
            ("jacobian vs FD (/FD_TOL scale)", e_fd),
            ("dot gap / bound", gap / bound),
        ])
    });
}

/// Property 3: the argmin and root forms of the matrix ridge give the same Jacobian, for
/// CG (argmin: A is SPD), GMRES and LU, within the linear-solve accuracy (rtol 1e-10 times
/// κ ≤ ~30 for these instances, so 1e-8 relative).
#[test]
fn block_argmin_and_root_forms_agree() {
    check(
        "blocks: argmin = root",
        48,
        block_cases(),
        |(_, rows, k, blocks, seed)| {
            let ridge = MatRidge::random(rows, k, blocks, seed);
            let theta = ridge.theta(seed);
            let x = ridge.solve(&theta);
            let root = MatRidgeRoot(ridge.clone());
            let lu = IftOptions::default().method(Method::Lu);
            let reference = Implicit::argmin(&ridge, &x, &theta, lu)
                .or_fail()?
                .jacobian()
                .or_fail()?;
            let mut worst: f64 = 0.0;
            for method in [Method::Cg, Method::Gmres, Method::Lu] {
                let opts = IftOptions::default().method(method);
                let a = Implicit::argmin(&ridge, &x, &theta, opts.clone())
                    .or_fail()?
                    .jacobian()
                    .or_fail()?;
                let r = Implicit::root(&root, &x, &theta, opts)
                    .or_fail()?
                    .jacobian()
                    .or_fail()?;
                for j in [a, r] {
                    let e = (&j - &reference).norm() / reference.norm().max(1e-300);
                    prop_assert!(e <= 1e-8, "{:?}: {:e}", method, e);
                    worst = worst.max(e);
                }
            }
            Ok(vec![("relative Jacobian gap", worst)])
        },
    );
}

/// Property 4: a batched equilibrium layer as one tape node with three matrix-variable
/// blocks (W, U, b). A loss ⟨C, Z*⟩ backpropagates to each block exactly as
/// `Implicit::vjp` with x̄ = C, and `Tape::forward` seeded on the blocks gives
/// `Implicit::jvp`; the node keeps one report per pass.
#[test]
fn implicit_node_with_matrix_blocks_matches_implicit() {
    check(
        "blocks: implicit_node",
        48,
        (1usize..=5, 1usize..=3, any::<u64>()),
        |(n, k, seed)| {
            let deq = BatchDeq::random(n, 2, k, 3, seed);
            let theta0 = deq.theta(seed, 0.5);
            let mut rng = SplitMix::new(seed ^ 0xC0);
            let weights = rng.mat(n, k, -1.0, 1.0);
            let dirs: Vec<DMatrix<f64>> = theta0
                .iter()
                .map(|t| rng.mat(t.nrows(), t.ncols(), -1.0, 1.0))
                .collect();

            let tape = Tape::new();
            let vars: Vec<_> = theta0.iter().map(|t| tape.mat_var(t.clone())).collect();
            let solver = |t: &[DMatrix<f64>]| deq.solve(t);
            let (z, node) = implicit_node(
                FixedPoint(deq.clone()),
                &vars,
                solver,
                IftOptions::default(),
            )
            .or_fail()?;
            prop_assert_eq!(z.shape(), (n, k));
            let loss = z.dot(&z.constant_like(weights.clone()));
            let grads = tape.gradient(loss).or_fail()?;
            let seeds = vars
                .iter()
                .zip(&dirs)
                .fold(Seeds::new(), |s, (v, d)| s.mat(v, d.clone()));
            let tangent = tape.forward(&seeds).or_fail()?.of_mat(&z);
            let tape_grads: Vec<DMatrix<f64>> = vars.iter().map(|v| grads.wrt_mat(v)).collect();
            let z_star = z.value();
            drop(tape);
            prop_assert_eq!(node.reports().len(), 2);
            prop_assert!(node.failures().is_empty());

            let imp =
                Implicit::fixed_point(&deq, &z_star, &theta0, IftOptions::default()).or_fail()?;
            let (expect_bar, _) = imp.vjp(&weights).or_fail()?;
            let (expect_dot, _) = imp.jvp(&dirs).or_fail()?;
            // The same solves on the same recording: equal up to the nondeterminism-free
            // rounding of one extra replay, i.e. exactly or within a few ulps.
            let mut worst: f64 = 0.0;
            for (g, e) in tape_grads.iter().zip(&expect_bar) {
                let err = (g - e).norm() / e.norm().max(1e-300);
                prop_assert!(err <= 1e-12, "gradient block: {:e}", err);
                worst = worst.max(err);
            }
            let err = (&tangent - &expect_dot).norm() / expect_dot.norm().max(1e-300);
            prop_assert!(err <= 1e-12, "tangent: {:e}", err);
            Ok(vec![
                ("gradient blocks vs vjp", worst),
                ("tangent vs jvp", err),
            ])
        },
    );
}

/// F(x, θ) = x + ½x³ − θ entrywise, written with scalars.
struct CubicScalars;
impl implicit::ScalarRootCondition for CubicScalars {
    fn residual<S: ad_core::Real>(&self, x: &[S], theta: &[S]) -> Vec<S> {
        x.iter()
            .zip(theta)
            .map(|(&xi, &ti)| xi + xi * xi * xi * 0.5 - ti)
            .collect()
    }
}

/// A condition written with scalars (`Scalars`) keeps the solution's matrix shape: with a
/// 2 x 3 x and θ, dx/dθ is diagonal with entries 1 / (1 + 1.5 xᵢ²).
#[test]
fn a_scalar_condition_keeps_a_matrix_solution_shape() {
    let theta = DMatrix::from_fn(2, 3, |i, j| 0.3 * i as f64 - 0.4 * j as f64 + 0.5);
    // x* entry by entry, by Newton on x + x³/2 = θ
    let x = theta.map(|t| {
        let mut x = t;
        for _ in 0..50 {
            x -= (x + 0.5 * x.powi(3) - t) / (1.0 + 1.5 * x * x);
        }
        x
    });
    let imp = Implicit::root(
        &implicit::Scalars(CubicScalars),
        &x,
        std::slice::from_ref(&theta),
        IftOptions::default(),
    )
    .unwrap();
    let (bar, _) = imp.vjp(&DMatrix::from_element(2, 3, 1.0)).unwrap();
    let want = x.map(|v| 1.0 / (1.0 + 1.5 * v * v));
    assert_eq!(bar[0].shape(), (2, 3));
    assert!((&bar[0] - &want).amax() <= 1e-12, "{} vs {want}", bar[0]);
}
