"""Configure and run a campaign from Python, then read its records back as pandas DataFrames.

Run: python examples/campaign_from_script.py [--generations 20] [--name from-script]
(pandas: pip install pandas)
"""

from __future__ import annotations

import argparse
import json

import evoticket
from evoticket import records


def main(argv: list[str] | None = None) -> dict:
    """A short default-style campaign on MNIST-1D, its records as DataFrames, its best ticket as a module."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--final-steps", type=int, default=500)
    parser.add_argument("--hidden", default="[300, 100]", help="hidden sizes, e.g. [100]")
    parser.add_argument("--name", default="from-script")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--plots-dir", default="plots")
    args = parser.parse_args(argv)

    config = evoticket.CampaignConfig().with_overrides(
        {
            "model.hidden": json.loads(args.hidden),
            "ga.generations": args.generations,
            "campaign.final_steps": args.final_steps,
            "campaign.final_seeds": 1,
            "campaign.plots": "fitness",
        }
    )
    result = evoticket.run_campaign(
        config, name=args.name, runs_dir=args.runs_dir, plots_dir=args.plots_dir, force=True
    )
    individuals = records.individuals_frame(result.run_dir)  # one row per evaluation
    generations = records.generations_frame(result.run_dir)  # one row per generation
    print(generations[["generation", "val_acc_max", "val_acc_avg", "density_avg", "train_steps"]].tail())
    by_operator = (
        individuals[~individuals["reevaluated"]]
        .assign(operator=individuals["operators"].map(lambda ops: "+".join(ops)))
        .groupby("operator")["val_acc"]
        .agg(["count", "mean", "max"])
    )
    print(by_operator)
    model = evoticket.load_ticket(result.run_dir / "best_ticket.pt")  # a plain torch.nn.Module, masks applied
    kept = sum(int(b.sum()) for name, b in model.named_buffers() if name.endswith("weight_mask"))
    print(
        f"best ticket: {kept} weights kept; test accuracy {result.summary['controls']['ticket']['test_acc_mean']:.4f}"
    )
    return {"individuals": len(individuals), "generations": len(generations), "run_dir": result.run_dir}


if __name__ == "__main__":
    main()
