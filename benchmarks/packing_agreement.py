"""Does a packed experiment agree with the same experiment run without packing?

Reads the two runs' ``results.csv`` (``evoticket experiment``'s table, a row per cell) and prints, per method x
data set x density x allocation x budget, the reference run's mean test accuracy with its 95% t interval, the
packed run's mean, whether that mean lies inside the interval, and Welch's t-test of the two runs' seeds; then the
count of groups inside, of groups with p < 0.05, and the mean absolute difference. With
``--json`` it also writes the table and the two runs' wall times (given in seconds, as measured by the caller)::

    python benchmarks/packing_agreement.py benchmarks/results/why-not-both-results.csv \\
        runs/why-not-both-packed/results.csv --wall 6720 4300 --json benchmarks/results/packing-full-cpu.json

Packing runs every cell under the per-individual data order (``optimizer.data_order = "individual"``), so a
packed cell's accuracy is that of another data order, not the reference's: agreement is statistical. A 95%
interval of a three-seed mean is not an interval for a new run's mean, so a few groups outside it are expected.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from evoticket.experiment.results import aggregate

NUMERIC = ("density", "density_reached", "budget", "budget_train_flops", "spent_train_flops", "wall_seconds")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an experiment's ``results.csv``, numbers as floats (``test_acc`` empty where infeasible)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key in NUMERIC:
            r[key] = float(r[key]) if r.get(key, "") != "" else math.nan
        r["test_acc"] = float(r["test_acc"]) if r["test_acc"] != "" else math.nan
    return rows


def agreement(reference: list[dict[str, Any]], packed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group of cells that both runs finished: the reference's mean and 95% interval, the packed mean (both in
    %), and ``inside`` (``None`` where the reference has no interval: one seed, or an infeasible group)."""
    from scipy import stats

    key = ("dataset", "density", "allocation", "budget", "method")
    ref = {tuple(g[k] for k in key): g for g in aggregate(reference)}
    seeds: dict[int, dict[tuple, list[float]]] = {0: {}, 1: {}}  # reference, packed: group -> its seeds' accuracy, %
    for which, rows in enumerate((reference, packed)):
        for r in rows:
            if r["status"] == "done":
                seeds[which].setdefault(tuple(r[k] for k in key), []).append(100 * r["test_acc"])
    out = []
    for g in aggregate(packed):
        group = tuple(g[k] for k in key)
        r = ref.get(group)
        if r is None or g["status"] != "done" or r["status"] != "done":
            continue
        low, high = 100 * r["ci_low"], 100 * r["ci_high"]
        mean = 100 * g["test_acc_mean"]
        inside = None if math.isnan(low) else bool(low - 1e-9 <= mean <= high + 1e-9)
        a, b = seeds[0][group], seeds[1][group]
        with warnings.catch_warnings():  # seeds of equal accuracy: scipy warns of its precision, or gives NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue) if len(a) > 1 and len(b) > 1 else math.nan
        row = {k: g[k] for k in key}
        row.update(
            seeds=g["seeds"],
            reference_mean=100 * r["test_acc_mean"],
            reference_ci=[low, high],
            packed_mean=mean,
            difference=mean - 100 * r["test_acc_mean"],
            inside=inside,
            p_welch=None if math.isnan(p) else p,
        )
        out.append(row)
    return out


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Groups with an interval, those whose packed mean is inside it, groups tested, and those at p < 0.05."""
    tested = [r["p_welch"] for r in rows if r["p_welch"] is not None]
    return {
        "groups": sum(r["inside"] is not None for r in rows),
        "inside_interval": sum(r["inside"] is True for r in rows),
        "welch_tested": len(tested),
        "welch_below_0.05": sum(p < 0.05 for p in tested),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The agreement table as markdown, with the count of groups inside their interval."""
    lines = [
        "| data set | density | allocation | budget | method | reference mean | reference 95% CI | packed mean | "
        "difference | inside | p (Welch) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r["reference_ci"]
        inside = {True: "yes", False: "**no**", None: "-"}[r["inside"]]
        p = "-" if r["p_welch"] is None else f"{r['p_welch']:.3f}"
        lines.append(
            f"| {r['dataset']} | {r['density']:g} | {r['allocation']} | {r['budget']:g}x | {r['method']} | "
            f"{r['reference_mean']:.1f} | [{low:.1f}, {high:.1f}] | {r['packed_mean']:.1f} | "
            f"{r['difference']:+.1f} | {inside} | {p} |"
        )
    n = counts(rows)
    lines.append("")
    lines.append(
        f"{n['inside_interval']} of {n['groups']} groups have their packed mean inside the reference's 95% interval."
    )
    lines.append(
        f"Welch's t-test, the packed seeds against the reference's: p < 0.05 in {n['welch_below_0.05']} of "
        f"{n['welch_tested']} groups ({0.05 * n['welch_tested']:.1f} expected by chance when packing changes nothing "
        "but the data order)."
    )
    diffs = [abs(r["difference"]) for r in rows]
    if diffs:
        lines.append(f"Mean absolute difference of the means: {sum(diffs) / len(diffs):.2f} points.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the agreement table; with ``--json`` also write it. Exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="results.csv of the run without packing")
    parser.add_argument("packed", type=Path, help="results.csv of the packed run")
    parser.add_argument("--wall", type=float, nargs=2, metavar=("REFERENCE_S", "PACKED_S"), help="wall times, s")
    parser.add_argument("--json", type=Path, help="write the table (and wall times) here")
    args = parser.parse_args(argv)
    for path in (args.reference, args.packed):
        if not path.is_file():
            print(f"packing_agreement: {path}: no such file (give an experiment's results.csv)", file=sys.stderr)
            return 2
    rows = agreement(read_rows(args.reference), read_rows(args.packed))
    print(markdown(rows))
    if args.wall:
        print(
            f"\nwall: {args.wall[0]:.0f} s without packing, {args.wall[1]:.0f} s packed, "
            f"{args.wall[0] / args.wall[1]:.2f}x"
        )
    if args.json:
        record = {"reference": str(args.reference), "packed": str(args.packed), **counts(rows), "rows": rows}
        if args.wall:
            record["wall_seconds"] = {"reference": args.wall[0], "packed": args.wall[1]}
            record["speedup"] = args.wall[0] / args.wall[1]
        args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
