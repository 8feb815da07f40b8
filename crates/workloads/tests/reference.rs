//! The reference file of the benchmarks: loading, its errors, and the error measures.

use workloads::reference::{LoadError, Reference};

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("workloads-reference-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_good_file_loads_and_measures_errors() {
    let path = write(
        "good.json",
        r#"{"w1": {"hypergrad": 0.5, "val_loss": 0.1},
            "w2": {"hypergrad": [0.002, -0.004, 1e-6], "val_loss": 0.2, "extra": 1},
            "source": "numpy"}"#,
    );
    let r = Reference::load(&path).unwrap();
    assert_eq!(r.w2.hypergrad.len(), 3);
    // Relative to the largest entry (0.004), not entrywise: 1e-12 off the 1e-6 entry is
    // 2.5e-10 of the scale.
    let e = r.w2_error(&[0.002, -0.004, 1e-6 + 1e-12]).unwrap();
    assert!((e - 2.5e-10).abs() < 1e-20, "{e}");
    assert!(r.w2_error(&[0.002, f64::NAN, 1e-6]).unwrap().is_nan());
    assert!(r.w2_error(&[0.002, -0.004]).is_none());
    assert_eq!(r.w1_error(0.5), 0.0);
    assert!(r.w1_error(f64::NAN).is_nan());
}

#[test]
fn bad_files_are_typed_errors() {
    let missing = std::env::temp_dir().join("workloads-reference-does-not-exist.json");
    assert!(matches!(Reference::load(&missing), Err(LoadError::Io(_))));
    let path = write("malformed.json", r#"{"w1": {"hypergrad": 0.5}}"#);
    assert!(matches!(Reference::load(&path), Err(LoadError::Parse(_))));
    let path = write(
        "empty.json",
        r#"{"w1": {"hypergrad": 0.5, "val_loss": 0.1}, "w2": {"hypergrad": [], "val_loss": 0.2}}"#,
    );
    let err = Reference::load(&path).unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
    let path = write(
        "zero.json",
        r#"{"w1": {"hypergrad": 0.0, "val_loss": 0.1}, "w2": {"hypergrad": [1.0], "val_loss": 0.2}}"#,
    );
    assert!(matches!(Reference::load(&path), Err(LoadError::Invalid(_))));
}
