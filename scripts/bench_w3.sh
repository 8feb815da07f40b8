#!/usr/bin/env bash
# W3 (DEQ layer, rank-2 W) and W3b (full-rank W): ours against the JAX / PyTorch peers, as a
# fair race, in the manner of scripts/bench_peers.sh (which covers W1/W2).
#
#   scripts/bench_w3.sh           # ~2 min with 3 rounds; a table and a last `summary:` line
#
# 1. builds examples/peers_w3 (release): every row of ours is checked against the peers'
#    reference answers before it is timed (a failing row is reported as FAILED, not timed);
# 2. ROUNDS rounds, each: ours, then the peers' w3_deq.py and w3_deq.py --fullrank as they are
#    (from a scratch copy, so their results/ stays untouched). Both sides are pinned to the same
#    single core with taskset; the load average is printed before each side;
# 3. per workload, the median over rounds of our fastest exact row and of the fastest JAX row,
#    and their ratio. Last line: `summary: w3_over_jax=<x> w3b_over_jax=<x>`.
#
# Environment: PEERS_DIR (default ../shared/peers beside the repository), PEERS_PYTHON
# (default $PEERS_VENV/bin/python, PEERS_VENV defaulting to ~/.cache/diffprog-peers),
# ROUNDS (default 3), CORE (default the last core), REPEAT (timed calls per row of ours,
# default 300).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/peers}
PY=${PEERS_PYTHON:-${PEERS_VENV:-$HOME/.cache/diffprog-peers}/bin/python}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-300}
CORE=${CORE:-$(($(nproc) - 1))}
OUT=$ROOT/out/w3

die() { echo "bench_w3.sh: $*" >&2; exit 1; }
[[ -x $PY ]] || die "peer python not found at $PY: create the peer environment first (../shared/peers/setup.sh), or set PEERS_VENV / PEERS_PYTHON"
for f in common.py w3_deq.py; do
    [[ -f $PEERS/$f ]] || die "peer script $PEERS/$f not found: set PEERS_DIR to the peers' directory"
done
command -v taskset > /dev/null || die "taskset not found (util-linux): both sides are pinned to one core with it"
taskset -c "$CORE" true 2> /dev/null || die "cannot pin to core $CORE: set CORE to an available core"
load() { cut -d' ' -f1-3 /proc/loadavg; }
pin() { taskset -c "$CORE" "$@"; }

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt
echo "== building examples/peers_w3 (release)"
(cd "$ROOT" && cargo build --release --example peers_w3 --quiet)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET/release/examples/peers_w3
[[ -x $BIN ]] || die "built, but $BIN is missing"

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
cp "$PEERS/common.py" "$PEERS/w3_deq.py" "$SCRATCH/"

echo "== pinned to core $CORE; $ROUNDS rounds, Rust and Python alternating"
for k in $(seq 1 "$ROUNDS"); do
    echo "-- round $k: ours (Rust), load average $(load)"
    status=0
    pin "$BIN" --repeat "$REPEAT" --json "$OUT/rust_round$k.json" > "$OUT/rust_round$k.txt" || status=$?
    [[ -f $OUT/rust_round$k.json ]] || { cat "$OUT/rust_round$k.txt"; die "our benchmark wrote no results (exit $status)"; }
    [[ $status == 0 ]] || echo "   (some of our rows FAILED their check: see $OUT/rust_round$k.txt)"
    echo "-- round $k: peers (w3_deq.py, w3_deq.py --fullrank), load average $(load)"
    (cd "$SCRATCH" && pin "$PY" -W ignore w3_deq.py && pin "$PY" -W ignore w3_deq.py --fullrank) \
        > "$OUT/peers_round$k.txt" 2>&1 || { cat "$OUT/peers_round$k.txt"; die "a peer script failed"; }
    cp "$SCRATCH/results/W3_deq.json" "$OUT/peers_W3_round$k.json"
    cp "$SCRATCH/results/W3b_deq_fullrank.json" "$OUT/peers_W3b_round$k.json"
done

"$PY" - "$OUT" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
summary = {}
print()
print("| workload | row | median over rounds |")
print("|---|---|---|")
for wl, key in (("W3", "w3"), ("W3b", "w3b")):
    ours, jax, other = {}, {}, {}
    for k in range(1, rounds + 1):
        for r in json.load(open(f"{out}/rust_round{k}.json")):
            if r["workload"] == wl:
                ours.setdefault(r["row"], []).append(r["median_s"])
        for r in json.load(open(f"{out}/peers_{wl}_round{k}.json"))["rows"]:
            bucket = jax if r["peer"].startswith(("jax", "jaxopt", "optimistix")) else other
            bucket.setdefault(r["peer"], []).append(r["median_s"])
    med = lambda d: {name: statistics.median(v) for name, v in d.items()}
    ours, jax, other = med(ours), med(jax), med(other)
    for name, t in sorted(ours.items(), key=lambda kv: kv[1]):
        print(f"| {wl} | ours: {name} | {t * 1e6:.0f} us |")
    for name, t in sorted({**jax, **other}.items(), key=lambda kv: kv[1]):
        print(f"| {wl} | peer: {name} | {t * 1e6:.0f} us |")
    exact = {n: t for n, t in ours.items() if "phantom" not in n}
    best_ours = min(exact.items(), key=lambda kv: kv[1])
    best_jax = min(jax.items(), key=lambda kv: kv[1])
    ratio = best_ours[1] / best_jax[1]
    print(f"| {wl} | ratio: ours ({best_ours[0]}) / JAX ({best_jax[0]}) | {ratio:.2f} |")
    summary[key] = ratio
print()
print(f"summary: w3_over_jax={summary['w3']:.2f} w3b_over_jax={summary['w3b']:.2f}")
PYEOF
