//! The Dormand–Prince 5(4) tableau, its error weights and its dense-output weights.
//!
//! The published coefficients (Dormand & Prince 1980; dense output of Hairer, Nørsett &
//! Wanner, *Solving ODEs I*, §II.6).

/// Stage times c_i.
pub(crate) const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];

/// Stage coefficients a_ij (row i, j < i); row 6 is the 5th-order solution (FSAL).
pub(crate) const A: [[f64; 6]; 7] = [
    [0.0; 6],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
        0.0,
    ],
    [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];

/// Weights of the 5th-order solution (b_7 = 0).
pub(crate) const B: [f64; 7] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
    0.0,
];

/// Error estimate weights (5th minus 4th order).
pub(crate) const E: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

/// Dense-output coefficients d_i.
pub(crate) const D: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

/// Weights w_i(theta) of the dense output y(t + theta h) = y + h * sum_i w_i k_i.
///
/// Hairer's continuous extension y + θ(r2 + θ'(r3 + θ(r4 + θ' r5))) (θ' = 1 − θ) with
/// r2 = hΣb k, r3 = h k1 − r2, r4 = 2 r2 − h k1 − h k7, r5 = hΣd k, written as weights of
/// h k_i so the output is linear in the stages (which the discrete adjoint needs).
pub(crate) fn dense_weights(theta: f64) -> [f64; 7] {
    let t1 = 1.0 - theta;
    let mut w = [0.0; 7];
    for i in 0..7 {
        let e1 = if i == 0 { 1.0 } else { 0.0 };
        let e7 = if i == 6 { 1.0 } else { 0.0 };
        let r3 = e1 - B[i];
        let r4 = 2.0 * B[i] - e1 - e7;
        w[i] = theta * (B[i] + t1 * (r3 + theta * (r4 + t1 * D[i])));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_c_and_weights_interpolate() {
        for i in 0..7 {
            let s: f64 = A[i].iter().sum();
            assert!((s - C[i]).abs() < 1e-14, "row {i}");
        }
        let w0 = dense_weights(0.0);
        assert!(w0.iter().all(|&w| w == 0.0));
        let w1 = dense_weights(1.0);
        for i in 0..7 {
            assert!((w1[i] - B[i]).abs() < 1e-15);
        }
        // the error weights sum to zero (both solutions are consistent)
        assert!(E.iter().sum::<f64>().abs() < 1e-15);
    }
}
