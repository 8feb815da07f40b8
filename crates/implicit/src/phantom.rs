//! The approximate backward passes: k damped fixed-point steps on the adjoint (the phantom
//! gradient) and, with k = 0, the Jacobian-free pass. The exact pass is in `exact.rs`; the
//! options and reports they share are in `backward.rs`.

use crate::backward::{Direction, IftReport, relative};
use crate::error::ImplicitError;
use crate::ift::Implicit;
use crate::linear::kernels::norm;
use crate::linearize::Linearization;

impl<L: Linearization> Implicit<L> {
    /// Reverse mode by `steps` damped steps on the adjoint (0 steps: Jacobian-free):
    /// g ← g + τ(σAᵀg + x̄) from g = x̄ (the same as g ← (1−τ)g + τ(J_fᵀg + x̄) with
    /// J_f = I + σA), then θ̄ = σBᵀg. The last product gives Bᵀg and the residual.
    pub(crate) fn phantom_vjp(
        &self,
        x_bar: &[f64],
        steps: usize,
        damping: f64,
    ) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        let sigma = self.lin.map_sign();
        let x_bar_norm = norm(x_bar);
        let mut g = x_bar.to_vec();
        // With w = −σg the exact system is Aᵀw = x̄: its residual is −(σAᵀg + x̄), which is
        // also the step's increment. The first one is the Jacobian-free pass's residual.
        let mut initial = None;
        for _ in 0..steps {
            let at_g = self.a_product(true, &g)?;
            let mut r2 = 0.0;
            for ((gi, ai), bi) in g.iter_mut().zip(&at_g).zip(x_bar) {
                let r = sigma * ai + bi;
                r2 += r * r;
                *gi += damping * r;
            }
            initial.get_or_insert(relative(r2.sqrt(), x_bar_norm));
        }
        let (at_g, bt_g) = self.transpose_products(&g)?;
        let theta_bar = bt_g.iter().map(|v| sigma * v).collect();
        let r: Vec<f64> = at_g.iter().zip(x_bar).map(|(a, b)| sigma * a + b).collect();
        let mut report = self.report(Direction::Reverse);
        report.steps = steps;
        report.relative_residual = relative(norm(&r), x_bar_norm);
        check_not_growing(&report, initial, damping)?;
        Ok((theta_bar, report))
    }

    /// Forward mode by `steps` damped steps (0 steps: Jacobian-free): with c = σBθ̇,
    /// ẋ ← ẋ + τ(σAẋ + c) from ẋ = c.
    pub(crate) fn phantom_jvp(
        &self,
        theta_dot: &[f64],
        steps: usize,
        damping: f64,
    ) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        let sigma = self.lin.map_sign();
        let c: Vec<f64> = self
            .b_product(theta_dot)?
            .iter()
            .map(|v| sigma * v)
            .collect();
        let c_norm = norm(&c);
        let mut x_dot = c.clone();
        // The exact system is Aẋ = −Bθ̇ = −σc: its residual is σ(σAẋ + c), the step's
        // increment up to sign.
        let mut initial = None;
        for _ in 0..steps {
            let a_x = self.a_product(false, &x_dot)?;
            let mut r2 = 0.0;
            for ((xi, ai), ci) in x_dot.iter_mut().zip(&a_x).zip(&c) {
                let r = sigma * ai + ci;
                r2 += r * r;
                *xi += damping * r;
            }
            initial.get_or_insert(relative(r2.sqrt(), c_norm));
        }
        let a_x = self.a_product(false, &x_dot)?;
        let r: Vec<f64> = a_x.iter().zip(&c).map(|(a, ci)| sigma * a + ci).collect();
        let mut report = self.report(Direction::Forward);
        report.steps = steps;
        report.relative_residual = relative(norm(&r), c_norm);
        check_not_growing(&report, initial, damping)?;
        Ok((x_dot, report))
    }
}

/// [`ImplicitError::PhantomDiverged`] when the steps left the residual larger than they
/// found it (beyond rounding), or not finite. Each step multiplies the residual by
/// `(1−τ)I + τJ_f` (or its transpose), so on a map that contracts in norm the residual
/// never grows: only a non-contractive direction trips this.
fn check_not_growing(
    report: &IftReport,
    initial: Option<f64>,
    damping: f64,
) -> Result<(), ImplicitError> {
    let Some(initial) = initial else {
        return Ok(()); // no steps: the Jacobian-free pass
    };
    let last = report.relative_residual;
    // Rounding slack: relative residuals carry errors of order ε times the sizes involved.
    if last <= initial * (1.0 + 1e-9) + 1e-14 {
        return Ok(());
    }
    Err(ImplicitError::PhantomDiverged {
        direction: report.direction,
        steps: report.steps,
        damping,
        initial_residual: initial,
        final_residual: last,
    })
}
