"""Does restarting Anderson's history after a step that raised the residual help on
linear systems? A model of `implicit::linear::anderson` (Richardson base step, the last m
differences, γ from the normal equations with a 1e-12 relative ridge, a failed
factorization drops the history), run with and without that restart on random systems
A = I − K. Needs numpy (the peers' environment has it):

    ~/.cache/diffprog-peers/bin/python scripts/repro/anderson_restart.py

Output of 7 December 2026 (session 7):
    non-normal K (ρ(K) < 1, ‖K‖ up to ~20), 5000 systems, n = 2..7, m = 1..3:
      both converge 4845, only with restarts 0, only without 3, neither 152;
      with restarts more iterations in 2100, fewer in 197
    contractive K (‖K‖₂ = 0.5..0.99), 3000 systems, n = 2..29, m = 1..5:
      identical in every system (a mixed step never raised the residual)
So the restart never helped and often cost iterations: the solver no longer restarts.
"""
import numpy as np


def anderson(a, b, m, restart, tol=1e-10, maxit=500):
    n = len(b)
    x = np.zeros(n)
    r = b - a @ x
    rn = np.linalg.norm(r)
    tol = tol * np.linalg.norm(b)
    dfs, dgs, f_prev, g_prev, it = [], [], None, None, 0
    while True:
        if rn <= tol:
            return it, True
        if it >= maxit or not np.isfinite(rn):
            return it, False
        f = r.copy()
        if it > 0:
            dfs.append(f - f_prev)
            dgs.append((x + f) - g_prev)
            if len(dfs) > m:
                dfs.pop(0)
                dgs.pop(0)
        f_prev = f.copy()
        g_prev = x + f
        x = g_prev.copy()
        if dfs:
            df, dg = np.array(dfs).T, np.array(dgs).T
            gram = df.T @ df
            reg = gram + 1e-12 * max(np.diag(gram)) * np.eye(len(dfs))
            try:
                np.linalg.cholesky(reg)
                x = x - dg @ np.linalg.solve(reg, df.T @ f)
            except np.linalg.LinAlgError:
                dfs, dgs = [], []
        it += 1
        previous, r = rn, b - a @ x
        rn = np.linalg.norm(r)
        if restart and rn > previous:
            dfs, dgs = [], []


def compare(label, systems):
    counts = {"both": 0, "only with restarts": 0, "only without": 0, "neither": 0}
    more = fewer = 0
    for a, b, m in systems:
        w, wo = anderson(a, b, m, True), anderson(a, b, m, False)
        key = ("both" if w[1] and wo[1] else "only with restarts" if w[1]
               else "only without" if wo[1] else "neither")
        counts[key] += 1
        if w[1] and wo[1]:
            more += w[0] > wo[0]
            fewer += w[0] < wo[0]
    print(f"{label}: {counts}; with restarts more iterations in {more}, fewer in {fewer}")


rng = np.random.default_rng(1)
non_normal = []
for _ in range(5000):
    n, m = int(rng.integers(2, 8)), int(rng.integers(1, 4))
    k = np.triu(rng.normal(size=(n, n)), 1) * rng.uniform(1, 20) + np.diag(rng.uniform(-0.95, 0.95, n))
    non_normal.append((np.eye(n) - k, rng.normal(size=n), m))
compare("non-normal K", non_normal)
rng = np.random.default_rng(2)
contractive = []
for _ in range(3000):
    n, m = int(rng.integers(2, 30)), int(rng.integers(1, 6))
    k = rng.normal(size=(n, n))
    k = k / np.linalg.norm(k, 2) * rng.uniform(0.5, 0.99)
    contractive.append((np.eye(n) - k, rng.normal(size=n), m))
compare("contractive K", contractive)
