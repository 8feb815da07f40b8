#!/usr/bin/env bash
# W5 (MAML / FOMAML / iMAML meta-gradients, 25 sinusoid tasks, K = 10): ours against the
# Python peers (JAX jit + vmap, PyTorch) in the same run, as a fair race.
#
#   scripts/bench_w5.sh               # ~3-4 min with 3 rounds; table on stdout, raw output in out/w5/
#
# 1. builds examples/peers_w5 (release);
# 2. ROUNDS rounds, each: ours (every row's meta-gradient checked against the JAX reference to
#    1e-9 relative before it is timed; single-threaded, --no-memory), then the peers'
#    w5_maml.py as it is (from a scratch copy, so its results/ stays untouched). Both sides are
#    pinned to the same single core with taskset; the load average is printed before each side;
# 3. per row: the median over rounds of our median time, of JAX's and of the best torch
#    variant's, their ratios, and a last line
#    `summary: w5_step1_over_jax=<x> w5_step5_over_jax=<x> w5_fomaml1_over_jax=<x> ...`.
#
# Environment: PEERS_DIR (default ../shared/peers beside the repository), PEERS_PYTHON
# (default $PEERS_VENV/bin/python, PEERS_VENV defaulting to ~/.cache/diffprog-peers),
# ROUNDS (default 3), CORE (the core both sides are pinned to, default the last one),
# REPEAT (timed calls per row of ours; default 100).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/peers}
PY=${PEERS_PYTHON:-${PEERS_VENV:-$HOME/.cache/diffprog-peers}/bin/python}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-100}
CORE=${CORE:-$(($(nproc) - 1))}
OUT=$ROOT/out/w5

die() { echo "bench_w5.sh: $*" >&2; exit 1; }
[[ -x $PY ]] || die "peer python not found at $PY: create the peer environment first (../shared/peers/setup.sh), or set PEERS_VENV / PEERS_PYTHON"
for f in common.py w5_maml.py; do
    [[ -f $PEERS/$f ]] || die "peer script $PEERS/$f not found: set PEERS_DIR to the peers' directory"
done
command -v taskset > /dev/null || die "taskset not found (util-linux): both sides are pinned to one core with it"
taskset -c "$CORE" true 2> /dev/null || die "cannot pin to core $CORE: set CORE to an available core"
load() { cut -d' ' -f1-3 /proc/loadavg; }
pin() { taskset -c "$CORE" "$@"; }

mkdir -p "$OUT"
rm -f "$OUT"/rust_round*.txt "$OUT"/peers_round*.json "$OUT"/peers_round*.txt "$OUT"/loadavg_round*.txt
echo "== building examples/peers_w5 (release)"
(cd "$ROOT" && cargo build --release --example peers_w5 --quiet)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET/release/examples/peers_w5
[[ -x $BIN ]] || die "built, but $BIN is missing"

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
cp "$PEERS/common.py" "$PEERS/w5_maml.py" "$SCRATCH/"

echo "== pinned to core $CORE; $ROUNDS rounds, Rust and Python alternating"
for k in $(seq 1 "$ROUNDS"); do
    l_rust=$(load)
    echo "-- round $k: ours (Rust), load average $l_rust"
    status=0
    pin "$BIN" --repeat "$REPEAT" --no-memory > "$OUT/rust_round$k.txt" || status=$?
    grep -q '^w5_times:' "$OUT/rust_round$k.txt" || { cat "$OUT/rust_round$k.txt"; die "our benchmark printed no times (exit $status)"; }
    [[ $status == 0 ]] || echo "   (some of our rows FAILED their check: see $OUT/rust_round$k.txt)"
    l_py=$(load)
    echo "-- round $k: peers (w5_maml.py: JAX and PyTorch), load average $l_py"
    (cd "$SCRATCH" && pin "$PY" -W ignore w5_maml.py) > "$OUT/peers_round$k.txt" 2>&1 \
        || { cat "$OUT/peers_round$k.txt"; die "the peer script failed"; }
    cp "$SCRATCH/results/W5_maml.json" "$OUT/peers_round$k.json"
    echo "ours $l_rust; peers $l_py" > "$OUT/loadavg_round$k.txt"
done

echo
"$PY" - "$OUT" "$ROUNDS" << 'PYEOF' | tee "$OUT/race_table.md"
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = [  # (our key, label, JAX row, torch rows)
    ("maml1", "MAML 1 step", "jax MAML 1-step", "torch MAML 1-step"),
    ("fomaml1", "FOMAML 1 step", "jax FOMAML 1-step", "torch FOMAML 1-step"),
    ("maml5", "MAML 5 steps", "jax MAML 5-step", "torch MAML 5-step"),
    ("fomaml5", "FOMAML 5 steps", "jax FOMAML 5-step", "torch FOMAML 5-step"),
    ("imaml", "iMAML 100 GD + 5 CG", "jax iMAML", "torch iMAML"),
]
ours = {k: [] for k, *_ in rows}
jax = {k: [] for k, *_ in rows}
torch = {k: [] for k, *_ in rows}
for r in range(1, rounds + 1):
    line = next(l for l in open(f"{out}/rust_round{r}.txt") if l.startswith("w5_times:"))
    for key, val in re.findall(r"(\w+)_s=([0-9.eE+-]+)", line):
        ours[key].append(float(val))
    peers = json.load(open(f"{out}/peers_round{r}.json"))["rows"]
    for key, _, jrow, trow in rows:
        jt = [p["median_s"] for p in peers if p["peer"].startswith(jrow)]
        tt = [p["median_s"] for p in peers if p["peer"].startswith(trow)]
        if jt:
            jax[key].append(jt[0])
        if tt:
            torch[key].append(min(tt))
med = lambda v: statistics.median(v) if v else float("nan")
print(f"W5 on one pinned core, medians over {rounds} rounds (each side's own median per round)\n")
print("| meta-gradient | ours (ms) | JAX jit+vmap (ms) | best torch (ms) | ours/JAX | ours/torch |")
print("|---|---|---|---|---|---|")
summary = {}
for key, label, *_ in rows:
    o, j, t = med(ours[key]), med(jax[key]), med(torch[key])
    if not ours[key]:
        print(f"| {label} | FAILED | {j*1e3:.3f} | {t*1e3:.3f} | - | - |")
        summary[key] = "FAILED"
        continue
    print(f"| {label} | {o*1e3:.3f} | {j*1e3:.3f} | {t*1e3:.3f} | {o/j:.2f} | {o/t:.2f} |")
    summary[key] = f"{o/j:.2f}"
print()
print("summary: w5_step1_over_jax={} w5_step5_over_jax={} w5_fomaml1_over_jax={} "
      "w5_fomaml5_over_jax={} w5_imaml_over_jax={}".format(
          summary["maml1"], summary["maml5"], summary["fomaml1"], summary["fomaml5"], summary["imaml"]))
PYEOF
