//! Options of the runners.

use serde::{Deserialize, Serialize};

/// Which of argmin's line searches a runner uses.
///
/// More-Thuente is the default: on 40 seeded logistic regressions L-BFGS with it reached
/// `grad_tol = 1e-8` in all 440 runs, with Hager-Zhang in 438; at 1e-12 Hager-Zhang did
/// better (346 of 440 against 176), so it is the choice for very tight tolerances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LineSearch {
    /// More-Thuente (strong Wolfe conditions).
    #[default]
    MoreThuente,
    /// Hager-Zhang (approximate Wolfe conditions).
    HagerZhang,
}

/// Options of [`minimize_lbfgs`](crate::solvers::argmin_rs::minimize_lbfgs): argmin's L-BFGS with a More-Thuente line search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LbfgsOptions {
    /// Stop when `‖∇f(x)‖₂ <= grad_tol` (default `1e-8`; must be positive and finite).
    pub grad_tol: f64,
    /// Iteration limit (default 1000).
    pub max_iters: u64,
    /// Number of correction pairs kept (default 7; at least 1).
    pub memory: usize,
    /// Line search (default More-Thuente).
    pub line_search: LineSearch,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            grad_tol: 1e-8,
            max_iters: 1000,
            memory: 7,
            line_search: LineSearch::MoreThuente,
        }
    }
}

impl LbfgsOptions {
    /// Set the gradient tolerance.
    pub fn grad_tol(mut self, tol: f64) -> Self {
        self.grad_tol = tol;
        self
    }
    /// Set the iteration limit.
    pub fn max_iters(mut self, n: u64) -> Self {
        self.max_iters = n;
        self
    }
    /// Set the memory.
    pub fn memory(mut self, m: usize) -> Self {
        self.memory = m;
        self
    }
    /// Set the line search.
    pub fn line_search(mut self, l: LineSearch) -> Self {
        self.line_search = l;
        self
    }
}

/// 2^40, the default [`NewtonCgOptions::cost_scale`](crate::solvers::argmin_rs::NewtonCgOptions::cost_scale).
pub const DEFAULT_COST_SCALE: f64 = 1_099_511_627_776.0;

/// Options of [`minimize_newton_cg`](crate::solvers::argmin_rs::minimize_newton_cg): argmin's Newton-CG with a More-Thuente line search
/// and exact Hessian-vector products.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewtonCgOptions {
    /// Stop when `‖∇f(x)‖₂ <= grad_tol` (default `1e-8`; must be positive and finite).
    pub grad_tol: f64,
    /// Newton iteration limit (default 1000; see the module docs on why argmin's
    /// Newton-CG may need many).
    pub max_iters: u64,
    /// Hessian-vector products per Newton step, i.e. inner CG iterations (default 250; at
    /// least 1). argmin's inner loop has no limit of its own.
    pub max_cg_iters: usize,
    /// Factor applied to f, its gradient and its Hessian before argmin sees them (default
    /// [`DEFAULT_COST_SCALE`] = 2^40; positive and finite).
    ///
    /// argmin 0.11's Newton-CG stops its inner CG when `‖r‖² <= min(½, √‖g‖)·‖g‖` — a
    /// squared residual against a gradient norm, so the test depends on the scale of f. At
    /// scale 1 it is met after one CG step whenever ‖g‖ < 1, and Newton-CG degrades to
    /// steepest descent. At scale s it reads `‖r‖ <= √(‖g‖ / 2s)` in f's units, a relative
    /// residual of about 7e-7 / √‖g‖ for s = 2^40: nearly exact Newton steps (truncated by
    /// `max_cg_iters`). The Newton direction and the line search (scale-invariant) are
    /// unchanged, and a power of two changes no rounding. Set 1.0 for argmin's own
    /// behaviour; the gradient tolerance always applies to the unscaled f.
    pub cost_scale: f64,
    /// Line search (default More-Thuente).
    pub line_search: LineSearch,
}

impl Default for NewtonCgOptions {
    fn default() -> Self {
        NewtonCgOptions {
            grad_tol: 1e-8,
            max_iters: 1000,
            max_cg_iters: 250,
            cost_scale: DEFAULT_COST_SCALE,
            line_search: LineSearch::MoreThuente,
        }
    }
}

impl NewtonCgOptions {
    /// Set the gradient tolerance.
    pub fn grad_tol(mut self, tol: f64) -> Self {
        self.grad_tol = tol;
        self
    }
    /// Set the Newton iteration limit.
    pub fn max_iters(mut self, n: u64) -> Self {
        self.max_iters = n;
        self
    }
    /// Set the inner CG iteration limit.
    pub fn max_cg_iters(mut self, n: usize) -> Self {
        self.max_cg_iters = n;
        self
    }
    /// Set the cost scale.
    pub fn cost_scale(mut self, s: f64) -> Self {
        self.cost_scale = s;
        self
    }
    /// Set the line search.
    pub fn line_search(mut self, l: LineSearch) -> Self {
        self.line_search = l;
        self
    }
}

/// An argmin method with its options, for [`minimize`](crate::solvers::argmin_rs::minimize) and [`forward_solver`](crate::solvers::forward_solver).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ArgminMethod {
    /// L-BFGS.
    Lbfgs(LbfgsOptions),
    /// Newton-CG.
    NewtonCg(NewtonCgOptions),
}

impl Default for ArgminMethod {
    fn default() -> Self {
        ArgminMethod::Lbfgs(LbfgsOptions::default())
    }
}
