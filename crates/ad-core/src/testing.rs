//! Switches for tests of code built on ad-core.
//!
//! Kernels write their results into buffers that are not cleared first (recycled arena
//! buffers keep their old contents). A kernel that leaves part of its output unwritten
//! would then return stale, plausible numbers — often the right ones, from the previous
//! evaluation of the same shapes. With poisoning on, every such buffer is filled with NaN
//! before use, so an unwritten entry shows as NaN.
//!
//! ```
//! ad_core::testing::poison_buffers(false);
//! assert!(!ad_core::testing::buffers_poisoned());
//! ad_core::testing::poison_buffers(true);
//! assert!(ad_core::testing::buffers_poisoned());
//! ```

/// Fill every buffer that a kernel is about to overwrite with NaN first (all threads).
///
/// On by default in builds with debug assertions; tests built with `--release` turn it
/// on themselves. It costs one pass over each such buffer.
pub fn poison_buffers(on: bool) {
    crate::tape::arena::set_poison(on)
}

/// Whether [`poison_buffers`] is on.
pub fn buffers_poisoned() -> bool {
    crate::tape::arena::poisoned()
}

#[cfg(test)]
mod tests {
    use nalgebra::DMatrix;

    use crate::matrix::linalg::Alloc;
    use crate::tape::op::Op;
    use crate::{MatOps, MatVar, Tape, Unary};

    /// A deliberately broken tanh: its kernel writes only the first half of its output.
    fn broken_tanh(x: &MatVar) -> MatVar {
        let a = x.index();
        x.record(
            |m| {
                let src = &m[a as usize];
                let mut out = Alloc::Arena.uninit(src.nrows(), src.ncols());
                let half = src.len() / 2;
                let (xs, ys) = (&src.as_slice()[..half], &mut out.as_mut_slice()[..half]);
                crate::elementwise::apply(Unary::Tanh, xs, ys);
                out
            },
            |out| Op::Unary {
                a,
                f: Unary::Tanh,
                out,
            },
        )
    }

    /// The broken op, evaluated right after the correct one on the same shapes (so it gets
    /// the correct op's recycled buffer), is caught: its unwritten half reads NaN.
    #[test]
    fn a_kernel_leaving_its_output_half_unwritten_is_caught() {
        super::poison_buffers(true);
        let x = DMatrix::from_fn(20, 16, |i, j| (0.3 * i as f64 - 0.2 * j as f64).sin());
        let correct = {
            let tape = Tape::new();
            tape.constant_mat(x.clone()).tanh().value()
        };
        let broken = {
            let tape = Tape::new();
            broken_tanh(&tape.constant_mat(x.clone())).value()
        };
        let half = x.len() / 2;
        assert_eq!(broken.as_slice()[..half], correct.as_slice()[..half]);
        assert!(broken.as_slice()[half..].iter().all(|v| v.is_nan()));
    }
}
