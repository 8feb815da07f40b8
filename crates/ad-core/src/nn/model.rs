//! [`Model`]: an architecture with its parameters, saved and loaded as JSON.

use std::path::Path;

use nalgebra::DMatrix;

use super::{Init, Mlp};
use crate::error::{AdError, check_finite};

/// An [`Mlp`] together with a flat parameter vector of the right length: what a trained
/// network is saved as.
///
/// The length is checked whenever a `Model` is made, deserialized or loaded, so a `Model`
/// always fits its architecture. The JSON form is
/// `{"mlp":{"layers":[{"inputs":1,"outputs":40,"activation":"Relu"},..]},"params":[..]}`,
/// and parameters reload bit for bit.
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp, Model};
/// let mlp = Mlp::new(&[2, 4, 1], Activation::Tanh, Activation::Identity);
/// let model = Model::init(mlp, Init::XavierUniform, 3);
/// let json = model.to_json().unwrap();
/// assert_eq!(Model::from_json(&json).unwrap(), model);
/// assert!(Model::from_json(&json[..json.len() - 2]).is_err()); // truncated: an error
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "ModelRepr")]
pub struct Model {
    mlp: Mlp,
    params: Vec<f64>,
}

/// What is read before the length is checked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelRepr {
    mlp: Mlp,
    params: Vec<f64>,
}

impl TryFrom<ModelRepr> for Model {
    type Error = AdError;
    fn try_from(r: ModelRepr) -> Result<Model, AdError> {
        Model::new(r.mlp, r.params)
    }
}

impl Model {
    /// A model from an architecture and its flat parameters; [`AdError::Length`] if the
    /// length does not match [`Mlp::num_params`].
    pub fn new(mlp: Mlp, params: Vec<f64>) -> Result<Model, AdError> {
        mlp.check_params(&params)?;
        Ok(Model { mlp, params })
    }

    /// A model with freshly drawn parameters (see [`Mlp::init`]).
    pub fn init(mlp: Mlp, init: Init, seed: u64) -> Model {
        let params = mlp.init(init, seed);
        Model { mlp, params }
    }

    /// The architecture.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The flat parameter vector.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// The flat parameter vector, to update in place (its length cannot change).
    pub fn params_mut(&mut self) -> &mut [f64] {
        &mut self.params
    }

    /// Replace the parameters; [`AdError::Length`] (and no change) if the length is wrong.
    pub fn set_params(&mut self, params: Vec<f64>) -> Result<(), AdError> {
        self.mlp.check_params(&params)?;
        self.params = params;
        Ok(())
    }

    /// The architecture and the parameters, taken apart.
    pub fn into_parts(self) -> (Mlp, Vec<f64>) {
        (self.mlp, self.params)
    }

    /// The network on a plain batch (`batch x inputs`), see [`Mlp::forward_f64`].
    #[track_caller]
    pub fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        self.mlp.forward_f64(&self.params, x)
    }

    /// The model as JSON. [`AdError::NonFinite`] if a parameter is NaN or infinite (JSON
    /// has no such numbers, so the file could not be loaded again).
    pub fn to_json(&self) -> Result<String, AdError> {
        check_finite("model parameters", &self.params)?;
        Ok(serde_json::to_string(self).expect("a Model with finite parameters always serializes"))
    }

    /// A model from JSON: [`AdError::Load`] (with serde_json's error as its source) for
    /// text that is not a valid model (syntax, missing or unknown fields, widths that do
    /// not chain), [`AdError::Length`] for parameters whose number does not fit the
    /// architecture.
    pub fn from_json(json: &str) -> Result<Model, AdError> {
        Model::parse(json, None)
    }

    fn parse(json: &str, path: Option<&Path>) -> Result<Model, AdError> {
        let r: ModelRepr = serde_json::from_str(json).map_err(|source| AdError::Load {
            path: path.map(Path::to_path_buf),
            source,
        })?;
        Model::new(r.mlp, r.params)
    }

    /// Write the model as JSON to `path`: [`AdError::NonFinite`] (and no file written) if a
    /// parameter is NaN or infinite, [`AdError::Io`] if the file cannot be written.
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<(), AdError> {
        let path = path.as_ref();
        let json = self.to_json()?;
        std::fs::write(path, json).map_err(|source| AdError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Read a model saved by [`save_json`](Model::save_json): [`AdError::Io`] if the file
    /// cannot be read, [`AdError::Load`] (with the path) if it is not a valid model,
    /// [`AdError::Length`] if the parameters do not fit the architecture. Never panics on
    /// bad data.
    pub fn load_json(path: impl AsRef<Path>) -> Result<Model, AdError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| AdError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Model::parse(&json, Some(path))
    }
}
