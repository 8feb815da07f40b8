//! Specification of `ad_core::nn`'s errors on data: saving and loading models (typed
//! I/O and parse errors with their sources), and losses that refuse empty batches and
//! non-finite inputs or targets.

use std::error::Error;

use ad_core::AdError;
use ad_core::nn::{Activation, Dense, Init, Mlp, Model, MseLoss, check_batch};
use nalgebra::DMatrix;
use proptest::prelude::*;

// ------------------------------------------------------------------ saving and loading

fn small_model(seed: u64) -> Model {
    let mlp = Mlp::from_layers(vec![
        Dense::new(3, 5, Activation::Relu),
        Dense::new(5, 2, Activation::Softplus),
    ]);
    Model::init(mlp, Init::TorchDefault, seed)
}

#[test]
fn model_json_round_trip_through_a_file() {
    let model = small_model(11);
    let path = std::env::temp_dir().join(format!("ad_core_nn_{}.json", std::process::id()));
    model.save_json(&path).unwrap();
    let back = Model::load_json(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, model);
    let x = DMatrix::from_row_slice(1, 3, &[0.2, -0.1, 0.5]);
    assert_eq!(back.forward(&x), model.forward(&x));
    // the Serialize/Deserialize impls themselves, and the Mlp alone
    let via_serde: Model = serde_json::from_str(&serde_json::to_string(&model).unwrap()).unwrap();
    assert_eq!(via_serde, model);
    let mlp: Mlp = serde_json::from_str(&serde_json::to_string(model.mlp()).unwrap()).unwrap();
    assert_eq!(&mlp, model.mlp());
}

