//! Data enter the tape by reference.
//!
//! Guarantees:
//! - a constant entered with `MatOps::shared` (an `Arc`) gives bit for bit the same values,
//!   gradients, JVPs and Hessian-vector products as the same data copied in with
//!   `MatOps::constant_like`, in every mode (plain, `MatVar`, `DualMat` over both);
//! - on the tape it is the caller's matrix itself (same address, the `Arc` is held until
//!   the tape drops), and `DualMat<MatVar>` gives it a known-zero tangent;
//! - recording it and sweeping the tape (reverse and forward) allocate far less than one
//!   copy of the data (`tests/shared_data_alloc.rs`, with a counting allocator).

mod common;

use std::sync::Arc;

use ad_core::{DualMat, MatFn, MatOps, Seeds, Tape, hvp_mat, jvp_mat, value_and_grad_mat};
use common::mat;
use nalgebra::DMatrix;
use proptest::prelude::*;

/// A least-squares loss with a tanh feature map: `|tanh(X W) - Y|^2 / 2 + <X^T X, W W^T>`,
/// with the data X, Y entered shared or copied.
struct Loss {
    x: Arc<DMatrix<f64>>,
    y: Arc<DMatrix<f64>>,
    shared: bool,
}

impl MatFn for Loss {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let w = &p[0];
        let (x, y) = if self.shared {
            (w.shared(&self.x), w.shared(&self.y))
        } else {
            (
                w.constant_like((*self.x).clone()),
                w.constant_like((*self.y).clone()),
            )
        };
        let r = x.matmul(w).tanh().sub(&y);
        let gram = x.transpose().matmul(&x);
        r.sq_norm() * 0.5 + gram.dot(&w.matmul(&w.transpose())) * 0.01
    }
}

fn bits(ms: &[DMatrix<f64>]) -> Vec<u64> {
    ms.iter()
        .flat_map(|m| m.iter().map(|v| v.to_bits()))
        .collect()
}

fn case() -> impl Strategy<Value = (DMatrix<f64>, DMatrix<f64>, DMatrix<f64>, DMatrix<f64>)> {
    (1usize..=12, 1usize..=12, 1usize..=4).prop_flat_map(|(n, d, k)| {
        (
            mat(n, d, -1.0, 1.0),
            mat(n, k, -1.0, 1.0),
            mat(d, k, -1.0, 1.0),
            mat(d, k, -1.0, 1.0),
        )
    })
}

proptest! {
    #![proptest_config(common::config(48))]

    /// Shared and copied data: identical results, bit for bit, in every driver.
    #[test]
    fn shared_and_copied_constants_agree_bitwise((x, y, w, v) in case()) {
        let (x, y) = (Arc::new(x), Arc::new(y));
        let f = |shared| Loss { x: x.clone(), y: y.clone(), shared };
        let (fs, fc) = (f(true), f(false));
        let p = [w.clone()];
        let dir = [v.clone()];
        prop_assert_eq!(fs.eval(&p).to_bits(), fc.eval(&p).to_bits());
        let (ys, gs) = value_and_grad_mat(&fs, &p).unwrap();
        let (yc, gc) = value_and_grad_mat(&fc, &p).unwrap();
        prop_assert_eq!(ys.to_bits(), yc.to_bits());
        prop_assert_eq!(bits(&gs), bits(&gc));
        let (js, jc) = (jvp_mat(&fs, &p, &dir).unwrap(), jvp_mat(&fc, &p, &dir).unwrap());
        prop_assert_eq!((js.0.to_bits(), js.1.to_bits()), (jc.0.to_bits(), jc.1.to_bits()));
        let hs = hvp_mat(&fs, &p, &dir).unwrap();
        let hc = hvp_mat(&fc, &p, &dir).unwrap();
        prop_assert_eq!(bits(&hs), bits(&hc));
        // and the tape's own forward sweep agrees with forward mode
        let tape = Tape::new();
        let wv = tape.mat_var(w.clone());
        let out = fs.eval(&[wv]);
        let t = tape.forward(&Seeds::new().mat(&wv, v.clone())).unwrap();
        let tol = 1e-12 * (1.0 + js.1.abs()); // same sums, other order of evaluation
        prop_assert!((t.of(out) - js.1).abs() <= tol, "{} vs {}", t.of(out), js.1);
    }
}

#[test]
fn the_tape_holds_the_callers_matrix() {
    let data = Arc::new(DMatrix::from_fn(30, 20, |i, j| (i * 20 + j) as f64));
    {
        let tape = Tape::new();
        let x = tape.constant_shared(data.clone());
        assert_eq!(Arc::strong_count(&data), 2);
        assert!(x.with_value(|m| std::ptr::eq(m, &*data)));
        let w = tape.mat_var(DMatrix::from_element(20, 1, 1.0));
        let xs = w.shared(&data);
        assert!(xs.with_value(|m| std::ptr::eq(m, &*data)));
        // second order: the value is shared, the tangent a known zero
        let wd = DualMat::new(w, tape.constant_mat(DMatrix::from_element(20, 1, 0.5)));
        let xd = wd.shared(&data);
        assert!(xd.re.with_value(|m| std::ptr::eq(m, &*data)));
        assert!(xd.eps.is_known_zero());
        assert_eq!(Arc::strong_count(&data), 4);
        // gradients are unaffected: d/dw sum(X w) = column sums of X
        let g = tape.gradient(x.matmul(&w).sum()).unwrap();
        let expected = DMatrix::from_fn(20, 1, |j, _| data.column(j).sum());
        assert_eq!(g.wrt_mat(&w), expected);
        assert_eq!(g.wrt_mat(&x), DMatrix::zeros(30, 20)); // a constant
    }
    assert_eq!(
        Arc::strong_count(&data),
        1,
        "the tape released its references"
    );
    // plain mode copies (documented): a new matrix with the same entries
    let plain = DMatrix::<f64>::zeros(1, 1).shared(&data);
    assert!(!std::ptr::eq(&plain, &*data) && plain == *data);
}
