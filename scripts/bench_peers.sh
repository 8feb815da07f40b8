#!/usr/bin/env bash
# W1 (ridge) and W2 (logistic regression) hypergradients: ours against the Python peers, as a
# fair race.
#
#   scripts/bench_peers.sh            # ~5 min with 3 rounds; tables on stdout, raw output in out/
#
# 1. builds examples/peers_w1_w2 (release);
# 2. dumps the full reference answers from the numpy peer's own code (scripts/peer_reference.py:
#    W1's scalar and all 50 entries of W2, 17 digits) into out/reference.json;
# 3. ROUNDS rounds, each: ours (every row's answer checked before it is timed; a failing row is
#    reported as FAILED, not timed), then the peers' w1_ridge.py and w2_logreg.py as they are
#    (run from a scratch copy, so their results/ stays untouched), then scripts/peers_args.py
#    (the fastest JAX peers with the data as jit arguments). Both sides are pinned to the same
#    single core with taskset (unpinned, JAX at times uses a second core); the load average is
#    printed before each side;
# 4. the d = 2000, n = 4000 ridge hypergradient through the general path, once, checked against
#    its closed form; and a count of where the general rows' time goes (--profile);
# 5. scripts/race_table.py: our general rows, our hand-written rows (second, labelled), the peers
#    (each answer checked: W1 scalar, W2 all 50 entries, bound 1e-8), ratios, and a last line
#    `summary: ...`;
# 6. then scripts/bench_w3.sh, bench_w4.sh and bench_w5.sh (W3/W3b DEQ, W4 neural ODE, W5
#    meta-gradients; same rules), whose summary fields are appended to the last line:
#    `summary: w1_general_over_jaxopt=... large_ridge_s=... w3_over_jax=... w4_over_diffrax=... w5_...`.
#    EXTRA="" runs W1/W2 only (~5 min); all of it takes ~20 min with 3 rounds.
# 7. exit status 3 if the race was noisy: a summary verdict (target met or missed) that differs
#    between rounds, or one of our hand-written control rows spreading by more than
#    RACE_MAX_SPREAD (default 1.25) across rounds (race_table.py's `noise:` line).
#
# Environment: PEERS_DIR (default ../shared/peers beside the repository), PEERS_PYTHON
# (default $PEERS_VENV/bin/python, PEERS_VENV defaulting to ~/.cache/diffprog-peers),
# ROUNDS (default 3), CORE (the core both sides are pinned to, default the last one),
# REPEAT (timed calls per W1 row of ours, W2 half; default 200).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/peers}
PY=${PEERS_PYTHON:-${PEERS_VENV:-$HOME/.cache/diffprog-peers}/bin/python}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-200}
CORE=${CORE:-$(($(nproc) - 1))}
OUT=$ROOT/out

die() { echo "bench_peers.sh: $*" >&2; exit 1; }
[[ -x $PY ]] || die "peer python not found at $PY: create the peer environment first (../shared/peers/setup.sh), or set PEERS_VENV / PEERS_PYTHON"
for f in common.py w1_ridge.py w2_logreg.py; do
    [[ -f $PEERS/$f ]] || die "peer script $PEERS/$f not found: set PEERS_DIR to the peers' directory"
done
command -v taskset > /dev/null || die "taskset not found (util-linux): both sides are pinned to one core with it"
taskset -c "$CORE" true 2> /dev/null || die "cannot pin to core $CORE: set CORE to an available core"
load() { cut -d' ' -f1-3 /proc/loadavg; }
pin() { taskset -c "$CORE" "$@"; }

mkdir -p "$OUT"
rm -f "$OUT"/rust_round*.json "$OUT"/peers_W?_round*.json "$OUT"/peers_args_round*.json \
    "$OUT"/loadavg_round*.txt "$OUT"/large_ridge.txt
