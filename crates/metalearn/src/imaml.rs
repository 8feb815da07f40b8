//! iMAML, one task at a time: the proximal inner solve and the implicit meta-gradient by
//! implicit's conjugate gradient.

use ad_core::nn::MseLoss;
use implicit::linear::{LinearOperator, OperatorError, SolveError, SolveOptions, Structure, cg};

use crate::error::MetaError;
use crate::options::{ImamlOptions, Stop};
use crate::task_gradient::{TaskGradient, TaskLosses, TaskStats, axpy, check_diverged, norm};

/// `x -> x + H x / lambda`, `H` the support loss's Hessian at `phi` (exact
/// Hessian-vector products, one tape each).
struct ProximalHessian<'a> {
    support: &'a MseLoss<'a>,
    phi: &'a [f64],
    lambda: f64,
}

impl LinearOperator for ProximalHessian<'_> {
    fn nrows(&self) -> usize {
        self.phi.len()
    }
    fn ncols(&self) -> usize {
        self.phi.len()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let hx = self.support.hvp(self.phi, x)?;
        for ((yi, xi), hi) in y.iter_mut().zip(x).zip(&hx) {
            *yi = xi + hi / self.lambda;
        }
        Ok(())
    }
    fn structure(&self) -> Structure {
        Structure::SYMMETRIC
    }
}

/// Gradient descent on `F(phi) = L_support(phi) + lambda/2 ||phi - theta||^2` from
/// `theta`. With [`ImamlOptions::backtrack`], a step that increases `F` (or leaves the
/// finite numbers) is taken back and retried with half the step size, so `F` never
/// increases. Buffers are allocated once, so the memory does not depend on the number of
/// steps. Returns the iterations, the gradient evaluations and the final gradient norm.
fn proximal_solve(
    support: &MseLoss<'_>,
    theta: &[f64],
    o: &ImamlOptions,
    phi: &mut [f64],
    task: usize,
) -> Result<(usize, usize, f64), MetaError> {
    phi.copy_from_slice(theta);
    let n = theta.len();
    let (mut phi_prev, mut r_prev) = if o.backtrack {
        (vec![0.0; n], vec![0.0; n])
    } else {
        (Vec::new(), Vec::new())
    };
    let mut f_prev = f64::INFINITY;
    let mut lr = o.inner_lr;
    let max = o.inner.max_iters();
    let mut evals = 0;
    for it in 0..=max {
        let finite = ad_core::all_finite(phi);
        let evaluated = if finite || !o.backtrack {
            let (l, mut r) = support.value_and_grad(phi)?;
            evals += 1;
            let mut prox = 0.0;
            for ((ri, p), t) in r.iter_mut().zip(phi.iter()).zip(theta) {
                *ri += o.lambda * (p - t);
                prox += (p - t) * (p - t);
            }
            let f = l + 0.5 * o.lambda * prox;
            // Uphill beyond rounding (or not finite): retried below. The slack of 64 ulps
            // of F keeps steps near the minimum, where F's changes reach rounding level.
            let downhill = f <= f_prev + 64.0 * f64::EPSILON * f_prev.abs();
            if o.backtrack && !downhill {
                None
            } else {
                check_diverged("support loss", l, &r, task, it)?;
                Some((f, r))
            }
        } else {
            None
        };
        let (residual, accepted) = match evaluated {
            Some((f, r)) => (norm(&r), Some((f, r))),
            None => {
                // take the step back: phi_prev (accepted) with half the step size
                lr *= 0.5;
                if it == max {
                    phi.copy_from_slice(&phi_prev);
                    (norm(&r_prev), None)
                } else {
                    for ((p, q), r) in phi.iter_mut().zip(&phi_prev).zip(&r_prev) {
                        *p = q - lr * r;
                    }
                    continue;
                }
            }
        };
        match o.inner {
            Stop::Tolerance { tol, .. } if residual <= tol => return Ok((it, evals, residual)),
            Stop::Tolerance { tol, max_iters } if it == max_iters => {
                return Err(MetaError::InnerNotConverged {
                    task,
                    iterations: it,
                    residual,
                    tolerance: tol,
                });
            }
            Stop::Fixed { iters } if it == iters => return Ok((it, evals, residual)),
            _ => {}
        }
        let (f, r) = accepted.expect("a rejected step at the last iteration returned above");
        if o.backtrack {
            phi_prev.copy_from_slice(phi);
            r_prev.copy_from_slice(&r);
            f_prev = f;
        }
        axpy(-lr, &r, phi);
        if !o.backtrack {
            check_diverged("inner iterate", 0.0, phi, task, it + 1)?;
        }
    }
    unreachable!("the loop returns at it == max")
}

/// iMAML's meta-gradient of one task: `phi*` by [`proximal_solve`], then
/// `(I + H(phi*)/lambda) x = grad L_query(phi*)` by CG from zero.
pub(crate) fn imaml_task(
    losses: &TaskLosses<'_>,
    theta: &[f64],
    o: &ImamlOptions,
    task: usize,
) -> Result<TaskGradient, MetaError> {
    let mut phi = vec![0.0; theta.len()];
    let (steps, evals, inner_residual) = proximal_solve(&losses.support, theta, o, &mut phi, task)?;
    let (loss, g) = losses.query.value_and_grad(&phi)?;
    check_diverged("query loss", loss, &g, task, steps)?;
    let op = ProximalHessian {
        support: &losses.support,
        phi: &phi,
        lambda: o.lambda,
    };
    // A fixed budget: no tolerance (rtol 0 is never met), no early stop for stalls, growth
    // or non-positive curvature (the reference code runs CG on `I + H/lambda` whatever its
    // inertia); the iterate after `iters` iterations is what NotConverged carries.
    let opts = match o.cg {
        Stop::Tolerance { tol, max_iters } => {
            SolveOptions::default().rtol(tol).max_iters(max_iters)
        }
        Stop::Fixed { iters } => SolveOptions::default()
            .rtol(0.0)
            .max_iters(iters)
            .stall_window(iters.saturating_add(1))
            .divergence(f64::MAX)
            .indefinite(true),
    };
    let (x, report) = match (cg(&op, &g, None, None, &opts), o.cg) {
        (Ok(sol), _) => (sol.x, sol.report),
        (Err(SolveError::NotConverged { report, x }), Stop::Fixed { .. }) => (x, *report),
        (Err(source), _) => return Err(MetaError::Linear { task, source }),
    };
    check_diverged("meta-gradient", 0.0, &x, task, steps)?;
    Ok(TaskGradient {
        loss,
        grad: x,
        stats: TaskStats {
            gradients: evals + 1,
            hvps: report.matvecs,
            inner_steps: steps,
            inner_residual,
            cg_iterations: report.iterations,
            cg_relative_residual: report.relative_residual(),
        },
    })
}
