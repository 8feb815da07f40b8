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
        let mut g = x_bar.to_vec();
        for _ in 0..steps {
            let at_g = self.a_product(true, &g)?;
            for ((gi, ai), bi) in g.iter_mut().zip(&at_g).zip(x_bar) {
                *gi += damping * (sigma * ai + bi);
            }
        }
        let (at_g, bt_g) = self.transpose_products(&g)?;
        let theta_bar = bt_g.iter().map(|v| sigma * v).collect();
        // With w = −σg the exact system is Aᵀw = x̄: its residual is −(σAᵀg + x̄).
        let r: Vec<f64> = at_g.iter().zip(x_bar).map(|(a, b)| sigma * a + b).collect();
        let mut report = self.report(Direction::Reverse);
        report.steps = steps;
        report.relative_residual = relative(norm(&r), norm(x_bar));
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
        let mut x_dot = c.clone();
        for _ in 0..steps {
            let a_x = self.a_product(false, &x_dot)?;
            for ((xi, ai), ci) in x_dot.iter_mut().zip(&a_x).zip(&c) {
                *xi += damping * (sigma * ai + ci);
            }
        }
        // The exact system is Aẋ = −Bθ̇ = −σc: its residual is σ(σAẋ + c).
        let a_x = self.a_product(false, &x_dot)?;
        let r: Vec<f64> = a_x.iter().zip(&c).map(|(a, ci)| sigma * a + ci).collect();
        let mut report = self.report(Direction::Forward);
        report.steps = steps;
        report.relative_residual = relative(norm(&r), norm(&c));
        Ok((x_dot, report))
    }
}
