#!/usr/bin/env python3
"""Per-file table of one or more cargo-mutants runs (outcomes.json), as in docs/testing.md.

    scripts/mutants_table.py target/mutants/ad-core-rest-s0/mutants.out/outcomes.json [...]

Prints `| file | tested | caught | missed | unviable | timeout |` rows (files with no mutant
tested are left out), a total row, and the missed mutants' names.
"""
import collections
import json
import sys

KINDS = {"CaughtMutant": "caught", "MissedMutant": "missed", "Unviable": "unviable",
         "Timeout": "timeout"}

rows = collections.defaultdict(collections.Counter)
missed = []
for path in sys.argv[1:]:
    for o in json.load(open(path))["outcomes"]:
        s = o["scenario"]
        if not isinstance(s, dict) or "Mutant" not in s:
            continue  # the baseline
        m = s["Mutant"]
        kind = KINDS.get(o["summary"], o["summary"])
        rows[m["file"]][kind] += 1
        if kind == "missed":
            missed.append(m["name"])

print("| file | tested | caught | missed | unviable | timeout |")
print("|---|---:|---:|---:|---:|---:|")
total = collections.Counter()
for f in sorted(rows):
    c = rows[f]
    n = sum(c.values())
    total.update(c)
    print(f"| `{f.replace('crates/', '')}` | {n} | {c['caught']} | {c['missed']} | {c['unviable']} | {c['timeout']} |")
print(f"| **total** | {sum(total.values())} | {total['caught']} | {total['missed']} | {total['unviable']} | {total['timeout']} |")
print()
for name in missed:
    print(f"- missed: {name}")
