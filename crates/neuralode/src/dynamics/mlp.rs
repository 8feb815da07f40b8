//! [`MlpDynamics`]: f(h) = an `ad_core::nn::Mlp` applied to h, with a fused, tape-free
//! forward + VJP (and JVP). At these sizes (a 2-50-2 network) a tape's bookkeeping costs
//! more than the arithmetic; see `examples/peers_w4.rs` for the measured ratio.

use std::cell::RefCell;

use ad_core::nn::{Activation, Mlp};
use ad_core::{MatOps, Unary};

use super::{Dynamics, VectorField};

/// An autonomous vector field f(h) = mlp(h), parameters in the [`Mlp`]'s flat layout
/// (per layer: W row-major `outputs x inputs`, then b — PyTorch's order).
///
/// ```
/// use ad_core::nn::{Activation, Mlp};
/// use neuralode::{Dynamics, MlpDynamics};
/// let f = MlpDynamics::new(Mlp::new(&[2, 16, 2], Activation::Tanh, Activation::Identity));
/// assert_eq!((f.dim(), f.num_params()), (2, 82));
/// let theta = vec![0.1; 82];
/// let mut out = [0.0; 2];
/// f.eval(0.0, &[1.0, -1.0], &theta, &mut out);
/// // every hidden unit: tanh(0.1·1 + 0.1·(−1) + 0.1); output: 16 · 0.1 · that + 0.1
/// assert!((out[0] - (1.6 * 0.1f64.tanh() + 0.1)).abs() < 1e-12);
/// ```
#[derive(Debug)]
pub struct MlpDynamics {
    mlp: Mlp,
    /// Per layer: pre-activations and activations (reused buffers).
    scratch: RefCell<Scratch>,
}

#[derive(Debug, Default)]
struct Scratch {
    pre: Vec<Vec<f64>>,
    act: Vec<Vec<f64>>,
    bar: Vec<f64>,
    bar2: Vec<f64>,
}

impl Clone for MlpDynamics {
    fn clone(&self) -> Self {
        MlpDynamics::new(self.mlp.clone())
    }
}

impl MlpDynamics {
    /// The field of a network whose input and output widths are equal (the state size).
    ///
    /// Panics if they differ.
    #[track_caller]
    pub fn new(mlp: Mlp) -> MlpDynamics {
        assert_eq!(
            mlp.inputs(),
            mlp.outputs(),
            "neuralode: MlpDynamics needs inputs == outputs, got widths {:?}",
            mlp.widths()
        );
        let widths = mlp.widths();
        let max = *widths.iter().max().unwrap_or(&1);
        let scratch = Scratch {
            pre: widths[1..].iter().map(|&w| vec![0.0; w]).collect(),
            act: widths[1..].iter().map(|&w| vec![0.0; w]).collect(),
            bar: vec![0.0; max],
            bar2: vec![0.0; max],
        };
        MlpDynamics {
            mlp,
            scratch: RefCell::new(scratch),
        }
    }

    /// The network.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Forward pass, keeping every layer's pre-activation and activation in `s`.
    fn forward(&self, h: &[f64], theta: &[f64], s: &mut Scratch) {
        for (l, d) in self.mlp.layers().iter().enumerate() {
            let (w0, b0) = (self.mlp.weight_range(l).start, self.mlp.bias_range(l).start);
            let (ni, no) = (d.inputs, d.outputs);
            let (before, rest) = s.act.split_at_mut(l);
            let input: &[f64] = if l == 0 { h } else { &before[l - 1] };
            let pre = &mut s.pre[l];
            for o in 0..no {
                let row = &theta[w0 + o * ni..w0 + (o + 1) * ni];
                let mut z = theta[b0 + o];
                for (w, x) in row.iter().zip(input) {
                    z += w * x;
                }
                pre[o] = z;
            }
            apply(d.activation, pre, &mut rest[0]);
        }
    }
}

/// The activation on a slice (vectorized kernels for tanh, sigmoid, softplus).
fn apply(act: Activation, x: &[f64], out: &mut [f64]) {
    match act {
        Activation::Identity => out.copy_from_slice(x),
        Activation::Tanh => ad_core::kernels::tanh(x, out),
        Activation::Sigmoid => ad_core::kernels::sigmoid(x, out),
        Activation::Softplus => ad_core::kernels::softplus(x, out),
        Activation::Relu => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v.max(0.0);
            }
        }
    }
}

