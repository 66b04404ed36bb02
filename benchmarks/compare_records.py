"""Compare two runs' records field for field: is a change, a backend or a thread count invisible in the records?

``individuals.jsonl`` line by line and field by field (fields only the second run has are listed as new),
``generations.csv`` without its wall-time columns, and ``summary.json``'s final comparison (the controls both
runs have; controls only the second has are listed as new), best ticket, hall of fame and search compute::

    python benchmarks/compare_records.py runs/OLD runs/NEW

Exit status 0 when nothing differs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

TIMING = {"seconds", "finetune_seconds"}
"""Columns of ``generations.csv`` that measure wall time."""


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def compare(old: Path, new: Path, out=sys.stdout) -> int:
    """Print the comparison of two run directories; return the number of differing fields."""
    a, b = _jsonl(old / "individuals.jsonl"), _jsonl(new / "individuals.jsonl")
    differ = 0
    if len(a) != len(b):
        print(f"individuals.jsonl: {len(a)} records against {len(b)}", file=out)
        return 1
    added: set[str] = set()
    for x, y in zip(a, b, strict=True):
        for key, value in x.items():
            if value != y.get(key):
                differ += 1
                if differ <= 5:
                    print(f"  uid {x.get('uid')}: {key} {value!r} -> {y.get(key)!r}", file=out)
        added |= set(y) - set(x)
    fields = sum(len(x) for x in a)
    print(
        f"individuals.jsonl: {len(a)} records, {fields} fields compared, {differ} differ; new fields: {sorted(added)}",
        file=out,
    )
    with open(old / "generations.csv", newline="") as f:
        ga = list(csv.DictReader(f))
    with open(new / "generations.csv", newline="") as f:
        gb = list(csv.DictReader(f))
    gd = sum(1 for x, y in zip(ga, gb, strict=True) for k in x if k not in TIMING and x[k] != y.get(k))
    compared = sum(len(x) - len(TIMING & set(x)) for x in ga)
    print(f"generations.csv: {len(ga)} rows, {compared} fields compared (wall times excluded), {gd} differ", file=out)
    differ += gd + (len(ga) != len(gb))
    sa = json.loads((old / "summary.json").read_text())
    sb = json.loads((new / "summary.json").read_text())
    cd = cf = 0
    for control, values in sa["controls"].items():
        for key, value in values.items():
            cf += 1
            if sb["controls"].get(control, {}).get(key) != value:
                cd += 1
    new_controls = sorted(set(sb["controls"]) - set(sa["controls"]))
    print(
        f"summary.json controls: {len(sa['controls'])} controls, {cf} fields compared, {cd} differ; "
        f"new controls: {new_controls}",
        file=out,
    )
    differ += cd
    for key in ("best", "hall_of_fame"):
        same = sa[key] == sb[key]
        differ += not same
        print(f"summary.json {key}: {'same' if same else 'DIFFERENT'}", file=out)
    same = sa["compute"]["search"] == sb["compute"]["search"]
    differ += not same
    print(f"summary.json compute (search): {'same' if same else 'DIFFERENT'}", file=out)
    return differ


def main(argv: list[str] | None = None) -> int:
    """Command line: ``compare_records.py OLD NEW``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="a finished run directory")
    parser.add_argument("new", type=Path, help="another finished run directory")
    args = parser.parse_args(argv)
    return 1 if compare(args.old, args.new) else 0


if __name__ == "__main__":
    sys.exit(main())
