//! Timing, checking and reporting for `examples/peers_w1_w2.rs`: every row's answer is
//! checked before it is timed, and a row that fails the check is reported as failed, not
//! timed.

use std::hint::black_box;
use std::time::Instant;

use diffprog::implicit::ImplicitError;
use workloads::reference::Reference;

/// The acceptance bound of a row's answer: W1 relative error, W2 largest entry error over
/// the largest entry (see `workloads::reference`). The peers' fastest rows reach 1e-11.
pub const TOL: f64 = 1e-8;

/// Median and min seconds of `f` after 3 warm-up calls (up to `repeat` calls, at most
/// `max_seconds`, at least 5), as in the peers' `common.bench`.
pub fn bench(repeat: usize, max_seconds: f64, mut f: impl FnMut()) -> (f64, f64, usize) {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut t = Vec::with_capacity(repeat);
    for k in 0..repeat.max(5) {
        let t0 = Instant::now();
        f();
        t.push(t0.elapsed().as_secs_f64());
        if k + 1 >= 5 && start.elapsed().as_secs_f64() > max_seconds {
            break;
        }
    }
    let n = t.len();
    t.sort_by(f64::total_cmp);
    let median = if n % 2 == 1 {
        t[n / 2]
    } else {
        0.5 * (t[n / 2 - 1] + t[n / 2])
    };
    (median, t[0], n)
}

/// One row of the table.
pub struct Row {
    /// "W1" or "W2".
    pub workload: &'static str,
    /// "general" or "hand-written".
    pub group: &'static str,
    /// What the row does.
    pub name: String,
    /// `(median, min, runs)`, or `None` for a failed row.
    pub timing: Option<(f64, f64, usize)>,
    /// The answer's error against the reference (NaN if there was no answer).
    pub err: f64,
    /// Iteration counts, or why the row failed.
    pub notes: String,
}

/// Collects rows.
pub struct Table {
    /// Timed calls per W1 row (W2: half).
    pub repeat: usize,
    /// Time budget per row, seconds.
    pub max_seconds: f64,
    /// The reference answers.
    pub reference: Reference,
    /// Rows so far.
    pub rows: Vec<Row>,
}

impl Table {
    /// Check `f`'s hypergradient (the first call), then time `f` if it passed.
    pub fn add<T>(
        &mut self,
        workload: &'static str,
        group: &'static str,
        name: &str,
        mut f: impl FnMut() -> Result<T, ImplicitError>,
        answer: impl Fn(&T) -> (Vec<f64>, String),
    ) {
        let (err, notes) = match f() {
            Ok(out) => {
                let (g, notes) = answer(&out);
                let err = match workload {
                    "W1" if g.len() == 1 => self.reference.w1_error(g[0]),
                    "W2" => self.reference.w2_error(&g).unwrap_or(f64::NAN),
                    _ => f64::NAN,
                };
                (err, notes)
            }
            Err(e) => (f64::NAN, format!("error: {e}")),
        };
        let timing = if err <= TOL {
            let repeat = if workload == "W1" {
                self.repeat
            } else {
                self.repeat / 2
            };
            Some(bench(repeat, self.max_seconds, || {
                black_box(f().expect("succeeded once already"));
            }))
        } else {
            None
        };
        self.rows.push(Row {
            workload,
            group,
            name: name.to_string(),
            timing,
            err,
            notes,
        });
    }
}

/// `12.3 us`, `1.234 ms` or `1.234 s`.
pub fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

/// JSON string literal (quotes and backslashes escaped).
fn js(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// JSON number, `null` for NaN or infinity.
fn jn(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else {
        "null".to_string()
    }
}

/// Print the markdown table and write the rows as JSON to `path`.
pub fn report(rows: &[Row], path: &str) {
    println!("| workload | kind | ours | median | min | runs | error vs reference | notes |");
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        let (median, min, runs) = match r.timing {
            Some((m, n, k)) => (fmt_time(m), fmt_time(n), k.to_string()),
            None => ("FAILED".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} | {median} | {min} | {runs} | {:.1e} | {} |",
            r.workload, r.group, r.name, r.err, r.notes
        );
    }
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            let (median, min, runs) = r.timing.unwrap_or((f64::NAN, f64::NAN, 0));
            format!(
                "{{\"workload\": {}, \"group\": {}, \"name\": {}, \"ok\": {}, \"median_s\": {}, \
                 \"min_s\": {}, \"runs\": {runs}, \"err\": {}, \"notes\": {}}}",
                js(r.workload),
                js(r.group),
                js(&r.name),
                r.timing.is_some(),
                jn(median),
                jn(min),
                jn(r.err),
                js(&r.notes)
            )
        })
        .collect();
    if let Some(dir) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(path, format!("[\n{}\n]\n", json.join(",\n"))) {
        eprintln!("could not write {path}: {e}");
    }
}
