#!/usr/bin/env bash
# W1 (ridge) and W2 (logistic regression) hypergradients: ours and the Python peers, in one
# run, side by side.
#
#   scripts/bench_peers.sh            # ~1.5 min; tables on stdout, raw output in out/
#
# 1. our Rust measurement (examples/peers_w1_w2.rs: 3 warm-up calls, then the median of N
#    timed calls, like the peers' common.bench; one thread);
# 2. the peers' w1_ridge.py and w2_logreg.py with the peer virtual environment (JAX jit,
#    jaxopt, optimistix, torch, numpy; single-threaded as they are set up), run from a
#    scratch copy so that shared/peers/results stays untouched;
# 3. scripts/peers_args.py: the fastest JAX peers again with the data passed as jit
#    *arguments* (closed over, the data are compile-time constants and XLA folds X.T @ X
#    into the executable, so the peers' own W1 rows do not compute it per call);
# 4. side-by-side tables: our fastest row against the fastest peer row (unrolled rows and
#    partial timings excluded) — per call from raw data against JAX with data as
#    arguments, with XᵀX precomputed against the peers' own (constant-folded) rows — the
#    ratios, and the answers' errors.
#
# Environment: PEERS_DIR (default ../shared/peers beside the repository), PEERS_PYTHON
# (default $PEERS_VENV/bin/python, PEERS_VENV defaulting to ~/.cache/diffprog-peers),
# REPEAT (timed calls for our W1 rows; W2 uses half; default 200).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/peers}
PY=${PEERS_PYTHON:-${PEERS_VENV:-$HOME/.cache/diffprog-peers}/bin/python}
REPEAT=${REPEAT:-200}
OUT=$ROOT/out
mkdir -p "$OUT"

if [[ ! -x $PY ]]; then
    echo "peer python not found at $PY (run $PEERS/setup.sh first)" >&2
    exit 1
fi

echo "== ours (Rust, release, one thread); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$ROOT" && cargo build --release --example peers_w1_w2 --quiet)
(cd "$ROOT" && ./target/release/examples/peers_w1_w2 --repeat "$REPEAT") | tee "$OUT/bench_rust.txt"

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
cp "$PEERS/common.py" "$PEERS/w1_ridge.py" "$PEERS/w2_logreg.py" "$ROOT/scripts/peers_args.py" "$SCRATCH/"
echo
echo "== peers (Python); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$SCRATCH" && "$PY" -W ignore w1_ridge.py && "$PY" -W ignore w2_logreg.py) \
    > "$OUT/bench_peers.txt" 2>&1 || { cat "$OUT/bench_peers.txt"; exit 1; }
grep -v " REF \| NOTE \|wrote " "$OUT/bench_peers.txt" || true
cp "$SCRATCH/results/W1_ridge.json" "$OUT/peers_W1_ridge.json"
cp "$SCRATCH/results/W2_logreg.json" "$OUT/peers_W2_logreg.json"
echo "== JAX peers with data as arguments; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$SCRATCH" && "$PY" -W ignore peers_args.py) > "$OUT/peers_args.json"

echo
echo "== side by side; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$OUT/peers_rust.json" "$OUT/peers_W1_ridge.json" "$OUT/peers_W2_logreg.json" \
    "$OUT/peers_args.json" <<'PYEOF'
import json
import sys

ours = json.load(open(sys.argv[1]))
peers = {"W1": json.load(open(sys.argv[2])), "W2": json.load(open(sys.argv[3]))}
extra = json.load(open(sys.argv[4]))


def fmt(s):
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.3f} ms"


def peer_rows(w):
    # whole hypergradients only: no unrolled baselines, no partial (inner-only) timings
    return [r for r in peers[w]["rows"] if "median_s" in r
            and "unrolled" not in r["peer"] and not r["peer"].strip().startswith("(")]


def peer_err(w, r):
    refs = peers[w]["refs"]
    if w == "W1":
        return abs(r["hypergrad"] - refs["hypergrad"]) / abs(refs["hypergrad"]) if "hypergrad" in r else None
    if "hypergrad_first5" not in r:
        return None
    errs = [abs(a - b) / abs(b) for a, b in zip(r["hypergrad_first5"], refs["hypergrad_first5"])]
    errs.append(abs(r["hypergrad_norm"] - refs["hypergrad_norm"]) / refs["hypergrad_norm"])
    return max(errs)


def best(rows):
    return min(rows, key=lambda r: r["median_s"])


def line(w, setting, mine, p):
    ratio = mine["median_s"] / p["median_s"]
    pe = peer_err(w, p)
    print(f"| {w} | {setting} | {mine['name']} | {fmt(mine['median_s'])} | {p['peer']} | "
          f"{fmt(p['median_s'])} | {ratio:.2f} | {'met' if ratio <= 0.5 else 'missed'} | "
          f"{mine['rel_err']:.1e} | {'-' if pe is None else f'{pe:.1e}'} |")


print("| workload | setting | ours (fastest) | median | peer (fastest) | median | ours / peer | "
      "target <= 0.5 | our rel. error | peer rel. error |")
print("| --- | --- | --- | ---: | --- | ---: | ---: | --- | ---: | ---: |")
for w in ("W1", "W2"):
    # our implicit-differentiation rows only (not the closed form or the plain-f64 reference)
    mine = [r for r in ours if r["workload"] == w and r["name"].startswith("implicit")]
    per_call = best([r for r in mine if not r["precomputed"]])
    pre = [r for r in mine if r["precomputed"]]
    args = [r for r in extra if r["workload"] == w]
    line(w, "peers' scripts as they are (data closed over)", per_call, best(peer_rows(w)))
    if pre:
        line(w, "XᵀX precomputed vs peers' scripts (XLA folds X.T @ X)", best(pre), best(peer_rows(w)))
    if args:
        line(w, "all work per call vs JAX with data as arguments", per_call, best(args))

print()
print("| workload | row | median | min | rel. error |")
print("| --- | --- | ---: | ---: | ---: |")
for w in ("W1", "W2"):
    for r in (r for r in ours if r["workload"] == w):
        print(f"| {w} | ours: {r['name']} | {fmt(r['median_s'])} | {fmt(r['min_s'])} | {r['rel_err']:.1e} |")
    for r in peer_rows(w) + [r for r in extra if r["workload"] == w]:
        pe = peer_err(w, r)
        print(f"| {w} | {r['peer']} | {fmt(r['median_s'])} | {fmt(r['min_s'])} | "
              f"{'-' if pe is None else f'{pe:.1e}'} |")
PYEOF
