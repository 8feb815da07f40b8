//! The error type of ad-core.

use std::error::Error;
use std::path::PathBuf;

/// What a custom op's rule may return as its failure (for example a linear solve that did
/// not converge); it is passed on inside [`AdError::CustomRule`].
pub type RuleError = Box<dyn Error + Send + Sync + 'static>;

/// Everything that can go wrong in ad-core for reasons of data or of a user rule.
///
/// Shape mismatches between operands are programmer errors and panic instead (with both
/// shapes in the message), as in nalgebra.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdError {
    /// An input contained NaN or an infinity.
    #[error("non-finite {what}: entry {index} is {value}")]
    NonFinite {
        /// Which input (e.g. "point x", "direction v").
        what: &'static str,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A custom op's VJP or JVP rule reported a failure.
    #[error("custom op `{name}` failed in its {rule} rule: {source}")]
    CustomRule {
        /// The op's name.
        name: String,
        /// "vjp" or "jvp".
        rule: &'static str,
        /// The rule's own error.
        source: RuleError,
    },
    /// A custom op's rule returned blocks of the wrong number or shape.
    #[error(
        "custom op `{name}`: its {rule} rule returned blocks of shapes {got:?}, expected {expected:?}"
    )]
    CustomShape {
        /// The op's name.
        name: String,
        /// "vjp" or "jvp".
        rule: &'static str,
        /// Shapes the tape needed.
        expected: Vec<(usize, usize)>,
        /// Shapes the rule returned.
        got: Vec<(usize, usize)>,
    },
    /// A length that depends on user data did not match.
    #[error("length mismatch for {what}: expected {expected}, got {got}")]
    Length {
        /// What was being matched.
        what: &'static str,
        /// The length needed.
        expected: usize,
        /// The length given.
        got: usize,
    },
    // --- core: tape and custom ops (keep additions of ad-core's core in this block) ---
    /// A custom op's VJP or JVP rule returned a NaN or an infinity (which would otherwise
    /// flow silently into gradients or tangents).
    #[error(
        "custom op `{name}`: its {rule} rule returned a non-finite value: block {block}, entry {index} is {value}"
    )]
    CustomNonFinite {
        /// The op's name.
        name: String,
        /// "vjp" or "jvp".
        rule: &'static str,
        /// Which returned block (input adjoint for "vjp", output tangent for "jvp").
        block: usize,
        /// Position of the first non-finite entry in that block (column-major).
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A custom function with first-order rules only was asked for a second derivative:
    /// its input `block` has a tangent on a tape mode (`Dual<Var>`, `DualMat<MatVar>`),
    /// whose derivative would need the rule's own derivative.
    #[error(
        "custom op `{name}` has first-order rules only: it cannot be differentiated twice \
         (input block {block} has a tangent in a second-order mode)"
    )]
    CustomSecondOrder {
        /// The op's name.
        name: String,
        /// The first input block with a tangent not known to be zero.
        block: usize,
    },
    /// A custom function was applied in a matrix or scalar mode that does not implement
    /// custom functions.
    #[error("custom op `{name}` cannot be applied in mode `{mode}`")]
    CustomUnsupported {
        /// The op's name.
        name: String,
        /// The mode's type.
        mode: &'static str,
    },
    // --- end of core block ---
    /// Saved data (a model) is not valid: JSON syntax, missing or unknown fields, values
    /// out of range.
    #[error("invalid saved data{}: {source}", path_suffix(path))]
    Load {
        /// The file read, if the data came from one.
        path: Option<PathBuf>,
        /// The parser's error (line, column and what was expected).
        source: serde_json::Error,
    },
    /// Reading or writing a file failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A mean over a batch with no samples (it would be NaN, with a zero gradient).
    #[error("empty batch: {what} has no samples, so the mean over it is undefined")]
    EmptyBatch {
        /// Which data (e.g. "inputs x").
        what: &'static str,
    },
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" in {}", p.display()))
        .unwrap_or_default()
}

/// Reject the first non-finite entry of `xs`.
pub fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), AdError> {
    if all_finite(xs) {
        return Ok(());
    }
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(AdError::NonFinite {
            what,
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}

/// Whether every entry is finite. `x * 0.0` is 0 for finite `x` and NaN for NaN or an
/// infinity; summing it in eight independent lanes vectorizes (no early exit), so the check
/// costs a fraction of a pass over the data ([`check_finite`] searches for the offending
/// entry only when this fails).
///
/// ```
/// assert!(ad_core::all_finite(&[1.0, -2.0, 0.0]));
/// assert!(!ad_core::all_finite(&[1.0, f64::NAN]) && !ad_core::all_finite(&[f64::INFINITY]));
/// ```
pub fn all_finite(xs: &[f64]) -> bool {
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|x| x * 0.0).sum();
    let mut acc = [0.0f64; 8];
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k] * 0.0;
        }
    }
    acc.iter().sum::<f64>() + tail == 0.0
}
