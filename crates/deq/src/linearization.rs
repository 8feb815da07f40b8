//! The layer's fixed-point condition F(z, [θ, x]) = z − f(z, x; θ) = 0 as an implicit
//! problem: [`DeqProblem`] is what [`implicit::implicit_node`] records, and
//! [`DeqLinearization`] gives implicit's backward passes (exact, phantom, Jacobian-free —
//! implicit's own, not a copy) their products.
//!
//! x is the last parameter block, so gradients reach it like any other block. F is
//! written z − f (not f − z): then A = ∂F/∂z = I − J_f, so the exact pass's linear
//! system Aᵀw = z̄ is the adjoint fixed point w = z̄ + J_fᵀ w, which implicit's Richardson
//! solver (`linear::Method::Richardson`) iterates directly; the sign σ of the map
//! f = z + σF that the phantom and Jacobian-free passes iterate is then −1.
//!
//! The map is recorded on one tape twice: with θ and the input injection as constants
//! (for the products with A = ∂F/∂z and Aᵀ, which a Krylov solve repeats: a reverse sweep then
//! skips the parameters' adjoints, one gemm per product instead of four for
//! [`TanhLayer`](crate::map::TanhLayer)) and with θ and x as variables (for B and Bᵀ,
//! needed once per pass).

use std::sync::Arc;

use ad_core::{AdError, MatOps, MatVar, Seeds, Tape};
use implicit::{
    IftOptions, IftReport, Implicit, ImplicitError, ImplicitProblem, Linearization, Shapes,
};
use nalgebra::DMatrix;

use crate::map::EquilibriumMap;

/// The fixed point of an [`EquilibriumMap`] as an implicit problem over the blocks
/// `[θ..., x]`, or over `[θ...]` alone when the input is data (`input`: no gradient is
/// formed for it).
pub struct DeqProblem<F: ?Sized> {
    /// The map.
    pub map: Arc<F>,
    /// The input x when it is data; `None`: x is the last block.
    pub input: Option<Arc<DMatrix<f64>>>,
    /// A point z and its residual ‖f(z) − z‖₂ as the forward solver measured it (same map,
    /// same f64 arithmetic): [`residual_norm`](ImplicitProblem::residual_norm) at exactly
    /// that z returns it instead of evaluating f again.
    pub known_residual: Option<(DMatrix<f64>, f64)>,
}

impl<F: ?Sized> Clone for DeqProblem<F> {
    fn clone(&self) -> Self {
        DeqProblem {
            map: Arc::clone(&self.map),
            input: self.input.clone(),
            known_residual: self.known_residual.clone(),
        }
    }
}

impl<F: ?Sized> DeqProblem<F> {
    /// (x, θ) from the blocks.
    fn split<'a>(&'a self, blocks: &'a [DMatrix<f64>]) -> (&'a DMatrix<f64>, &'a [DMatrix<f64>]) {
        match &self.input {
            Some(x) => (x, blocks),
            None => blocks.split_last().expect("deq: the blocks end with x"),
        }
    }
}

impl<F: EquilibriumMap + ?Sized + 'static> ImplicitProblem for DeqProblem<F> {
    fn residual_norm(
        &self,
        z: &DMatrix<f64>,
        blocks: &[DMatrix<f64>],
    ) -> Result<f64, ImplicitError> {
        if let Some((known_z, r)) = &self.known_residual
            && known_z == z
        {
            return Ok(*r);
        }
        let (x, theta) = self.split(blocks);
        let fz = self.map.apply(z, x, theta);
        if fz.shape() != z.shape() {
            return Err(ImplicitError::Shape {
                what: "map output f(z, x; theta) (must have the shape of z)",
                expected: z.shape(),
                got: fz.shape(),
            });
        }
        Ok((fz - z).norm())
    }
    fn vjp(
        &self,
        z: &DMatrix<f64>,
        blocks: &[DMatrix<f64>],
        z_bar: &DMatrix<f64>,
        options: &IftOptions,
    ) -> Result<(Vec<DMatrix<f64>>, IftReport), ImplicitError> {
        let lin = DeqLinearization::new(&*self.map, z, blocks, self.input.as_deref())?;
        Implicit::from_linearization(lin, options.clone())?.vjp(z_bar)
    }
    fn jvp(
        &self,
        z: &DMatrix<f64>,
        blocks: &[DMatrix<f64>],
        blocks_dot: &[DMatrix<f64>],
        options: &IftOptions,
    ) -> Result<(DMatrix<f64>, IftReport), ImplicitError> {
        let lin = DeqLinearization::new(&*self.map, z, blocks, self.input.as_deref())?;
        Implicit::from_linearization(lin, options.clone())?.jvp(blocks_dot)
    }
}

