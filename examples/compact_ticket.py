"""Tickets as DNA: write a run's best ticket as a recipe of seeds, read it back bit for bit, compare sizes.

With RUN_DIR, exports that run's best ticket; without, first runs a short Baldwinian campaign whose operators
are all replayable (mask swaps, Gaussian and sign mutations of theta0, layer-swap crossover), so the recipe is
only seeds (Such et al. 2017, arXiv:1712.06567). A Lamarckian run (the default campaign) or one with informed
operators stores what cannot be replayed: bit-packed masks, the kept weights and theta0 at the pruned positions
(the whole genome, about the size of the float32 state dict). ``--network-only`` leaves the pruned positions out:
a smaller file that gives the same network but not the same genome, marked ``network_only`` (on the file, and on
the ticket and the module it reads back as).

Run: python examples/compact_ticket.py [RUN_DIR] [--weights float16] [--network-only]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import evoticket
from evoticket.campaign.export import export_run

REPLAYABLE = [
    "finetune.mode=baldwinian",
    "finetune.steps=100",
    "ga.halving_rungs=1",
    "ga.population=16",
    "ga.mutations=['mutMaskSwap', 'mutInitGaussian', 'mutSignFlip']",
    "ga.crossover=cxLayerSwap",
    "campaign.final_seeds=1",
    "campaign.final_steps=500",
    "campaign.plots=none",
]


def main(argv: list[str] | None = None) -> dict:
    """Export, reload and check one best ticket; print its sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", help="a finished run (default: run a short replayable campaign)")
    parser.add_argument("--weights", choices=("float32", "float16"), default="float32")
    parser.add_argument("--network-only", action="store_true", help="store the masked network, not the genome")
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--hidden", default="[300, 100]")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args(argv)
    if args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        config = evoticket.CampaignConfig().with_overrides(
            [*REPLAYABLE, f"ga.generations={args.generations}", f"model.hidden={args.hidden}"]
        )
        run_dir = evoticket.run_campaign(config, name="compact-demo", runs_dir=args.runs_dir, force=True).run_dir
    out = run_dir / f"best_ticket.{args.weights}{'.network' if args.network_only else ''}.recipe"
    if out.exists():
        out.unlink()  # this example's own output; export itself never overwrites
    result = export_run(run_dir, fmt="recipe", out=out, weights=args.weights, network_only=args.network_only)
    r = result.report
    print(f"recipe: {r['recipe_bytes']:,} bytes, {r['nodes']} individuals in its ancestry graph")
    stored = ["kept weights" if part == "theta0" and r["network_only"] else part for part in r["stored"]]
    print(f"  replays {', '.join(r['replayed']) or 'nothing'}; stores {', '.join(stored) or 'nothing'}")
    print(f"float32 state dict: {r['state_dict_float32_bytes']:,} bytes ({r['ratio_float32']:.1f}x the recipe)")
    print(f"gzip-compressed masked state dict: {r['state_dict_gzip_bytes']:,} bytes ({r['ratio_gzip']:.1f}x)")
    print(f"best_ticket.pt: {r['best_ticket_bytes']:,} bytes")
    if r["network_only"]:
        print(f"network only: theta0 at pruned positions not stored ({r['pruned_not_stored']:,} entries read as 0.0)")
        held = "masks, kept weights and biases" if r["network_exact"] else f"max abs error {r['max_abs_error']:.3g}"
        print(f"round trip of the masked network: {'exact, ' + held + ' bit for bit' if r['network_exact'] else held}")
    elif r["exact"]:
        print("round trip: exact, every theta0 entry (pruned positions included) and mask bit for bit")
    else:
        print(f"round trip: theta0 rounded to {r['weights']}, max abs error {r['max_abs_error']:.3g}")
    x = torch.randn(16, 40)
    model, reference = evoticket.load_ticket(out), evoticket.load_ticket(run_dir / "best_ticket.pt")
    same = torch.equal(model(x), reference(x))
    genome = all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True))
    print(f"the reloaded module gives the same outputs: {same}; the same genome (weight_orig): {genome}")
    print(f"  marked network_only: {model.network_only}")
    return {**r, "same_outputs": same, "same_genome": genome, "path": out}


if __name__ == "__main__":
    main()
