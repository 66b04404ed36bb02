"""Tickets as DNA: write a run's best ticket as a recipe of seeds, read it back bit for bit, compare sizes.

With RUN_DIR, exports that run's best ticket; without, first runs a short Baldwinian campaign whose operators
are all replayable (mask swaps, Gaussian and sign mutations of theta0, layer-swap crossover), so the recipe is
only seeds (Such et al. 2017, arXiv:1712.06567). A Lamarckian run (the default campaign) or one with informed
operators stores what cannot be replayed: bit-packed masks and the kept weights.

Run: python examples/compact_ticket.py [RUN_DIR] [--weights float16]
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
    out = run_dir / f"best_ticket.{args.weights}.recipe"
    if out.exists():
        out.unlink()  # this example's own output; export itself never overwrites
    result = export_run(run_dir, fmt="recipe", out=out, weights=args.weights)
    r = result.report
    print(f"recipe: {r['recipe_bytes']:,} bytes, {r['nodes']} individuals in its ancestry graph")
    print(f"  replays {', '.join(r['replayed']) or 'nothing'}; stores {', '.join(r['stored']) or 'nothing'}")
    print(f"float32 state dict: {r['state_dict_float32_bytes']:,} bytes ({r['ratio_float32']:.1f}x the recipe)")
    print(f"gzip-compressed masked state dict: {r['state_dict_gzip_bytes']:,} bytes ({r['ratio_gzip']:.1f}x)")
    print(f"best_ticket.pt: {r['best_ticket_bytes']:,} bytes")
    print("round trip: " + ("exact, bit for bit" if r["exact"] else f"max abs weight error {r['max_abs_error']:.3g}"))
    x = torch.randn(16, 40)
    same = torch.equal(evoticket.load_ticket(out)(x), evoticket.load_ticket(run_dir / "best_ticket.pt")(x))
    print(f"the reloaded module gives the same outputs: {same}")
    return {**r, "same_outputs": same, "path": out}


if __name__ == "__main__":
    main()
