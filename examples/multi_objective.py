"""A multi-objective ticket search: accuracy up, density down, NSGA-II; the Pareto front against IMP.

Runs ``configs/multi-objective.toml`` (or a shorter version of it), and, with ``--imp``, an IMP run of the
same network to 2% density; prints the final front, trained, next to IMP at each round's density, and
draws ``plots/NAME/pareto.png``.

Run: python examples/multi_objective.py [--generations 50] [--imp] [--name mo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import evoticket
from evoticket.plots import pareto_vs_imp, plot_run
from evoticket.plots.pareto import read_trained_front

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "multi-objective.toml"


def main(argv: list[str] | None = None) -> dict:
    """Run the multi-objective campaign (and IMP), print the front and the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=50)
    parser.add_argument("--population", type=int, default=24)
    parser.add_argument("--final-steps", type=int, default=1500, help="training of each front member and IMP round")
    parser.add_argument("--hidden", default="[300, 100]")
    parser.add_argument("--imp", action="store_true", help="also run IMP to 2%% density and compare")
    parser.add_argument("--name", default="mo")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--plots-dir", default="plots")
    args = parser.parse_args(argv)
    common = [f"model.hidden={args.hidden}", f"campaign.final_steps={args.final_steps}", "campaign.plots=none"]
    config = evoticket.load_config(
        CONFIG, [*common, f"ga.generations={args.generations}", f"ga.population={args.population}"]
    )
    mo = evoticket.run_campaign(config, name=args.name, runs_dir=args.runs_dir, plots_dir=args.plots_dir, force=True)
    imp_dir = None
    if args.imp:
        imp_config = evoticket.CampaignConfig().with_overrides(
            [*common, "method=imp", "ticket.density=0.02", f"imp.steps={args.final_steps}"]
        )
        imp_dir = evoticket.run_campaign(
            imp_config, name=f"{args.name}-imp", runs_dir=args.runs_dir, plots_dir=args.plots_dir, force=True
        ).run_dir
    plot_dir = Path(args.plots_dir) / args.name
    written = plot_run(mo.run_dir, plot_dir, imp_run=imp_dir, formats=("png",))
    front = read_trained_front(mo.run_dir)
    print(
        f"final front: {len(front)} tickets, densities {front[0]['density_total']:.4f} to {front[-1]['density_total']:.4f}"
    )
    for r in front:
        print(
            f"  density {100 * r['density_total']:6.2f}%  search val {r['val_acc_search']:.3f}  trained test {r['test_acc']:.3f}"
        )
    rows = pareto_vs_imp(mo.run_dir, imp_dir) if imp_dir else []
    for r in rows:
        front_test = "-" if r["front_test_acc"] is None else f"{r['front_test_acc']:.3f}"
        print(
            f"  IMP round {r['round']:2d} density {100 * r['density']:6.2f}%: IMP test {r['imp_test_acc']:.3f}, front {front_test}"
        )
    print(f"figures: {', '.join(str(p) for p in written if p.name.startswith('pareto'))}")
    return {"front": front, "vs_imp": rows, "run_dir": mo.run_dir, "imp_dir": imp_dir}


if __name__ == "__main__":
    main()