echo "== building examples/peers_w1_w2 (release)"
(cd "$ROOT" && cargo build --release --example peers_w1_w2 --quiet)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET/release/examples/peers_w1_w2
[[ -x $BIN ]] || die "built, but $BIN is missing"

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
cp "$PEERS/common.py" "$PEERS/w1_ridge.py" "$PEERS/w2_logreg.py" \
    "$ROOT/scripts/peers_args.py" "$ROOT/scripts/peer_reference.py" "$SCRATCH/"
echo "== reference: the numpy peer's own computation, all entries (scripts/peer_reference.py)"
(cd "$SCRATCH" && pin "$PY" -W ignore peer_reference.py) > "$OUT/reference.json"

echo "== pinned to core $CORE; $ROUNDS rounds, Rust and Python alternating"
for k in $(seq 1 "$ROUNDS"); do
    l_rust=$(load)
    echo "-- round $k: ours (Rust), load average $l_rust"
    status=0
    pin "$BIN" --reference "$OUT/reference.json" --repeat "$REPEAT" \
        --json "$OUT/rust_round$k.json" > "$OUT/rust_round$k.txt" || status=$?
    [[ -f $OUT/rust_round$k.json ]] || { cat "$OUT/rust_round$k.txt"; die "our benchmark wrote no results (exit $status)"; }
    [[ $status == 0 ]] || echo "   (some of our rows FAILED their check: see the table)"
    l_py=$(load)
    echo "-- round $k: peers (Python: w1_ridge.py, w2_logreg.py, peers_args.py), load average $l_py"
    (cd "$SCRATCH" && pin "$PY" -W ignore w1_ridge.py && pin "$PY" -W ignore w2_logreg.py) \
        > "$OUT/peers_round$k.txt" 2>&1 || { cat "$OUT/peers_round$k.txt"; die "a peer script failed"; }
    cp "$SCRATCH/results/W1_ridge.json" "$OUT/peers_W1_round$k.json"
    cp "$SCRATCH/results/W2_logreg.json" "$OUT/peers_W2_round$k.json"
    (cd "$SCRATCH" && pin "$PY" -W ignore peers_args.py) > "$OUT/peers_args_round$k.json"
    echo "ours $l_rust; peers $l_py" > "$OUT/loadavg_round$k.txt"
done

echo "-- large ridge (d = 2000, n = 4000, general path), load average $(load)"
pin "$BIN" --large-ridge | tee "$OUT/large_ridge.txt" || echo "   (large ridge FAILED its check)"
echo "-- where the general rows' time goes, load average $(load)"
pin "$BIN" --profile | tee "$OUT/profile.txt"
echo
"$PY" "$ROOT/scripts/race_table.py" "$OUT" "$ROUNDS" | tee "$OUT/race_table.md"
summary=$(tail -n 1 "$OUT/race_table.md")

# The other workloads' races (W3/W3b DEQ, W4 neural ODE, W5 meta-gradients), each its own
# script with the same rules (pinned, alternating, checked before timed); their summary
# fields are appended to the last line. EXTRA="" skips them.
EXTRA=${EXTRA-w3 w4 w5}
for w in $EXTRA; do
    echo
    echo "== $w: scripts/bench_$w.sh (ROUNDS=$ROUNDS, core $CORE)"
    PEERS_DIR=$PEERS PEERS_PYTHON=$PY ROUNDS=$ROUNDS CORE=$CORE "$ROOT/scripts/bench_$w.sh" | tee "$OUT/bench_$w.txt"
    summary="$summary $(tail -n 1 "$OUT/bench_$w.txt" | sed 's/^summary: //')"
done
echo
echo "$summary"
# A race whose rounds disagree on a verdict, or whose control rows moved, is not reported as
# a result: the tables stay for inspection, the exit status says rerun.
if [[ $(cat "$OUT/race_noise.txt" 2>/dev/null) == noisy ]]; then
    echo "bench_peers.sh: the rounds disagree (see the 'noise:' line): rerun on a quieter machine or with more ROUNDS" >&2
    exit 3
fi
