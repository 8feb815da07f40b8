//! Bad input to the implicit function theorem (`Implicit`, `implicit_node`,
//! `implicit_scalar_node`, the unrolled baseline): what is guaranteed.
//!
//! Every kind of bad input returns a typed [`ImplicitError`] that says what was wrong and
//! carries the numbers — never a number, never a silent zero gradient:
//!
//! | bad input | error |
//! |---|---|
//! | an invalid option (NaN / negative `residual_tol`, bad linear or phantom options) | `InvalidOption { name, value, reason }`, before any work |
//! | NaN / ±∞ in θ, x*, x̄, θ̇, or a forward solver's output | `NonFiniteEntry { what, block, row, col, value }` |
//! | NaN / ±∞ in the problem's data (seen in F(x*, θ)) | `NonFinite` naming the residual entry |
//! | flat x̄ / θ̇ of the wrong length | `Dimension { what, expected, got }` |
//! | F or x* (declared `solution_shape`) of the wrong shape, x̄ / θ̇ blocks unlike x / θ | `Shape { what, expected, got }` / `BlockCount` |
//! | an inner solution that is not one (‖F(x*, θ)‖ above `residual_tol`) | `NotAtSolution { residual, tolerance }` |
//! | a singular ∂F/∂x with dense LU | `Singular { pivot, value, threshold, size }` |
//! | an indefinite Hessian (a saddle point) with CG | `NegativeCurvature { iteration, curvature, report }` (MINRES succeeds) |
//! | a backward solve out of iterations, inside a tape | `AdError::CustomRule` whose source is `NotConverged { report }`; the node's `reports()` keep it as failed |
//! | a forward solver that fails | `ForwardSolver(its error)` |
//! | a caller's factorization that does not factor ∂F/∂x | `NotConverged` (refinement against the true A fails) |
//! | unrolled gradient descent on non-finite input, or diverging | `NonFinite` / `InvalidOption` / `Dimension` |
//!
//! Randomized parts use proptest (sizes n in 1..=10, p in 1..=5, seeded data).

mod ift_common;

use ad_core::{MatOps, Real, Tape};
use ift_common::bad::*;
use implicit::linear::{SolveError, SolveOptions};
use implicit::{
    Argmin, Backward, Direction, IftOptions, Implicit, ImplicitError, Root, RootCondition,
    ScalarRootCondition, Scalars, implicit_node, implicit_scalar_node,
};
use nalgebra::DMatrix;
use proptest::prelude::*;

// =======================================================================================
// Non-finite input
// =======================================================================================

