"""The mutation-testing ledger: every mutant judged so far, kept in the repository.

    mutants_ledger.py record OUTDIR...        add the outcomes of cargo-mutants runs
    mutants_ledger.py todo LIST               the names in LIST (one `cargo mutants --list`
                                              name per line) not yet judged for good
    mutants_ledger.py explain NAME REASON     mark a missed mutant as explained (it survives
                                              for a stated reason: equivalent, unreachable...)
    mutants_ledger.py killed NAME TEST        mark a missed mutant as caught by a new test
                                              (after applying it by hand and running TEST)
    mutants_ledger.py summary [LIST]          counts per package and per file (of the
                                              mutants in LIST, when given: the current code)
    mutants_ledger.py carry OLD NEW OLD_LIST NEW_LIST
                                              carry judgments across line moves: for each
                                              file whose only changes from commit OLD to
                                              commit NEW are comment or blank lines, a
                                              judged mutant of OLD_LIST (`cargo mutants
                                              --list` at OLD) gets the same outcome under
                                              its name in NEW_LIST (the list at NEW)

The ledger (MUTANTS_LEDGER; scripts/mutants_targeted.sh sets docs/mutants/PACKAGE.tsv) has
one row per mutant name: name, outcome (caught,
missed, unviable, timeout, explained), the date of the run, and for explained ones the
reason. A later run of the same name replaces the row, except that an explanation stays
until the mutant is caught. Names carry file, line and column, so a mutant whose code moved
gets a new name and is judged again: the ledger is always about code as it was run.

"Judged for good" is caught, unviable, timeout or explained; a missed mutant stays on the
to-do list until a test kills it or it is explained.
"""
import collections
import datetime
import json
import os
import sys

LEDGER = os.environ.get("MUTANTS_LEDGER") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "docs", "mutants", "implicit.tsv")
FINAL = {"caught", "unviable", "timeout", "explained"}
SUMMARY = {"CaughtMutant": "caught", "MissedMutant": "missed", "Unviable": "unviable",
           "Timeout": "timeout"}


def load():
    rows = {}
    if os.path.exists(LEDGER):
        for line in open(LEDGER, encoding="utf-8"):
            if line.startswith("#") or not line.strip():
                continue
            name, outcome, date, reason = (line.rstrip("\n").split("\t") + [""] * 4)[:4]
            rows[name] = (outcome, date, reason)
    return rows


def save(rows):
    os.makedirs(os.path.dirname(LEDGER), exist_ok=True)
    with open(LEDGER, "w", encoding="utf-8") as f:
        f.write("# name\toutcome\tdate\treason (explained mutants)\n")
        for name in sorted(rows):
            outcome, date, reason = rows[name]
            f.write(f"{name}\t{outcome}\t{date}\t{reason}\n")


def record(dirs):
    rows = load()
    added = collections.Counter()
    for d in dirs:
        path = os.path.join(d, "mutants.out", "outcomes.json")
        if not os.path.exists(path):
            path = os.path.join(d, "outcomes.json")
        data = json.load(open(path))
        date = (data.get("end_time") or data.get("start_time") or "")[:10] or str(datetime.date.today())
        for o in data["outcomes"]:
            sc = o.get("scenario")
            if not isinstance(sc, dict) or "Mutant" not in sc:
                continue  # the baseline
            name = sc["Mutant"]["name"]
            outcome = SUMMARY.get(o["summary"])
            if outcome is None:
                continue
            old = rows.get(name)
            if old and old[0] == "explained" and outcome == "missed":
                continue  # still survives, still explained
            if old and old[2].startswith("killed by") and outcome == "missed":
                continue  # a run of code from before the test that kills it (see `killed`)
            rows[name] = (outcome, date, "")
            added[outcome] += 1
    save(rows)
    print("recorded: " + ", ".join(f"{k} {v}" for k, v in sorted(added.items())))


def todo(listfile):
    rows = load()
    for line in open(listfile, encoding="utf-8"):
        name = line.rstrip("\n")
        if name and rows.get(name, ("",))[0] not in FINAL:
            print(name)


def explain(name, reason):
    rows = load()
    date = rows[name][1] if name in rows else str(datetime.date.today())
    rows[name] = ("explained", date, reason)
    save(rows)


