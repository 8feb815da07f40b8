//! Seeded parameter initialization: [`Init`] and [`Mlp::init`].

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::Mlp;

/// How to draw a fresh parameter vector (`fan_in = inputs`, `fan_out = outputs` of a
/// layer).
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp};
/// let mlp = Mlp::new(&[3, 16, 1], Activation::Tanh, Activation::Identity);
/// let a = mlp.init(Init::XavierUniform, 42);
/// assert_eq!(a, mlp.init(Init::XavierUniform, 42)); // same seed, same parameters
/// assert_ne!(a, mlp.init(Init::XavierUniform, 43));
/// assert!(mlp.bias(&a, 0).iter().all(|&b| b == 0.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Init {
    /// Glorot/Xavier uniform (for tanh and sigmoid networks):
    /// `W ~ U(-a, a)`, `a = sqrt(6 / (fan_in + fan_out))`, so `Var W = 2 / (fan_in + fan_out)`;
    /// biases zero.
    XavierUniform,
    /// He/Kaiming normal, fan-in mode (for ReLU networks): `W ~ N(0, 2 / fan_in)`;
    /// biases zero.
    HeNormal,
    /// PyTorch's `nn.Linear` default: `W` and `b` both `~ U(-a, a)`, `a = 1 / sqrt(fan_in)`,
    /// so `Var W = 1 / (3 fan_in)`.
    TorchDefault,
}

impl Init {
    /// The variance of each weight of a `fan_in -> fan_out` layer under this scheme.
    pub fn weight_variance(self, fan_in: usize, fan_out: usize) -> f64 {
        match self {
            Init::XavierUniform => 2.0 / (fan_in + fan_out) as f64,
            Init::HeNormal => 2.0 / fan_in as f64,
            Init::TorchDefault => 1.0 / (3.0 * fan_in as f64),
        }
    }
}

impl Mlp {
    /// A fresh flat parameter vector drawn with `init` from a generator seeded with `seed`.
    ///
    /// Same seed, same vector, on every platform: the generator is rand's `StdRng`
    /// (ChaCha12 in rand 0.9, which this workspace pins), drawn layer by layer in flat
    /// order (each `W` row-major, then its `b` if the scheme draws biases). Uniform draws
    /// are exact arithmetic on the ChaCha stream; normal draws use rand_distr's ziggurat.
    /// A rand release that changed `StdRng` would change the numbers, so a test pins them.
    pub fn init(&self, init: Init, seed: u64) -> Vec<f64> {
        self.init_with_rng(init, &mut StdRng::seed_from_u64(seed))
    }

    /// As [`init`](Mlp::init), drawing from a caller's generator (for several networks
    /// from one stream).
    pub fn init_with_rng<R: Rng + ?Sized>(&self, init: Init, rng: &mut R) -> Vec<f64> {
        let mut params = Vec::with_capacity(self.num_params());
        for d in self.layers() {
            let (fan_in, fan_out) = (d.inputs as f64, d.outputs as f64);
            let nw = d.num_weights();
            match init {
                Init::XavierUniform => {
                    let a = (6.0 / (fan_in + fan_out)).sqrt();
                    params.extend((0..nw).map(|_| uniform(rng, a)));
                    params.extend(std::iter::repeat_n(0.0, d.outputs));
                }
                Init::HeNormal => {
                    let std = (2.0 / fan_in).sqrt();
                    params.extend((0..nw).map(|_| std * rng.sample::<f64, _>(StandardNormal)));
                    params.extend(std::iter::repeat_n(0.0, d.outputs));
                }
                Init::TorchDefault => {
                    let a = 1.0 / fan_in.sqrt();
                    params.extend((0..d.num_params()).map(|_| uniform(rng, a)));
                }
            }
        }
        debug_assert_eq!(params.len(), self.num_params());
        params
    }
}

/// One draw from `U(-a, a)` (53 random bits scaled; never exactly `a`).
fn uniform<R: Rng + ?Sized>(rng: &mut R, a: f64) -> f64 {
    a * (2.0 * rng.random::<f64>() - 1.0)
}