proptest! {
    #![proptest_config(config(64))]

    /// NaN or ±∞ in θ, in x*, in x̄ or θ̇ is `NonFiniteEntry` naming the block and the entry
    /// (row, column) and the value, for
    /// argmin, root and fixed-point problems and for both solver nodes (whose forward
    /// solver then does not run). A forward solver that returns a non-finite x* is caught
    /// before anything is recorded.
    #[test]
    fn non_finite_inputs_are_named_with_index_and_value(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(),
        pick in any::<prop::sample::Index>(), bad in bad_value(),
    ) {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta();
        let w = r.solve(&theta);
        let opts = IftOptions::default;

        let k = pick.index(p);
        let mut bad_theta = theta.clone();
        bad_theta[k] = bad;
        let deq = Deq::random(n, p, seed);
        for err in [
            error_of(Implicit::argmin_vec(&r, &w, &bad_theta, opts())),
            error_of(Implicit::root_vec(&r, &w, &bad_theta, opts())),
            error_of(Implicit::fixed_point_vec(&deq, &w, &bad_theta, opts())),
        ] {
            assert_entry(&err, "parameters theta", (0, k, 0), bad)?;
        }

        let i = pick.index(n);
        let mut bad_w = w.clone();
        bad_w[i] = bad;
        assert_entry(&error_of(Implicit::argmin_vec(&r, &bad_w, &theta, opts())), "solution x", (0, i, 0), bad)?;
        assert_entry(&error_of(Implicit::root_vec(&r, &bad_w, &theta, opts())), "solution x", (0, i, 0), bad)?;

        let imp = Implicit::argmin_vec(&r, &w, &theta, opts()).unwrap();
        let mut x_bar = vec![1.0; n];
        x_bar[i] = bad;
        assert_entry(&error_of(imp.vjp_flat(&x_bar)), "cotangent x_bar", (0, i, 0), bad)?;
        let mut theta_dot = vec![1.0; p];
        theta_dot[k] = bad;
        assert_entry(&error_of(imp.jvp_flat(&theta_dot)), "tangent theta_dot", (0, k, 0), bad)?;
        drop(imp);

        // Solver nodes: θ is checked before the forward solver runs, x* after it.
        let tape = Tape::new();
        let tv = tape.vector_var(&bad_theta);
        let err = error_of(implicit_node(Argmin(r.clone()), &[tv], must_not_run_blocks, opts()));
        assert_entry(&err, "parameters theta", (0, k, 0), bad)?;
        let ts = tape.vars(&bad_theta);
        let err = error_of(implicit_scalar_node(Root(r.clone()), &ts, must_not_run, opts()));
        assert_entry(&err, "parameters theta", (0, k, 0), bad)?;
        let tv = tape.vector_var(&theta);
        let ops = tape.op_len();
        let bad_solver = |_: &[DMatrix<f64>]| bad_w.clone();
        let err = error_of(implicit_node(Argmin(r.clone()), &[tv], bad_solver, opts()));
        assert_entry(&err, "solution x from the forward solver", (0, i, 0), bad)?;
        prop_assert_eq!(tape.op_len(), ops, "nothing recorded");
    }

    /// NaN or ±∞ in the problem's own data (here one entry of the design matrix or of the
    /// targets) shows in the optimality residual F(x*, θ): `NonFinite` naming the residual
    /// and its first non-finite entry — not `NotAtSolution` with a NaN residual, and not
    /// a derivative full of NaN. The same through `implicit_node`.
    #[test]
    fn non_finite_data_is_named_in_the_residual(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(),
        row in any::<prop::sample::Index>(), column in any::<prop::sample::Index>(),
        in_targets in any::<bool>(), bad in bad_value(),
    ) {
        let clean = Ridge::random(n, p, seed);
        let theta = clean.theta();
        let w = clean.solve(&theta);
        let mut r = clean.clone();
        let i = row.index(r.x.nrows());
        if in_targets {
            r.y[i] = bad;
        } else {
            r.x[(i, column.index(n))] = bad;
        }
        let f = r.f(&w, &theta);
        let first = f.iter().position(|v| !v.is_finite()).expect("F sees the bad datum");
        let what = "optimality residual F(x*, theta)";
        for err in [
            error_of(Implicit::argmin_vec(&r, &w, &theta, IftOptions::default())),
            error_of(Implicit::root_vec(&r, &w, &theta, IftOptions::default())),
        ] {
            assert_non_finite(&err, what, first, f[first])?;
        }
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let solver = |_: &[DMatrix<f64>]| w.clone();
        let err = error_of(implicit_node(Argmin(r.clone()), &[tv], solver, IftOptions::default()));
        assert_non_finite(&err, what, first, f[first])?;
    }
}

// =======================================================================================
// Mismatched dimensions
// =======================================================================================

/// F returning `extra_rows` more rows, or two columns, than x has.
struct WrongShape {
    extra_rows: usize,
    columns: usize,
}

impl RootCondition for WrongShape {
    fn residual<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        let theta = &theta[0];
        let n = x.nrows();
        let s = theta.sum();
        let data = vec![s; (n + self.extra_rows) * self.columns];
        x.from_scalars_like(n + self.extra_rows, self.columns, &data)
    }
}

/// A scalar root condition that returns one entry too many.
struct OneTooMany;

impl ScalarRootCondition for OneTooMany {
    fn residual<S: Real>(&self, x: &[S], theta: &[S]) -> Vec<S> {
        let mut f: Vec<S> = x.iter().map(|&xi| xi - theta[0]).collect();
        f.push(x[0] - theta[0]);
        f
    }
}

/// A residual that must not be evaluated (the input was rejected before).
struct MustNotEvaluate;

