//! The per-sample iteration loop shared by every method: evaluate the map on the active
//! samples, measure residuals, keep each sample's lowest-residual iterate, detect
//! convergence, divergence and stagnation, then step the samples still active.

use nalgebra::DMatrix;

use super::options::{Method, SolverOptions, StopMode};
use super::stats::SolveStats;
use super::step::make;
use crate::error::DeqError;

/// g = f − z; returns ‖g‖₂, or the first non-finite entry of f.
///
/// Eight partial sums over exact chunks (the loop vectorizes); a non-finite f makes the
/// sum non-finite, so f is scanned only then.
fn residual(f: &[f64], z: &[f64], g: &mut [f64]) -> Result<f64, usize> {
    const L: usize = 8;
    let mut acc = [0.0; L];
    let (fc, zc) = (f.chunks_exact(L), z.chunks_exact(L));
    let (fr, zr) = (fc.remainder(), zc.remainder());
    let mut gc = g.chunks_exact_mut(L);
    for ((fv, zv), gv) in fc.zip(zc).zip(&mut gc) {
        for l in 0..L {
            let v = fv[l] - zv[l];
            gv[l] = v;
            acc[l] += v * v;
        }
    }
    let mut tail = 0.0;
    for ((fi, zi), gi) in fr.iter().zip(zr).zip(gc.into_remainder()) {
        let v = fi - zi;
        *gi = v;
        tail += v * v;
    }
    let sum =
        ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
    if !sum.is_finite()
        && let Some(i) = f.iter().position(|v| !v.is_finite())
    {
        return Err(i);
    }
    Ok(sum.sqrt())
}

/// Copy the columns `cols` of `z` into a new matrix.
pub(crate) fn gather(z: &DMatrix<f64>, cols: &[usize]) -> DMatrix<f64> {
    let d = z.nrows();
    let mut out = DMatrix::zeros(d, cols.len());
    for (j, &k) in cols.iter().enumerate() {
        out.as_mut_slice()[j * d..(j + 1) * d].copy_from_slice(&z.as_slice()[k * d..(k + 1) * d]);
    }
    out
}

/// A failed run: the error and the best iterate found (for a fallback's restart).
pub(crate) type Failure = Box<(DeqError, DMatrix<f64>)>;

/// Run one method from `z0`; on success the lowest-residual iterate and the stats.
pub(crate) fn run<F>(
    f: &mut F,
    z0: &DMatrix<f64>,
    method: &Method,
    opts: &SolverOptions,
) -> Result<(DMatrix<f64>, SolveStats), Failure>
where
    F: FnMut(&DMatrix<f64>, &[usize]) -> DMatrix<f64>,
{
    let (d, b) = z0.shape();
    let kind = method.kind();
    let mut stats = SolveStats::new(kind, b);
    let mut z = z0.clone();
    let mut best = z0.clone();
    let mut initial = vec![f64::NAN; b];
    let mut last_improved = vec![0usize; b];
    let mut current = vec![f64::INFINITY; b];
    let mut steps: Vec<_> = (0..b).map(|_| make(method, d)).collect();
    let mut active: Vec<usize> = (0..b).collect();
    let mut g = vec![0.0; d];
    let finish = |stats: &mut SolveStats, steps: &[Box<dyn super::sample_step::SampleStep>]| {
        stats.lowest_residual = stats.sample_residuals.iter().copied().fold(0.0, f64::max);
        stats.restarts = steps.iter().map(|s| s.restarts()).sum();
    };
    for it in 1..=opts.max_iters {
        let fa = if active.len() == b {
            f(&z, &active)
        } else {
            f(&gather(&z, &active), &active)
        };
        if fa.shape() != (d, active.len()) {
            finish(&mut stats, &steps);
            let err = DeqError::Shape {
                what: "map output f(z) on the active samples (must have the shape of z)",
                expected: (d, active.len()),
                got: fa.shape(),
            };
            return Err(Box::new((err, best)));
        }
        stats.map_calls += 1;
        stats.function_evals += active.len();
        stats.iterations = it;
        let mut still = Vec::with_capacity(active.len());
        for (j, &k) in active.iter().enumerate() {
            let zk = &z.as_slice()[k * d..(k + 1) * d];
            let fk = &fa.as_slice()[j * d..(j + 1) * d];
            let mut res = match residual(fk, zk, &mut g) {
                Ok(r) => r,
                Err(row) => {
                    finish(&mut stats, &steps);
                    let err = DeqError::MapNonFinite {
                        method: kind,
                        iteration: it,
                        sample: k,
                        row,
                        value: fk[row],
                        stats: Box::new(stats),
                    };
                    return Err(Box::new((err, best)));
                }
            };
            if opts.stop == StopMode::Relative {
                let scale = super::vecops::norm(fk);
                if scale > 0.0 {
                    res /= scale;
                }
            }
            stats.sample_iterations[k] = it;
            current[k] = res;
            if it == 1 {
                initial[k] = res;
            }
            if res < stats.sample_residuals[k] {
                stats.sample_residuals[k] = res;
                best.as_mut_slice()[k * d..(k + 1) * d].copy_from_slice(zk);
                last_improved[k] = it;
            }
            if res <= opts.tol {
                continue;
            }
            if res > opts.divergence_factor * initial[k] {
                finish(&mut stats, &steps);
                let err = DeqError::Diverged {
                    method: kind,
                    iteration: it,
                    sample: k,
                    residual: res,
                    initial: initial[k],
                    factor: opts.divergence_factor,
                    stats: Box::new(stats),
                };
                return Err(Box::new((err, best)));
            }
            if opts.stall_window > 0 && it - last_improved[k] >= opts.stall_window {
                finish(&mut stats, &steps);
                let err = DeqError::Stagnated {
                    method: kind,
                    sample: k,
                    lowest: stats.sample_residuals[k],
                    tolerance: opts.tol,
                    window: opts.stall_window,
                    iteration: it,
                    stats: Box::new(stats),
                };
                return Err(Box::new((err, best)));
            }
            steps[k].step(&mut z.as_mut_slice()[k * d..(k + 1) * d], &g);
            still.push(k);
        }
        stats
            .residual_trace
            .push(current.iter().copied().fold(0.0, f64::max));
        active = still;
        if active.is_empty() {
            finish(&mut stats, &steps);
            stats.converged = true;
            return Ok((best, stats));
        }
    }
    finish(&mut stats, &steps);
    let err = DeqError::NotConverged {
        method: kind,
        residual: stats.lowest_residual,
        tolerance: opts.tol,
        iterations: opts.max_iters,
        stats: Box::new(stats),
    };
    Err(Box::new((err, best)))
}