/// d act / d x at pre-activation x with value y.
fn derivative(act: Activation, x: f64, y: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Tanh => 1.0 - y * y,
        _ => act.unary().map_or(1.0, |u: Unary| u.derivative(x, y)),
    }
}

impl Dynamics for MlpDynamics {
    fn dim(&self) -> usize {
        self.mlp.inputs()
    }

    fn num_params(&self) -> usize {
        self.mlp.num_params()
    }

    fn eval(&self, _t: f64, h: &[f64], theta: &[f64], out: &mut [f64]) {
        let s = &mut *self.scratch.borrow_mut();
        self.forward(h, theta, s);
        out.copy_from_slice(&s.act[self.mlp.num_layers() - 1]);
    }

    fn vjp(
        &self,
        _t: f64,
        h: &[f64],
        theta: &[f64],
        a: &[f64],
        f_out: &mut [f64],
        h_bar: &mut [f64],
        theta_bar: &mut [f64],
    ) {
        let s = &mut *self.scratch.borrow_mut();
        self.forward(h, theta, s);
        let nl = self.mlp.num_layers();
        f_out.copy_from_slice(&s.act[nl - 1]);
        // bar holds d loss / d (this layer's output)
        s.bar[..a.len()].copy_from_slice(a);
        for l in (0..nl).rev() {
            let d = self.mlp.layers()[l];
            let (ni, no) = (d.inputs, d.outputs);
            let (w0, b0) = (self.mlp.weight_range(l).start, self.mlp.bias_range(l).start);
            // through the activation: bar <- bar * act'(pre)
            for o in 0..no {
                s.bar[o] *= derivative(d.activation, s.pre[l][o], s.act[l][o]);
            }
            let input: &[f64] = if l == 0 { h } else { &s.act[l - 1] };
            for o in 0..no {
                let g = s.bar[o];
                theta_bar[b0 + o] = g;
                let row = &mut theta_bar[w0 + o * ni..w0 + (o + 1) * ni];
                for (tb, x) in row.iter_mut().zip(input) {
                    *tb = g * x;
                }
            }
            // to the input: bar2 = W^T bar
            let out: &mut [f64] = if l == 0 { h_bar } else { &mut s.bar2[..ni] };
            out.iter_mut().for_each(|v| *v = 0.0);
            for o in 0..no {
                let g = s.bar[o];
                let row = &theta[w0 + o * ni..w0 + (o + 1) * ni];
                for (v, w) in out.iter_mut().zip(row) {
                    *v += g * w;
                }
            }
            if l > 0 {
                std::mem::swap(&mut s.bar, &mut s.bar2);
            }
        }
    }

    fn jvp(
        &self,
        _t: f64,
        h: &[f64],
        theta: &[f64],
        v: &[f64],
        theta_dot: &[f64],
        out: &mut [f64],
    ) {
        let s = &mut *self.scratch.borrow_mut();
        self.forward(h, theta, s);
        // dot holds the tangent of the current layer's input
        let mut dot = v.to_vec();
        for (l, d) in self.mlp.layers().iter().enumerate() {
            let (ni, no) = (d.inputs, d.outputs);
            let (w0, b0) = (self.mlp.weight_range(l).start, self.mlp.bias_range(l).start);
            let input: &[f64] = if l == 0 { h } else { &s.act[l - 1] };
            let mut next = vec![0.0; no];
            for o in 0..no {
                let mut z = theta_dot[b0 + o];
                for i in 0..ni {
                    z += theta[w0 + o * ni + i] * dot[i] + theta_dot[w0 + o * ni + i] * input[i];
                }
                next[o] = z * derivative(d.activation, s.pre[l][o], s.act[l][o]);
            }
            dot = next;
        }
        out.copy_from_slice(&dot);
    }
}

/// The same network written against `MatOps` (for the tape baselines and checks).
impl VectorField for MlpDynamics {
    fn dim(&self) -> usize {
        self.mlp.inputs()
    }
    fn param_shapes(&self) -> Vec<(usize, usize)> {
        vec![(self.mlp.num_params(), 1)]
    }
    fn eval<M: MatOps>(&self, _t: f64, h: &M, theta: &[M]) -> M {
        // the Mlp takes a batch of rows: h^T is a 1 x d batch
        self.mlp.forward(&theta[0], &h.transpose()).transpose()
    }
}