impl RootCondition for MustNotEvaluate {
    fn residual<M: MatOps>(&self, _: &M, _: &[M]) -> M {
        panic!("the problem was evaluated on rejected input")
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Lengths and shapes that depend on user data are checked: a flat x̄ / θ̇ of the
    /// wrong length is `Dimension { what, expected, got }`; a residual unlike x, a matrix
    /// x̄ unlike x, a θ̇ block unlike its θ block is `Shape { what, expected, got }` naming
    /// both shapes; the wrong number of θ̇ blocks is `BlockCount`; a forward solver's x*
    /// unlike the declared `solution_shape` is `Shape` before the problem runs.
    #[test]
    fn mismatched_shapes_are_typed_errors(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(), extra in 1usize..=3,
    ) {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta();
        let w = r.solve(&theta);
        let dim = |err: ImplicitError, what: &str, expected: usize, got: usize| -> Result<(), TestCaseError> {
            match err {
                ImplicitError::Dimension { what: w, expected: e, got: g } => {
                    prop_assert!(w.contains(what), "what = {:?}", w);
                    prop_assert_eq!((e, g), (expected, got));
                    Ok(())
                }
                other => Err(TestCaseError::fail(format!("expected Dimension, got {other:?}"))),
            }
        };
        // Flat x̄ and θ̇ of the wrong length.
        for imp_err in [
            error_of(Implicit::argmin_vec(&r, &w, &theta, IftOptions::default()).unwrap().vjp_flat(&vec![1.0; n + extra])),
            error_of(Implicit::root_vec(&r, &w, &theta, IftOptions::default()).unwrap().vjp_flat(&vec![1.0; n + extra])),
        ] {
            dim(imp_err, "cotangent x_bar", n, n + extra)?;
        }
        let imp = Implicit::argmin_vec(&r, &w, &theta, IftOptions::default()).unwrap();
        dim(error_of(imp.jvp_flat(&vec![1.0; p + extra])), "tangent theta_dot", p, p + extra)?;
        // Matrix x̄ and θ̇ blocks unlike x and θ.
        assert_shape(&error_of(imp.vjp(&DMatrix::zeros(n, 2))), "cotangent x_bar", (n, 1), (n, 2))?;
        assert_shape(&error_of(imp.jvp(&[DMatrix::zeros(p + extra, 1)])), "tangent theta_dot", (p, 1), (p + extra, 1))?;
        match error_of(imp.jvp(&[DMatrix::zeros(p, 1), DMatrix::zeros(1, 1)])) {
            ImplicitError::BlockCount { expected: 1, got: 2, .. } => {}
            other => return Err(TestCaseError::fail(format!("expected BlockCount, got {other:?}"))),
        }
        drop(imp);
        // F of the wrong shape, from the tape recording and from the plain evaluation.
        let wrong = WrongShape { extra_rows: extra, columns: 1 };
        assert_shape(&error_of(Implicit::root_vec(&wrong, &w, &theta, IftOptions::default())), "residual", (n, 1), (n + extra, 1))?;
        let wide = WrongShape { extra_rows: 0, columns: 2 };
        assert_shape(&error_of(Implicit::root_vec(&wide, &w, &theta, IftOptions::default())), "residual", (n, 1), (n, 2))?;
        assert_shape(&error_of(Implicit::root_vec(&Scalars(OneTooMany), &w, &theta, IftOptions::default())), "residual", (n, 1), (n + 1, 1))?;
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let solver = |t: &[DMatrix<f64>]| vec![t[0][0]; n + extra];
        let err = error_of(implicit_node(Root(Scalars(OneTooMany)), &[tv], solver, IftOptions::default()));
        assert_shape(&err, "residual", (n + extra, 1), (n + extra + 1, 1))?;
        // x* of the wrong shape from the forward solver, against the declared shape: caught
        // before the problem (which would panic) runs, and before anything is recorded.
        let ops = tape.op_len();
        let declared = IftOptions::default().solution_shape(n, 1);
        let solver = |_: &[DMatrix<f64>]| DMatrix::<f64>::zeros(n + extra, 1);
        let err = error_of(implicit_node(Root(MustNotEvaluate), &[tv], solver, declared.clone()));
        assert_shape(&err, "solution x", (n, 1), (n + extra, 1))?;
        let err = error_of(Implicit::root(&MustNotEvaluate, &DMatrix::zeros(n, 2), &[col(&theta)], declared));
        assert_shape(&err, "solution x", (n, 1), (n, 2))?;
        prop_assert_eq!(tape.op_len(), ops, "nothing recorded");
    }
}

// =======================================================================================
// An inner solution that is not one
// =======================================================================================

proptest! {
    #![proptest_config(config(64))]

    /// x* off the solution by δ along a random direction: if ‖F(x*, θ)‖ exceeds
    /// `residual_tol`, the result is `NotAtSolution` carrying exactly that residual and
    /// that tolerance (users of other libraries get wrong-signed gradients here);
    /// otherwise derivatives are returned. Also through `implicit_node`, with a forward
    /// solver stopped early (a few gradient steps), before anything is recorded.
    #[test]
    fn unconverged_inner_solution_is_not_at_solution(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(),
        log_delta in -10.0f64..-1.0, log_tol in prop::sample::select(vec![-8.0, -6.0, -4.0]),
    ) {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta();
        let w = r.solve(&theta);
        let dir = SplitMix(seed ^ 1).vec(n, -1.0, 1.0);
        let off: Vec<f64> = w.iter().zip(&dir).map(|(a, d)| a + 10f64.powf(log_delta) * d).collect();
        let residual = norm(&r.f(&off, &theta));
        // F is evaluated by the library (on a tape) and here (plain f64): they agree to
        // rounding in F's terms, ~u·(‖XᵀX‖‖x‖ + ‖Xᵀy‖) ≲ 1e-14 for this data.
        let rounding = 1e-14;
        let tol = 10f64.powf(log_tol);
        let opts = IftOptions::default().residual_tol(tol);
        for result in [
            Implicit::argmin_vec(&r, &off, &theta, opts.clone()).map(|i| i.forward_residual()),
            Implicit::root_vec(&r, &off, &theta, opts.clone()).map(|i| i.forward_residual()),
        ] {
            match result {
                Err(ImplicitError::NotAtSolution { residual: got, tolerance }) => {
                    prop_assert!(residual > tol, "rejected a point with residual {:e} <= {:e}", residual, tol);
                    prop_assert!((got - residual).abs() <= rounding, "residual {:e} vs {:e}", got, residual);
                    prop_assert_eq!(tolerance, tol);
                }
                Ok(got) => {
                    prop_assert!(residual <= tol + rounding, "accepted a point with residual {:e} > {:e}", residual, tol);
                    prop_assert!((got - residual).abs() <= rounding);
                }
                Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
            }
        }
        // The check is ‖F‖ ≤ residual_tol: with the tolerance set to the point's own
        // residual (as the library computes it), the point is accepted.
        let loose = IftOptions::default().residual_tol(f64::MAX);
        let own = Implicit::argmin_vec(&r, &off, &theta, loose).unwrap().forward_residual();
        prop_assert!(Implicit::argmin_vec(&r, &off, &theta, IftOptions::default().residual_tol(own)).is_ok());

        // An early-stopped forward solver inside a node: three gradient-descent steps.
        let step = 1.0 / r.a(&theta).symmetric_eigenvalues().max();
        let early = |t: &[f64]| {
            let mut x = vec![0.0; n];
            for _ in 0..3 {
                let g = r.f(&x, t);
                x.iter_mut().zip(&g).for_each(|(xi, gi)| *xi -= step * gi);
            }
            x
        };
        let stopped = early(&theta);
        let residual = norm(&r.f(&stopped, &theta));
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let ops = tape.op_len();
        match implicit_node(Argmin(r.clone()), &[tv], |t: &[DMatrix<f64>]| early(t[0].as_slice()), opts) {
            Err(ImplicitError::NotAtSolution { residual: got, tolerance }) => {
                prop_assert!((got - residual).abs() <= rounding);
                prop_assert_eq!(tolerance, tol);
                prop_assert_eq!(tape.op_len(), ops, "nothing recorded");
            }
            Ok(_) => prop_assert!(residual <= tol + rounding),
            Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
        }
    }
}

// =======================================================================================
// Invalid options, before any work
// =======================================================================================

/// Every option is validated before anything runs: `InvalidOption { name, value, reason }`
/// for a residual tolerance that is NaN (which would switch the residual check off, so a
/// point far from the solution would pass and give a hypergradient of −0.0), infinite or
/// negative; for invalid linear-solve options; and for a phantom pass with no steps or a
/// damping outside (0, 1]. Neither the problem nor the forward solver runs, and nothing
/// is recorded.
#[test]
fn invalid_options_are_rejected_before_any_work() {
    let cases: Vec<(IftOptions, &str, f64)> = vec![
        (
            IftOptions::default().residual_tol(f64::NAN),
            "residual_tol",
            f64::NAN,
        ),
        (
            IftOptions::default().residual_tol(f64::INFINITY),
            "residual_tol",
            f64::INFINITY,
        ),
        (
            IftOptions::default().residual_tol(-1e-6),
            "residual_tol",
            -1e-6,
        ),
        (
            IftOptions::default().linear(SolveOptions::default().rtol(f64::NAN)),
            "rtol",
            f64::NAN,
        ),
        (
            IftOptions::default().linear(SolveOptions::default().atol(-1.0)),
            "atol",
            -1.0,
        ),
        (
            IftOptions::default().backward(Backward::Phantom {
                steps: 0,
                damping: 1.0,
            }),
            "backward.steps",
            0.0,
        ),
        (
            IftOptions::default().backward(Backward::Phantom {
                steps: 5,
                damping: 0.0,
            }),
            "backward.damping",
            0.0,
        ),
        (
            IftOptions::default().backward(Backward::Phantom {
                steps: 5,
                damping: 1.5,
            }),
            "backward.damping",
            1.5,
        ),
        (
            IftOptions::default().backward(Backward::Phantom {
                steps: 5,
                damping: f64::NAN,
            }),
            "backward.damping",
            f64::NAN,
        ),
    ];
    let x = DMatrix::from_element(3, 1, 0.25);
    let theta = [DMatrix::from_element(2, 1, 0.5)];
    let tape = Tape::new();
    let tv = tape.vector_var(&[0.5, 0.5]);
    let ops = tape.op_len();
    for (opts, name, value) in cases {
        let check = |err: ImplicitError| match err {
            ref e @ ImplicitError::InvalidOption { .. } if !e.to_string().contains(name) => {
                panic!("the message does not name {name}: {e}")
            }
            // Linear-solve options are validated by the linear layer, whose error
            // `ImplicitError` wraps.
            ImplicitError::InvalidOption {
                name: n,
                value: v,
                reason,
            }
            | ImplicitError::Linear(SolveError::InvalidOption {
                name: n,
                value: v,
                reason,
            }) => {
                assert_eq!(n, name);
                assert!(same_value(v, value), "{name}: value {v} instead of {value}");
                assert!(!reason.is_empty());
            }
            other => panic!("{name}: expected InvalidOption, got {other:?}"),
        };
        check(opts.validate().unwrap_err());
        check(error_of(Implicit::root(
            &MustNotEvaluate,
            &x,
            &theta,
            opts.clone(),
        )));
        check(error_of(implicit_node(
            Root(MustNotEvaluate),
            &[tv],
            must_not_run_blocks,
            opts.clone(),
        )));
        check(error_of(implicit_scalar_node(
            Root(MustNotEvaluate),
            &tape.vars(&[0.5]),
            must_not_run,
            opts,
        )));
    }
    assert_eq!(tape.op_len(), ops, "nothing recorded");
    // The residual check then holds: a point off the solution with a valid tolerance.
    let r = Ridge::random(4, 2, 9);
    let theta = r.theta();
    let off = vec![1.0; 4];
    match error_of(Implicit::argmin_vec(
        &r,
        &off,
        &theta,
        IftOptions::default(),
    )) {
        ImplicitError::NotAtSolution {
            residual,
            tolerance,
        } => {
            assert!(
                residual > 1e-3 && tolerance == 1e-6,
                "{residual} {tolerance}"
            )
        }
        other => panic!("expected NotAtSolution, got {other:?}"),
    }
}

// =======================================================================================
// A phantom pass on a map that does not contract
// =======================================================================================

/// The linear fixed point z = s z + U θ (J_f = s I): z* = U θ / (1 − s) exists for s ≠ 1,
/// but for |s| > 1 the map does not contract.
#[derive(Clone)]
struct Scaled {
    s: f64,
    u: DMatrix<f64>,
}

impl implicit::FixedPointMap for Scaled {
    fn map<M: MatOps>(&self, z: &M, theta: &[M]) -> M {
        z.scale_f64(self.s)
            .add(&z.constant_like(self.u.clone()).matmul(&theta[0]))
    }
}

impl Scaled {
    /// z* = U θ / (1 − s).
    fn solution(&self, theta: &[f64]) -> DMatrix<f64> {
        &self.u * DMatrix::from_column_slice(theta.len(), 1, theta) / (1.0 - self.s)
    }