def killed(name, test):
    """A missed mutant that a new test kills (checked by applying the mutant by hand and
    running the test): caught, with the test named. A later run that still reports it
    missed (a run of a checkout from before the test) does not undo this; a run that
    catches it replaces the row."""
    rows = load()
    rows[name] = ("caught", str(datetime.date.today()), f"killed by {test}")
    save(rows)


def summary(listfile=None):
    rows = load()
    names = None
    if listfile:
        names = [l.rstrip("\n") for l in open(listfile, encoding="utf-8") if l.strip()]
    else:
        names = list(rows)
    per_file = collections.defaultdict(collections.Counter)
    for name in names:
        f = name.split(":", 1)[0]
        per_file[f][rows.get(name, ("not run",))[0]] += 1
    cols = ["caught", "missed", "explained", "unviable", "timeout", "not run"]
    per_pkg = collections.defaultdict(collections.Counter)
    for f, c in per_file.items():
        pkg = f.split("/")[1] if f.startswith("crates/") else f
        per_pkg[pkg].update(c)
    print("| package | mutants | " + " | ".join(cols) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in cols) + " |")
    for pkg in sorted(per_pkg):
        c = per_pkg[pkg]
        print(f"| {pkg} | {sum(c.values())} | " + " | ".join(str(c[k]) for k in cols) + " |")
    print()
    print("| file | mutants | " + " | ".join(cols) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in cols) + " |")
    for f in sorted(per_file):
        c = per_file[f]
        print(f"| {f} | {sum(c.values())} | " + " | ".join(str(c[k]) for k in cols) + " |")


def is_comment_or_blank(line):
    t = line.strip()
    return not t or t.startswith("//")


def line_map(old_text, new_text):
    """Old line number -> new line number (1-based) for unchanged lines, or None when some
    changed line is code rather than a comment or blank."""
    import difflib
    a, b = old_text.splitlines(), new_text.splitlines()
    mapping = {}
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                mapping[i1 + k + 1] = j1 + k + 1
        elif not all(is_comment_or_blank(l) for l in a[i1:i2] + b[j1:j2]):
            return None
    return mapping


def carry(old, new, old_list, new_list):
    """A mutant's name carries its line: a comment edit above it renames it, and the
    runner would judge the same mutant again. For files whose code is token for token the
    same at both commits, give the judged mutants of OLD their outcome under the new name."""
    import re
    import subprocess
    rows = load()
    old_names = {l.rstrip("\n") for l in open(old_list, encoding="utf-8") if l.strip()}
    new_names = {l.rstrip("\n") for l in open(new_list, encoding="utf-8") if l.strip()}
    show = lambda c, f: subprocess.run(["git", "show", f"{c}:{f}"], capture_output=True,
                                       text=True, check=True).stdout
    maps, carried, skipped = {}, collections.Counter(), set()
    today = str(datetime.date.today())
    for name, (outcome, date, reason) in sorted(rows.items()):
        if outcome not in FINAL or name not in old_names:
            continue
        m = re.match(r"([^:]+):(\d+):(\d+): (.*)", name)
        f, line = m.group(1), int(m.group(2))
        if f not in maps:
            maps[f] = line_map(show(old, f), show(new, f))
        mp = maps[f]
        if mp is None:
            skipped.add(f)
            continue
        if line not in mp or mp[line] == line:
            continue
        new_name = f"{f}:{mp[line]}:{m.group(3)}: {m.group(4)}"
        if new_name not in new_names or rows.get(new_name, ("",))[0] in FINAL:
            continue
        note = f"[carried from line {line} at {old[:7]}: only comments changed in the file since]"
        rows[new_name] = (outcome, today, f"{reason} {note}".strip())
        carried[f] += 1
    save(rows)
    for f, n in sorted(carried.items()):
        print(f"carried {n:4d}  {f}")
    for f in sorted(skipped):
        print(f"code changed, not carried: {f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "record":
        record(args)
    elif cmd == "todo":
        todo(args[0])
    elif cmd == "explain":
        explain(args[0], " ".join(args[1:]))
    elif cmd == "killed":
        killed(args[0], " ".join(args[1:]))
    elif cmd == "summary":
        summary(args[0] if args else None)
    elif cmd == "carry":
        carry(*args[:4])
    else:
        sys.exit(__doc__)
