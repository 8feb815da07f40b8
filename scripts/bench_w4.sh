#!/usr/bin/env bash
# W4 (neural ODE gradient): ours against diffrax and torchdiffeq, as a fair race.
#
#   scripts/bench_w4.sh              # ROUNDS=3: a few minutes (torchdiffeq's adjoint is ~1 s a call)
#
# 1. builds examples/peers_w4 (release);
# 2. ROUNDS rounds, alternating: ours (every row's gradient is checked against the peers'
#    reference before it is timed; a failing row is FAILED, not timed), then the peers' own
#    w4_node.py, run from a scratch copy (its results/ stays untouched). Both sides are pinned
#    to the same single core with taskset; the load average is printed before each side;
# 3. a table of medians over rounds (each round's value is itself a median of N calls), the
#    ratios ours / peer, and a last line `summary: w4_over_diffrax=<x> ...` (ours: the fastest
#    checked gradient row; diffrax: its RecursiveCheckpointAdjoint row).
#
# Environment: PEERS_DIR (default ../shared/peers beside the repository, or beside its
# worktree directory), PEERS_PYTHON (default $PEERS_VENV/bin/python, PEERS_VENV defaulting to
# ~/.cache/diffprog-peers), ROUNDS (default 3), CORE (default the last core), REPEAT (timed
# calls per row of ours, default 100).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${PEERS_DIR:-} ]]; then
    PEERS=$PEERS_DIR
elif [[ -d $ROOT/../shared/peers ]]; then
    PEERS=$ROOT/../shared/peers
else
    PEERS=$ROOT/../../shared/peers
fi
PY=${PEERS_PYTHON:-${PEERS_VENV:-$HOME/.cache/diffprog-peers}/bin/python}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-100}
CORE=${CORE:-$(($(nproc) - 1))}
OUT=$ROOT/out

die() { echo "bench_w4.sh: $*" >&2; exit 1; }
[[ -x $PY ]] || die "peer python not found at $PY: create the peer environment (../shared/peers/setup.sh) or set PEERS_VENV / PEERS_PYTHON"
for f in common.py w4_node.py results/W4_node.json; do
    [[ -f $PEERS/$f ]] || die "$PEERS/$f not found: set PEERS_DIR to the peers' directory"
done
command -v taskset > /dev/null || die "taskset not found (util-linux)"
taskset -c "$CORE" true 2> /dev/null || die "cannot pin to core $CORE: set CORE"
load() { cut -d' ' -f1-3 /proc/loadavg; }
pin() { taskset -c "$CORE" "$@"; }

mkdir -p "$OUT"
rm -f "$OUT"/w4_rust_round*.json "$OUT"/w4_peers_round*.json
echo "== building examples/peers_w4 (release)"
(cd "$ROOT" && nice -n 15 cargo build --release --example peers_w4 --quiet)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET/release/examples/peers_w4
[[ -x $BIN ]] || die "built, but $BIN is missing"

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
cp "$PEERS/common.py" "$PEERS/w4_node.py" "$SCRATCH/"

echo "== pinned to core $CORE; $ROUNDS rounds, Rust and Python alternating"
for k in $(seq 1 "$ROUNDS"); do
    echo "-- round $k: ours (Rust), load average $(load)"
    status=0
    pin "$BIN" --reference "$PEERS/results/W4_node.json" --repeat "$REPEAT" \
        --json "$OUT/w4_rust_round$k.json" > "$OUT/w4_rust_round$k.txt" || status=$?
    [[ -f $OUT/w4_rust_round$k.json ]] || { cat "$OUT/w4_rust_round$k.txt"; die "our benchmark wrote no results (exit $status)"; }
    [[ $status == 0 ]] || echo "   (some of our rows FAILED their check: see the table)"
    echo "-- round $k: peers (w4_node.py: diffrax, torchdiffeq), load average $(load)"
    (cd "$SCRATCH" && pin "$PY" -W ignore w4_node.py) > "$OUT/w4_peers_round$k.txt" 2>&1 \
        || { cat "$OUT/w4_peers_round$k.txt"; die "the peer script failed"; }
    cp "$SCRATCH/results/W4_node.json" "$OUT/w4_peers_round$k.json"
done
cat "$OUT/w4_rust_round$ROUNDS.txt"
echo
"$PY" - "$OUT" "$ROUNDS" << 'PYEOF' | tee "$OUT/w4_table.md"
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ours, peers = {}, {}
for k in range(1, rounds + 1):
    r = json.load(open(f"{out}/w4_rust_round{k}.json"))
    for row in r["rows"]:
        if row["ok"]:
            ours.setdefault(row["row"], []).append(row["median_s"])
    ours.setdefault("forward only", []).append(r["forward_s"])
    p = json.load(open(f"{out}/w4_peers_round{k}.json"))
    for row in p["rows"]:
        peers.setdefault(row["peer"], []).append(row["median_s"])
med = lambda xs: statistics.median(xs)
fmt = lambda s: f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"
print(f"| W4 row (median over {rounds} rounds of per-round medians) | time |")
print("|---|---:|")
for name, xs in ours.items():
    print(f"| ours: {name} | {fmt(med(xs))} |")
for name, xs in peers.items():
    print(f"| {name} | {fmt(med(xs))} |")
best = min(med(xs) for name, xs in ours.items() if name != "forward only")
def peer(substr):
    for name, xs in peers.items():
        if substr in name:
            return med(xs)
    return float("nan")
ratios = {
    "w4_over_diffrax": best / peer("RecursiveCheckpointAdjoint"),
    "w4_over_diffrax_backsolve": best / peer("BacksolveAdjoint"),
    "w4_over_torchdiffeq_adjoint": best / peer("odeint_adjoint"),
    "w4_over_torchdiffeq_direct": best / peer("odeint (direct"),
}
print()
print("summary: w4_best_s=%.4e " % best + " ".join(f"{k}={v:.4f}" for k, v in ratios.items()))
PYEOF