    /// The implicit derivative at z*(θ) with `backward`.
    fn implicit(
        &self,
        theta: &[f64],
        backward: Backward,
    ) -> Implicit<impl implicit::Linearization + '_> {
        let z = self.solution(theta);
        Implicit::fixed_point_vec(
            self,
            z.as_slice(),
            theta,
            IftOptions::default().backward(backward),
        )
        .unwrap()
    }

    /// The exact VJP θ̄ = Uᵀ x̄ / (1 − s).
    fn vjp(&self, x_bar: &[f64]) -> DMatrix<f64> {
        self.u.transpose() * DMatrix::from_column_slice(x_bar.len(), 1, x_bar) / (1.0 - self.s)
    }
}

/// Phantom steps on z = 2z + Uθ multiply the residual by (1 − τ) + 2τ > 1 each: after k
/// steps it is that factor^k times the Jacobian-free one. That is `PhantomDiverged` with
/// both residuals (exactly the powers of the factor, to rounding), in reverse and forward
/// mode, not a gradient 2^k times too large. The same map with the exact pass, and a
/// contracting one (s = −0.5) with the phantom pass, give the implicit derivative.
#[test]
fn a_phantom_pass_that_grows_is_an_error_with_both_residuals() {
    let u = DMatrix::from_row_slice(3, 2, &[1.0, 0.5, -1.0, 2.0, 0.25, -0.75]);
    let theta = [0.3, -0.7];
    let x_bar = [1.0, -2.0, 0.5];
    let theta_dot = [0.4, 1.1];
    let growing = Scaled {
        s: 2.0,
        u: u.clone(),
    };
    for (steps, damping) in [(10usize, 1.0), (6, 0.25)] {
        let imp = growing.implicit(&theta, Backward::Phantom { steps, damping });
        let factor: f64 = (1.0 - damping) + damping * growing.s;
        let expect = |err: ImplicitError, direction: Direction| match err {
            ImplicitError::PhantomDiverged {
                direction: d,
                steps: k,
                damping: t,
                initial_residual,
                final_residual,
            } => {
                assert_eq!((d, k, t), (direction, steps, damping));
                // The Jacobian-free residual is ‖J_fᵀ x̄‖/‖x̄‖ = s (reverse) or s (forward).
                assert!(
                    (initial_residual - growing.s).abs() < 1e-12,
                    "{initial_residual}"
                );
                let grown = growing.s * factor.powi(steps as i32);
                assert!(
                    (final_residual - grown).abs() < 1e-12 * grown,
                    "{final_residual} vs {grown}"
                );
            }
            other => panic!("expected PhantomDiverged, got {other:?}"),
        };
        expect(error_of(imp.vjp_flat(&x_bar)), Direction::Reverse);
        expect(error_of(imp.jvp_flat(&theta_dot)), Direction::Forward);
    }
    // The exact pass on the same map gives the implicit derivative.
    let (bar, _) = growing
        .implicit(&theta, Backward::Exact)
        .vjp_flat(&x_bar)
        .unwrap();
    assert!((DMatrix::from_column_slice(2, 1, &bar) - growing.vjp(&x_bar)).norm() < 1e-12);

    // Inside a tape: the gradient is the custom rule's error, whose source is
    // PhantomDiverged, and the node keeps the failed pass with its steps and residual.
    let tape = Tape::new();
    let tv = tape.mat_var(DMatrix::from_column_slice(2, 1, &theta));
    let solver = growing.clone();
    let (z, node) = implicit_node(
        implicit::FixedPoint(growing.clone()),
        &[tv],
        move |t: &[DMatrix<f64>]| solver.solution(t[0].as_slice()),
        IftOptions::default().backward(Backward::Phantom {
            steps: 10,
            damping: 1.0,
        }),
    )
    .unwrap();
    match tape.gradient(z.sum()) {
        Err(ad_core::AdError::CustomRule { source, .. }) => assert!(
            matches!(
                source.downcast_ref::<ImplicitError>(),
                Some(ImplicitError::PhantomDiverged { steps: 10, .. })
            ),
            "{source}"
        ),
        other => panic!("expected the rule's error, got {:?}", other.map(|_| ())),
    }
    let failed = node.failures();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].steps, 10);
    assert!((failed[0].relative_residual - 2.0 * 2f64.powi(10)).abs() < 1e-9);
    drop(tape);

    // A contraction (s = −0.5): the phantom pass converges and is accepted.
    let contracting = Scaled { s: -0.5, u };
    let pass = Backward::Phantom {
        steps: 60,
        damping: 1.0,
    };
    let (bar, report) = contracting.implicit(&theta, pass).vjp_flat(&x_bar).unwrap();
    assert!((DMatrix::from_column_slice(2, 1, &bar) - contracting.vjp(&x_bar)).norm() < 1e-12);
    assert!(report.relative_residual < 1e-15);
}
