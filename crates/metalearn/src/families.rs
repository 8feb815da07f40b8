//! Two task families: the [`Sinusoid`] regression of Finn et al. (2017) and few-shot
//! [`LinearRegression`].

use std::f64::consts::PI;

use nalgebra::DMatrix;
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, check_count};
use crate::task::{Task, TaskDistribution};

/// The sinusoid family of Finn et al. (2017), exactly: `y = A sin(x - phi)` with
/// `A ~ U[0.1, 5]`, `phi ~ U[0, pi]`, and every input `x ~ U[-5, 5]` drawn independently
/// for the support and the query set.
///
/// ```
/// use metalearn::{Sinusoid, TaskDistribution};
/// use rand::{rngs::StdRng, SeedableRng};
/// let task = Sinusoid::default().sample(&mut StdRng::seed_from_u64(0), 10, 10).unwrap();
/// assert_eq!((task.support_x.nrows(), task.query_x.nrows()), (10, 10));
/// assert!(task.support_x.iter().all(|x| (-5.0..=5.0).contains(x)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sinusoid {
    /// Range of the amplitude `A` (default `[0.1, 5]`).
    pub amplitude: (f64, f64),
    /// Range of the phase `phi` (default `[0, pi]`).
    pub phase: (f64, f64),
    /// Range of the inputs `x` (default `[-5, 5]`).
    pub input: (f64, f64),
}

impl Default for Sinusoid {
    fn default() -> Self {
        Sinusoid {
            amplitude: (0.1, 5.0),
            phase: (0.0, PI),
            input: (-5.0, 5.0),
        }
    }
}

/// One sinusoid, `y = amplitude * sin(x - phase)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinusoidTask {
    /// `A`.
    pub amplitude: f64,
    /// `phi`.
    pub phase: f64,
}

impl SinusoidTask {
    /// The target at `x`.
    pub fn eval(&self, x: f64) -> f64 {
        self.amplitude * (x - self.phase).sin()
    }
}

fn uniform(rng: &mut StdRng, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

impl Sinusoid {
    /// Draw a sinusoid's amplitude and phase.
    pub fn sample_params(&self, rng: &mut StdRng) -> SinusoidTask {
        let amplitude = uniform(rng, self.amplitude);
        let phase = uniform(rng, self.phase);
        SinusoidTask { amplitude, phase }
    }

    /// `k` inputs drawn from the input range and their targets, as `k x 1` columns.
    pub fn points(
        &self,
        task: &SinusoidTask,
        rng: &mut StdRng,
        k: usize,
    ) -> (DMatrix<f64>, DMatrix<f64>) {
        let x = DMatrix::from_fn(k, 1, |_, _| uniform(rng, self.input));
        let y = x.map(|x| task.eval(x));
        (x, y)
    }

    /// Draw a sinusoid, then its support and query sets; also returns the sinusoid (for
    /// plots of the true curve).
    pub fn sample_with_params(
        &self,
        rng: &mut StdRng,
        k_support: usize,
        k_query: usize,
    ) -> Result<(Task, SinusoidTask), MetaError> {
        check_count("k_support", k_support)?;
        check_count("k_query", k_query)?;
        let params = self.sample_params(rng);
        let (sx, sy) = self.points(&params, rng, k_support);
        let (qx, qy) = self.points(&params, rng, k_query);
        Ok((Task::new(sx, sy, qx, qy)?, params))
    }
}

impl TaskDistribution for Sinusoid {
    fn input_dim(&self) -> usize {
        1
    }
    fn output_dim(&self) -> usize {
        1
    }
    fn sample(
        &self,
        rng: &mut StdRng,
        k_support: usize,
        k_query: usize,
    ) -> Result<Task, MetaError> {
        Ok(self.sample_with_params(rng, k_support, k_query)?.0)
    }
}

/// Few-shot linear regression in `dim` dimensions: `y = w . x + b + noise`, with
/// `w_i, b ~ U[-1, 1]`, `x_i ~ U[-2, 2]` and `noise ~ U[-noise, noise]`.
///
/// With a linear model the inner problems are quadratic (strongly convex under iMAML's
/// proximal term), which makes it the family for checking iMAML exactly.
///
/// ```
/// use metalearn::{LinearRegression, TaskDistribution};
/// use rand::{rngs::StdRng, SeedableRng};
/// let family = LinearRegression::new(3);
/// let task = family.sample(&mut StdRng::seed_from_u64(1), 5, 8).unwrap();
/// assert_eq!(task.support_x.shape(), (5, 3));
/// assert_eq!(task.query_y.shape(), (8, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearRegression {
    /// Input dimension.
    pub dim: usize,
    /// Half-width of the uniform noise added to the targets (default 0).
    pub noise: f64,
}

impl LinearRegression {
    /// Noise-free tasks in `dim` dimensions.
    pub fn new(dim: usize) -> LinearRegression {
        LinearRegression { dim, noise: 0.0 }
    }

    /// Set the noise half-width.
    pub fn noise(mut self, noise: f64) -> LinearRegression {
        self.noise = noise;
        self
    }
}

impl TaskDistribution for LinearRegression {
    fn input_dim(&self) -> usize {
        self.dim
    }
    fn output_dim(&self) -> usize {
        1
    }
    fn sample(
        &self,
        rng: &mut StdRng,
        k_support: usize,
        k_query: usize,
    ) -> Result<Task, MetaError> {
        check_count("dim", self.dim)?;
        check_count("k_support", k_support)?;
        check_count("k_query", k_query)?;
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(MetaError::InvalidOption {
                name: "noise",
                value: self.noise,
                reason: "must be finite and >= 0",
            });
        }
        let w: Vec<f64> = (0..self.dim).map(|_| uniform(rng, (-1.0, 1.0))).collect();
        let b = uniform(rng, (-1.0, 1.0));
        let mut draw = |k: usize| {
            let x = DMatrix::from_fn(k, self.dim, |_, _| uniform(rng, (-2.0, 2.0)));
            let y = DMatrix::from_fn(k, 1, |i, _| {
                let clean: f64 = (0..self.dim).map(|j| w[j] * x[(i, j)]).sum::<f64>() + b;
                clean + self.noise * uniform(rng, (-1.0, 1.0))
            });
            (x, y)
        };
        let (sx, sy) = draw(k_support);
        let (qx, qy) = draw(k_query);
        Task::new(sx, sy, qx, qy)
    }
}