/// F(z, [θ, x]) = z − f(z, x; θ) recorded once at a point (see the [module docs](self)).
pub struct DeqLinearization {
    z: MatVar,
    blocks: Vec<MatVar>,
    f_const: MatVar,
    f_full: MatVar,
    residual: Vec<f64>,
    shapes: Shapes,
    tape: Tape,
}

impl DeqLinearization {
    /// Record F at (z, blocks = [θ..., x]), or at (z, blocks = [θ...]) with the input
    /// `input` as data. Opens a tape that lives as long as the value.
    ///
    /// # Errors
    /// [`ImplicitError::Shape`] if f is not shaped like z.
    pub fn new<F: EquilibriumMap + ?Sized>(
        map: &F,
        z: &DMatrix<f64>,
        blocks: &[DMatrix<f64>],
        input: Option<&DMatrix<f64>>,
    ) -> Result<DeqLinearization, ImplicitError> {
        let tape = Tape::new();
        let zv = tape.mat_var(z.clone());
        let data = input.map(|x| tape.constant_mat(x.clone()));
        let shape_error = |got| ImplicitError::Shape {
            what: "map output f(z, x; theta) (must have the shape of z)",
            expected: z.shape(),
            got,
        };
        // With θ and x as variables (for B and Bᵀ).
        let vars: Vec<MatVar> = blocks.iter().map(|b| tape.mat_var(b.clone())).collect();
        let (xv, tv) = match &data {
            Some(x) => (x, &vars[..]),
            None => vars.split_last().expect("deq: the blocks end with x"),
        };
        let injection = map.inject(xv, tv);
        let f_full = map.map(&zv, &injection, tv);
        if f_full.shape() != z.shape() {
            return Err(shape_error(f_full.shape()));
        }
        let f_full = zv.sub(&f_full);
        // With θ and the injection as constants (for A and Aᵀ): the injection's value is
        // reused, not recomputed.
        let consts: Vec<MatVar> = tv.iter().map(|b| tape.constant_mat(b.value())).collect();
        let inj_const = tape.constant_mat(injection.value());
        let f_const = zv.sub(&map.map(&zv, &inj_const, &consts));
        let residual = f_full.value().as_slice().to_vec();
        Ok(DeqLinearization {
            z: zv,
            blocks: vars,
            f_const,
            f_full,
            residual,
            shapes: Shapes::of(z, blocks),
            tape,
        })
    }
}

impl Linearization for DeqLinearization {
    fn dims(&self) -> (usize, usize) {
        (self.shapes.n(), self.shapes.p())
    }
    fn shapes(&self) -> Shapes {
        self.shapes.clone()
    }
    fn residual(&self) -> &[f64] {
        &self.residual
    }
    fn symmetric(&self) -> bool {
        false
    }
    fn map_sign(&self) -> f64 {
        -1.0
    }
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        let mut t = self
            .tape
            .forward(&Seeds::new().mat(&self.z, self.shapes.x_matrix(v)))?;
        Ok(t.take_mat(&self.f_const).data.into())
    }
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        let mut g = self
            .tape
            .backward(&Seeds::new().mat(&self.f_const, self.shapes.x_matrix(u)))?;
        Ok(g.take_mat(&self.z).data.into())
    }
    fn b_mul(&self, w: &[f64]) -> Result<Vec<f64>, AdError> {
        let seeds = self
            .blocks
            .iter()
            .zip(self.shapes.theta_blocks(w))
            .fold(Seeds::new(), |s, (b, d)| s.mat(b, d));
        let mut t = self.tape.forward(&seeds)?;
        Ok(t.take_mat(&self.f_full).data.into())
    }
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.transpose_products(u).map(|(_, b)| b)
    }
    fn transpose_products(&self, u: &[f64]) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        let mut g = self
            .tape
            .backward(&Seeds::new().mat(&self.f_full, self.shapes.x_matrix(u)))?;
        let mut bt = Vec::with_capacity(self.shapes.p());
        for b in &self.blocks {
            bt.extend_from_slice(g.take_mat(b).as_slice());
        }
        Ok((g.take_mat(&self.z).data.into(), bt))
    }
}
