#!/usr/bin/env bash
# Mutation testing of a whole package in two phases, for the mutants the package's ledger
# (docs/mutants/PACKAGE.tsv, scripts/mutants_ledger.py) has not judged yet.
#
#   scripts/mutants_targeted.sh PACKAGE            # ad-core or implicit
#
# Phase 1: each mutant is judged by the test targets of its part of the package only (the
#   map below: a mutant of implicit's Newton solver by tests/newton.rs and tests/hyper.rs).
#   A mutant rebuilds only those test crates, not all of them: most of a mutant's time is
#   recompiling the generic code every test crate instantiates.
# Phase 2: the mutants phase 1 missed (part by part, right after each part) are judged again
#   by every test of the package, so a mutant counts as missed only if no test of its crate
#   catches it. MUTANTS_PHASES=2 alone rejudges every mutant the ledger has as missed.
# Every outcome goes into the ledger. Run it from a checkout nobody edits meanwhile: with
# MUTANTS_IN_PLACE=1 it mutates the files of this checkout (and builds in its target/, so
# the build cache carries over from group to group); otherwise cargo-mutants copies the tree
# for each group (a full release build each time).
#
# Environment: MUTANTS_JOBS (default 1), MUTANTS_NICE (19), MUTANTS_ARGS (extra options,
# e.g. "--shard 0/4 --sharding round-robin" to take a deterministic quarter of each group),
# MUTANTS_LEDGER (the ledger to read and update; default this checkout's
# docs/mutants/PACKAGE.tsv: point it at the main checkout's when running in a worktree),
# MUTANTS_PHASES ("1 2", or "1" or "2"), MUTANTS_TIMEOUT (seconds per mutant's tests in
# phase 1, default 60; three times that with every test).
set -uo pipefail
cd "$(dirname "$0")/.."
package=${1:?usage: mutants_targeted.sh PACKAGE}
jobs=${MUTANTS_JOBS:-1}
niceness=${MUTANTS_NICE:-19}
phases=${MUTANTS_PHASES:-1 2}
# The package's ledger (docs/mutants/PACKAGE.tsv) unless MUTANTS_LEDGER names another.
export MUTANTS_LEDGER=${MUTANTS_LEDGER:-$PWD/docs/mutants/$package.tsv}
ledger() { python3 scripts/mutants_ledger.py "$@"; }
speed=(-C --config -C profile.release.incremental=true -C --config -C profile.release.debug=0)
# In place: one job (cargo-mutants refuses parallel jobs there).
inplace=(--jobs "$jobs")
[[ ${MUTANTS_IN_PLACE:-0} == 1 ]] && inplace=(--in-place)
work=target/mutants/targeted-$package
mkdir -p "$work"
# The cargo-mutants the ledger's judgments were made with, installed when missing.
if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants@27.1.0 || exit 1
fi

# Part of the package (a regex on the file path) => the test targets that judge it (`lib`:
# the unit tests in src/). The first matching line wins; every file falls under the last line.
case $package in
implicit)
    map='
src/linear/kernels/ => lib linear_solvers alloc
src/linear/(cg|dense|checks)\.rs$ => linear_solvers alloc cg_indefinite
src/linear/ => linear_solvers alloc anderson richardson cg_indefinite
src/solvers/argmin_rs/ => argmin_rs lib
src/solvers/ => newton hyper
src/hyper/ => hyper newton
. => ift_backward ift_blocks ift_errors ift_errors_solve ift_factor ift_fd ift_node ift_sharing ift_unrolled solution_fn anderson richardson'
    ;;
ad-core)
    map='
src/kernels/product\.rs$ => kernels_product
src/kernels => kernels kernels_exact
src/elementwise\.rs$ => matrix_modes operators
src/nn/ => nn nn_model
src/optim/ => optim optim_driver
src/second_order/ => hessian_recording matrix_modes kernels_product shared_data_alloc large_buffers dot_product
src/(tape/|sweep\.rs$|var\.rs$|recording\.rs$) => scalar_modes scopes recording misuse shared_data shared_data_alloc errors dot_product large_buffers hessian_recording
src/matrix/ => matrix_modes operators dot_product shared_data large_buffers errors
src/(custom/|rule\.rs$) => custom_fn dot_product_custom errors
src/(drivers|hessian_recording)\.rs$ => hessian_recording matrix_modes scalar_modes errors
src/(dual|real|unary)\.rs$ => scalar_modes matrix_modes operators dot_product
. => ALL'
    ;;
