#!/usr/bin/env bash
# Mutation testing with cargo-mutants (install: `cargo install --locked cargo-mutants@27.1.0`,
# the version docs/testing.md's results were made with).
#
#   scripts/mutants.sh GROUP...
#
# Groups (each a separate cargo-mutants run; results in target/mutants/GROUP/mutants.out, or
# GROUP-sK/mutants.out for shard K of MUTANTS_ARGS="--shard K/N ..."):
#   kernels      ad-core's src/kernels.rs and src/kernels/*.rs, judged by tests/kernels.rs
#                and tests/kernels_exact.rs
#   product      ad-core's src/kernels/product.rs (the matrix product kernel), judged by
#                tests/kernels_product.rs
#   elementwise  ad-core's src/elementwise.rs, judged by tests/matrix_modes.rs and operators.rs
#   nn           ad-core's src/nn/*, judged by tests/nn.rs
#   optim        ad-core's src/optim/*, judged by tests/optim.rs
#   linear       implicit's CG, dense factorizations and structure checks
#                (src/linear/{cg,dense,checks}.rs), judged by tests/linear_solvers and alloc.rs
#   ad-core-rest ad-core's files outside the groups above (tape, scalar and matrix
#                variables, drivers, recordings, second order), all of ad-core's tests
#   implicit-rest implicit's files outside `linear` above, all of implicit's tests
#   ad-core      every file of ad-core, all its tests (many hours on 2 cores)
#   implicit     every file of implicit, all its tests (many hours on 2 cores)
#
# Settings shared by every run are in .cargo/mutants.toml (release profile, timeouts). Each
# group names the test targets that exercise its files, so that a mutant rebuilds and runs
# only those (a full ad-core test build per mutant would take minutes). Release builds are
# made incremental and without debug info for the same reason: only the mutated function's
# code is recompiled. cargo-mutants exits non-zero when a mutant is missed; this script runs
# every group anyway and prints each group's summary line at the end.
#
# Environment: MUTANTS_JOBS (default 1) parallel builds; MUTANTS_NICE (default 19);
# MUTANTS_ARGS extra cargo-mutants options, e.g. a deterministic sample of one eighth of
# the mutants spread over the files: MUTANTS_ARGS="--shard 0/8 --sharding round-robin".
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=${MUTANTS_JOBS:-1}
niceness=${MUTANTS_NICE:-19}
# Faster rebuilds of the mutated crate; the code is as optimized as `--release`.
speed=(-C --config -C profile.release.incremental=true -C --config -C profile.release.debug=0)
# `--test NAME` as a cargo argument (-C), so that it reaches the build step
# (`cargo test --no-run`) as well as the test run: arguments after `--` reach only the run,
# and every mutant would rebuild every test binary of the package.
tests=(-C --test -C)

# The output directory of a group: target/mutants/GROUP, or GROUP-sK for shard K (so the
# shards of one group do not overwrite each other).
outdir() {
    local group=$1
    if [[ ${MUTANTS_ARGS:-} =~ --shard[=\ ]([0-9]+)/ ]]; then
        echo "target/mutants/$group-s${BASH_REMATCH[1]}"
    else
        echo "target/mutants/$group"
    fi
}

run() {
    local group=$1
    shift
    local out
    out=$(outdir "$group")
    echo "== mutants: $group -> $out" >&2
    mkdir -p "$out"
    # shellcheck disable=SC2086 # MUTANTS_ARGS is a list of options
    nice -n "$niceness" cargo mutants --jobs "$jobs" --output "$out" \
        "${speed[@]}" ${MUTANTS_ARGS:-} "$@"
    echo "== mutants: $group: exit $?" >&2
}

if [ $# -eq 0 ]; then
    sed -n '2,20p' "$0"
    exit 2
fi

for group in "$@"; do
    case $group in
    kernels)
        run kernels --package ad-core -f crates/ad-core/src/kernels.rs \
            -f 'crates/ad-core/src/kernels/*.rs' "${tests[@]}" kernels \
            "${tests[@]}" kernels_exact ;;
    product)
        run product --package ad-core -f crates/ad-core/src/kernels/product.rs \
            "${tests[@]}" kernels_product ;;
    elementwise)
        run elementwise --package ad-core -f crates/ad-core/src/elementwise.rs \
            "${tests[@]}" matrix_modes "${tests[@]}" operators ;;
    nn)
        run nn --package ad-core -f 'crates/ad-core/src/nn/*.rs' \
            "${tests[@]}" nn "${tests[@]}" nn_model ;;
    optim)
        run optim --package ad-core -f 'crates/ad-core/src/optim/*.rs' \
            "${tests[@]}" optim "${tests[@]}" optim_driver ;;
    linear)
        run linear --package implicit -f crates/implicit/src/linear/cg.rs \
            -f crates/implicit/src/linear/dense.rs -f crates/implicit/src/linear/checks.rs \
            "${tests[@]}" linear_solvers "${tests[@]}" alloc ;;
    ad-core-rest)
        run ad-core-rest --package ad-core -e crates/ad-core/src/kernels.rs \
            -e 'crates/ad-core/src/kernels/*.rs' -e crates/ad-core/src/elementwise.rs \
            -e 'crates/ad-core/src/nn/*.rs' -e 'crates/ad-core/src/optim/*.rs' ;;
    implicit-rest)
        run implicit-rest --package implicit -e crates/implicit/src/linear/cg.rs \
            -e crates/implicit/src/linear/dense.rs -e crates/implicit/src/linear/checks.rs ;;
    ad-core)
        run ad-core --package ad-core ;;
    implicit)
        run implicit --package implicit ;;
    *)
        echo "unknown group: $group" >&2
        exit 2 ;;
    esac
done

for group in "$@"; do
    f=$(outdir "$group")/mutants.out/outcomes.json
    [ -f "$f" ] && echo "$group: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(", ".join(f"{k}={d.get(k)}" for k in ("total_mutants","caught","missed","unviable","timeout")))' "$f")"
done
exit 0
