"""Full W1/W2 reference hypergradients from the numpy peer, for scripts/bench_peers.sh.

The peers store only a summary of W2's 50-entry hypergradient in results/*.json (the first
five entries and the norm). This script takes the peer's *own* data set-up and numpy
computation out of w1_ridge.py and w2_logreg.py (the module-level numpy statements and the
functions np_closed / sigmoid / np_hyper, found by parsing the files; the JAX and torch
parts and the timings are not run) and dumps the full vectors, 17 significant digits.

Run from a scratch copy of the peer directory (it imports the peers' common.py):

    cd "$SCRATCH" && $PY peer_reference.py > reference.json
"""
import ast
import os
import sys

import numpy as np

HERE = os.getcwd()
sys.path.insert(0, HERE)

# Names of the module-level values the numpy computations need.
DATA_NAMES = {"X_np", "y_np", "Xv_np", "yv_np", "c_np", "cv_np", "n", "d", "nv", "u_np",
              "LAM", "GTOL", "CG_TOL"}


def target_names(node):
    names = set()
    for t in node.targets:
        for sub in ast.walk(t):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
    return names


def numpy_part(path, functions):
    """Exec the numpy-only statements of a peer script: imports of numpy and common, the
    assignments of DATA_NAMES, and the named functions. Returns the namespace."""
    tree = ast.parse(open(path).read(), filename=path)
    keep = []
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import) and all(a.name in ("numpy", "common") for a in node.names):
            keep.append(node)
        elif isinstance(node, ast.Assign) and target_names(node) <= DATA_NAMES:
            keep.append(node)
        elif isinstance(node, ast.FunctionDef) and node.name in functions:
            keep.append(node)
            found.add(node.name)
    missing = set(functions) - found
    if missing:
        sys.exit(f"{path}: functions {sorted(missing)} not found (has the peer script changed?)")
    ns = {"__name__": "peer_reference"}
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), ns)
    return ns


def num(v):
    return format(float(v), ".17g")


w1 = numpy_part(os.path.join(HERE, "w1_ridge.py"), ["np_closed"])
val1, hyper1, _ = w1["np_closed"](w1["LAM"])
w2 = numpy_part(os.path.join(HERE, "w2_logreg.py"), ["sigmoid", "np_hyper"])
val2, hyper2, _, its, gnorm = w2["np_hyper"](w2["u_np"])
hyper2 = np.asarray(hyper2)

print("{")
print(f' "w1": {{"hypergrad": {num(hyper1)}, "val_loss": {num(val1)}}},')
print(f' "w2": {{"hypergrad": [{", ".join(num(v) for v in hyper2)}], "val_loss": {num(val2)},')
print(f'        "newton_iters": {int(its)}, "inner_grad_norm": {num(gnorm)}}},')
print(f' "source": "numpy closed form (w1_ridge.py np_closed) and Newton + dense IFT (w2_logreg.py np_hyper)",')
print(f' "numpy": "{np.__version__}"')
print("}")