*)
    echo "unknown package: $package" >&2
    exit 2
    ;;
esac

# The mutants of the current code, and those not judged for good.
cargo mutants --list --package "$package" >"$work/all.txt" || exit 1
ledger todo "$work/all.txt" >"$work/todo.txt"
echo "== $package: $(wc -l <"$work/all.txt") mutants, $(wc -l <"$work/todo.txt") to judge" >&2

# Anchored, escaped regexes for cargo-mutants' --re, from a file of names.
regexes() {
    python3 -c '
import sys
meta = set("\\.+*?()|[]{}^$")
for n in open(sys.argv[1], encoding="utf-8"):
    n = n.rstrip("\n")
    if n:
        print("^" + "".join("\\" + c if c in meta else c for c in n) + "$")' "$1"
}

# run OUT TESTS NAMES_FILE: judge the named mutants with these test targets (ALL: every one).
run() {
    local out=$1 tests=$2 names=$3
    [[ -s $names ]] || return 0
    local args=() re
    while read -r re; do args+=(--re "$re"); done < <(regexes "$names")
    # Without a baseline run there is no measured test time to scale: a part's tests take
    # seconds, all of a crate's well under a minute, so a mutant that loops is cut at 60 s
    # (180 s with every test).
    local timeout=${MUTANTS_TIMEOUT:-60}
    if [[ $tests != ALL ]]; then
        # `lib` is the package's unit tests (`cargo test --lib`), any other name a test target.
        for t in $tests; do
            if [[ $t == lib ]]; then args+=(-C --lib); else args+=(-C --test -C "$t"); fi
        done
    else
        timeout=$((3 * timeout))
    fi
    args+=(--timeout "$timeout")
    echo "== $out: $(wc -l <"$names") mutants, tests: $tests" >&2
    # shellcheck disable=SC2086 # MUTANTS_ARGS is a list of options
    nice -n "$niceness" cargo mutants --package "$package" --output "$out" \
        --baseline skip "${inplace[@]}" "${speed[@]}" ${MUTANTS_ARGS:-} "${args[@]}"
    ledger record "$out"
}

if [[ " $phases " == *" 1 "* ]]; then
    # Split the to-do list by part, in the map's order.
    python3 - "$work" "$map" <<'PY'
import re, sys
work, spec = sys.argv[1], sys.argv[2]
parts = [l.split(" => ", 1) for l in spec.strip().splitlines()]
files = {}
for name in open(f"{work}/todo.txt", encoding="utf-8"):
    name = name.rstrip("\n")
    path = name.split(":", 1)[0]
    for k, (rx, _) in enumerate(parts):
        if re.search(rx, path):
            files.setdefault(k, []).append(name)
            break
for k, (_, tests) in enumerate(parts):
    with open(f"{work}/part{k}.txt", "w", encoding="utf-8") as f:
        f.write("".join(n + "\n" for n in files.get(k, [])))
    with open(f"{work}/part{k}.tests", "w") as f:
        f.write(tests + "\n")
PY
    for names in "$work"/part*.txt; do
        k=${names##*/part}
        k=${k%.txt}
        run "$work/phase1-part$k" "$(cat "$work/part$k.tests")" "$names"
        # This part's survivors, judged by every test of the crate right away.
        if [[ " $phases " == *" 2 "* ]]; then
            missed=$work/phase1-part$k/mutants.out/missed.txt
            [[ -s $missed ]] && run "$work/phase2-part$k" ALL "$missed"
        fi
    done
fi

if [[ $phases == 2 ]]; then
    # Phase 2 alone: whatever the ledger still has as missed is judged by every test.
    ledger todo "$work/all.txt" >"$work/todo2.txt"
    python3 - "$work" <<'PY'
import sys, os
work = sys.argv[1]
sys.path.insert(0, "scripts")
import mutants_ledger
rows = mutants_ledger.load()
with open(f"{work}/recheck.txt", "w", encoding="utf-8") as f:
    for n in open(f"{work}/todo2.txt", encoding="utf-8"):
        if rows.get(n.rstrip("\n"), ("",))[0] == "missed":
            f.write(n)
PY
    run "$work/phase2" ALL "$work/recheck.txt"
fi
ledger summary "$work/all.txt" | sed -n 1,8p  # (sed reads to the end: no broken pipe)
