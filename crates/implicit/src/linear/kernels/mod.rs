//! The crate's dense kernels, all in one place: BLAS-1 on slices here (four accumulators
//! so the compiler can vectorize), matrix-vector products, Gram matrices and Cholesky in
//! `dense`.

pub mod dense;

/// `a <= b`, or either is NaN: the negation of `a > b` that also catches NaN (a
/// recurrence scalar that is NaN must count as a breakdown, never as progress).
#[inline]
pub fn not_above(a: f64, b: f64) -> bool {
    !matches!(a.partial_cmp(&b), Some(std::cmp::Ordering::Greater))
}

/// `a . b`.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `||a||_2`.
#[inline]
pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `y += alpha x`.
#[inline]
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `y = x + beta y`.
#[inline]
pub fn xpby(x: &[f64], beta: f64, y: &mut [f64]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = xi + beta * *yi;
    }
}

/// `x *= alpha`.
#[inline]
pub fn scale(alpha: f64, x: &mut [f64]) {
    for xi in x.iter_mut() {
        *xi *= alpha;
    }
}

/// `r = b - r` (turns a product `A x` stored in `r` into the residual `b - A x`).
#[inline]
pub fn sub_from(b: &[f64], r: &mut [f64]) {
    debug_assert_eq!(b.len(), r.len());
    for (ri, bi) in r.iter_mut().zip(b) {
        *ri = bi - *ri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_naive_loops() {
        for n in 0..11 {
            let a: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 1.3).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-14);
            let mut y = b.clone();
            axpy(2.0, &a, &mut y);
            let mut z = b.clone();
            xpby(&a, 0.5, &mut z);
            let mut r = b.clone();
            sub_from(&a, &mut r);
            for i in 0..n {
                assert_eq!(y[i], b[i] + 2.0 * a[i]);
                assert_eq!(z[i], a[i] + 0.5 * b[i]);
                assert_eq!(r[i], a[i] - b[i]);
            }
            let mut s = a.clone();
            scale(3.0, &mut s);
            assert!((norm(&s) - 3.0 * norm(&a)).abs() < 1e-12);
        }
    }
}