#[test]
fn corrupt_or_mismatched_files_are_errors() {
    let good = small_model(1).to_json().unwrap();
    let load = |s: &str| Model::from_json(s);
    for bad in [
        "",
        "{",
        "null",
        "[]",
        &good[..good.len() / 2],
        &good.replace("\"Relu\"", "\"Swish\""),
        &good.replace("\"inputs\":3", "\"inputs\":-3"),
        &good.replace("\"inputs\":3", "\"inputs\":0"),
        &good.replace("\"outputs\":5", "\"outputs\":4"), // widths no longer chain
        &good.replace("\"params\"", "\"parameters\""),
        &good.replace("{\"mlp\":", "{\"extra\":1,\"mlp\":"),
        r#"{"mlp":{"layers":[]},"params":[]}"#,
        r#"{"mlp":{"layers":[{"inputs":4294967296,"outputs":4294967296,"activation":"Tanh"}]},"params":[]}"#,
        r#"{"mlp":{"layers":[{"inputs":1,"outputs":1,"activation":"Tanh"}]},"params":[1,2,NaN]}"#,
        r#"{"mlp":{"layers":[{"inputs":1,"outputs":1,"activation":"Tanh"}]},"params":[1,1e999]}"#,
    ] {
        // The parser's own error is kept as the source (with its line and column).
        match load(bad) {
            Err(e @ AdError::Load { path: None, .. }) => {
                assert!(e.to_string().starts_with("invalid saved data: "), "{e}");
                let source = e.source().expect("Load carries serde_json's error");
                assert!(source.is::<serde_json::Error>(), "{bad:?}: {source}");
            }
            other => panic!("accepted or wrong error for {bad:?}: {other:?}"),
        }
    }
    let short =
        r#"{"mlp":{"layers":[{"inputs":1,"outputs":2,"activation":"Tanh"}]},"params":[1,2,3]}"#;
    assert!(matches!(
        load(short),
        Err(AdError::Length {
            expected: 4,
            got: 3,
            ..
        })
    ));
    // the plain Deserialize impl checks the length too
    assert!(serde_json::from_str::<Model>(short).is_err());
    match Model::load_json("/nonexistent/dir/model.json") {
        Err(AdError::Io {
            action: "read",
            path,
            source,
        }) => {
            assert_eq!(path, std::path::Path::new("/nonexistent/dir/model.json"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    let mlp = small_model(1).mlp().clone();
    let n = mlp.num_params();
    assert!(matches!(
        Model::new(mlp.clone(), vec![0.0; 3]),
        Err(AdError::Length { expected, got: 3, .. }) if expected == n
    ));
    let mut m = Model::new(mlp.clone(), vec![0.0; n]).unwrap();
    assert!(matches!(
        m.set_params(vec![1.0; 2]),
        Err(AdError::Length { expected, got: 2, .. }) if expected == n
    ));
    assert_eq!(m.params(), &vec![0.0; n][..]);
    m.params_mut()[3] = f64::INFINITY;
    assert!(matches!(
        m.to_json(),
        Err(AdError::NonFinite { index: 3, value, .. }) if value == f64::INFINITY
    ));
    let never = std::env::temp_dir().join(format!("ad_core_nn_never_{}.json", std::process::id()));
    assert!(matches!(
        m.save_json(&never),
        Err(AdError::NonFinite { index: 3, value, .. }) if value == f64::INFINITY
    ));
    assert!(!never.exists(), "nothing is written for a refused model");
}

#[test]
fn io_and_load_errors_name_the_file() {
    let model = small_model(2);
    // Writing into a directory that does not exist.
    let bad_dir = std::path::Path::new("/nonexistent/dir/model.json");
    match model.save_json(bad_dir) {
        Err(
            e @ AdError::Io {
                action: "write", ..
            },
        ) => {
            assert!(e.to_string().contains("/nonexistent/dir/model.json"), "{e}");
            let AdError::Io { path, source, .. } = e else {
                unreachable!()
            };
            assert_eq!(path, bad_dir);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a write error, got {other:?}"),
    }
    // A file that exists but is not a model: Load with the path and the parser's position.
    let path = std::env::temp_dir().join(format!("ad_core_nn_bad_{}.json", std::process::id()));
    std::fs::write(&path, "{\"mlp\": 3}").unwrap();
    let got = Model::load_json(&path);
    std::fs::remove_file(&path).unwrap();
    match got {
        Err(e @ AdError::Load { .. }) => {
            // the message names the file
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid saved data in {}: ", path.display())),
                "{e}"
            );
            let AdError::Load {
                path: Some(p),
                source,
            } = e
            else {
                panic!("expected the path in the error: {e:?}");
            };
            assert_eq!(p, path);
            assert_eq!(source.line(), 1);
            assert!(source.is_data(), "{source}");
        }
        other => panic!("expected a load error, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any parameters (any finite bit pattern) reload bit for bit.
    #[test]
    fn params_round_trip_bit_for_bit(bits in prop::collection::vec(any::<u64>(), 32)) {
        let mlp = small_model(0).mlp().clone();
        prop_assert_eq!(mlp.num_params(), 32);
        let params: Vec<f64> = bits
            .iter()
            .map(|&b| f64::from_bits(b))
            .map(|x| if x.is_finite() { x } else { 1.5 })
            .collect();
        let model = Model::new(mlp, params).unwrap();
        let back = Model::from_json(&model.to_json().unwrap()).unwrap();
        for (a, b) in back.params().iter().zip(model.params()) {
            prop_assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    /// A corrupted file never panics: it is an error, or (if the edit kept it valid) a
    /// model whose parameters fit its architecture.
    #[test]
    fn corrupted_json_never_panics(
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 32u8..127), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = small_model(seed).to_json().unwrap().into_bytes();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let text = String::from_utf8(bytes).unwrap();
        if let Ok(m) = Model::from_json(&text) {
            prop_assert_eq!(m.params().len(), m.mlp().num_params());
        }
    }
}

// ------------------------------------------------------------------ data checks of losses

fn tiny() -> (Mlp, DMatrix<f64>, DMatrix<f64>) {
    let mlp = Mlp::new(&[2, 3, 1], Activation::Tanh, Activation::Identity);
    let x = DMatrix::from_row_slice(3, 2, &[0.1, 0.2, -0.3, 0.4, 0.5, -0.6]);
    let y = DMatrix::from_row_slice(3, 1, &[1.0, -1.0, 0.5]);
    (mlp, x, y)
}

#[test]
fn an_empty_batch_is_an_error_not_nan() {
    let (mlp, _, _) = tiny();
    let (x, y) = (DMatrix::zeros(0, 2), DMatrix::zeros(0, 1));
    assert!(matches!(
        MseLoss::new(&mlp, &x, &y),
        Err(AdError::EmptyBatch { what: "inputs x" })
    ));
    assert!(matches!(
        check_batch(&DMatrix::zeros(2, 2), &DMatrix::zeros(0, 1)),
        Err(AdError::EmptyBatch { what: "targets y" })
    ));
}

#[test]
#[should_panic(expected = "prediction is 0x1 and target is 0x1: need equal, non-empty shapes")]
fn mse_of_no_entries_panics_with_the_shapes() {
    ad_core::nn::mse(&DMatrix::<f64>::zeros(0, 1), &DMatrix::zeros(0, 1));
}

#[test]
fn non_finite_inputs_and_targets_are_errors_with_index_and_value() {
    let (mlp, x, y) = tiny();
    let mut bad_x = x.clone();
    bad_x[(1, 1)] = f64::NAN; // column-major index 3 + 1 = 4
    match MseLoss::new(&mlp, &bad_x, &y) {
        Err(AdError::NonFinite {
            what: "inputs x",
            index: 4,
            value,
        }) => assert!(value.is_nan()),
        other => panic!("expected a non-finite input, got {other:?}"),
    }
    let mut bad_y = y.clone();
    bad_y[2] = f64::NEG_INFINITY;
    assert!(matches!(
        MseLoss::new(&mlp, &x, &bad_y),
        Err(AdError::NonFinite { what: "targets y", index: 2, value }) if value == f64::NEG_INFINITY
    ));
    // Good data passes, and the accessors give it back.
    let loss = MseLoss::new(&mlp, &x, &y).unwrap();
    assert_eq!((loss.x(), loss.y(), loss.mlp()), (&x, &y, &mlp));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Wherever one non-finite value sits, the error names that entry and value.
    #[test]
    fn the_first_bad_entry_is_reported(
        at in 0usize..6,
        in_y in any::<bool>(),
        which in 0usize..3,
    ) {
        let (mlp, mut x, mut y) = tiny();
        let bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][which];
        let (what, index) = if in_y {
            y[at % 3] = bad;
            ("targets y", at % 3)
        } else {
            x[at] = bad;
            ("inputs x", at)
        };
        match MseLoss::new(&mlp, &x, &y) {
            Err(AdError::NonFinite { what: w, index: i, value }) => {
                prop_assert_eq!((w, i), (what, index));
                prop_assert_eq!(value.to_bits(), bad.to_bits());
            }
            other => prop_assert!(false, "expected NonFinite, got {:?}", other),
        }
    }
}
