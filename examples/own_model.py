"""Your own network on your own arrays: a campaign, then evoticket's operators in your own DEAP search.

The network is an ordinary ``nn.Module`` written below (two 1D convolutions with BatchNorm, dropout and a linear
read-out); the data are arrays saved to an ``.npz`` file (here MNIST-1D's signals as ``(N, 1, 40)``, generated
offline, saved the way you would save your own). evoticket masks every ``Conv1d`` and ``Linear`` weight under the
module's own parameter names, trains the whole population as one ``torch.func`` computation (each individual
with its own BatchNorm statistics and dropout draws), and counts its FLOPs with ``FlopCounterMode``. Nothing
beyond evoticket's own install is needed.

1. ``evoticket.models.register`` names the factory for this process; ``model.name`` and ``data.name = "npz"``
   run a campaign (the GA with its final comparison against the lottery-ticket controls).
2. ``evoticket.load_ticket`` gives the best ticket back as *this file's* class, pruned with
   ``torch.nn.utils.prune``, an ordinary module.
3. The same network in your own DEAP loop: ``make_toolbox`` with evoticket's mask operators and
   ``eaMuPlusLambda``, recorded by a ``RunRecorder`` for ``evoticket plot``.

A factory in an importable module (``model.name = "my_package.nets:make_net"``) or an installed plugin (entry
point group ``evoticket.models``) is found by every later process too (``evoticket resume``, ``load_ticket``);
one defined in a script like this one must be registered again in the process that loads it.

Run: python examples/own_model.py [--generations 6] [--steps 40] [--runs-dir runs]
"""

from __future__ import annotations

import argparse
import functools
import random
from pathlib import Path

import numpy as np
import torch
from deap import algorithms, tools
from torch import nn

import evoticket
from evoticket.operators import cxMaskUniform, mutMaskSwap


class SmallCNN(nn.Module):
    """conv(16) - BN - ReLU - conv(32) - BN - ReLU - max-pool - dropout - linear, for (C, L) signals."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        channels, length = input_shape
        self.features = nn.Sequential(
            nn.Conv1d(channels, 16, 5, padding=2, bias=False),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Conv1d(16, 32, 5, padding=2, bias=False),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.MaxPool1d(2),
        )
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(32 * (length // 2), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of signals ``(B, C, L)``."""
        return self.head(self.dropout(self.features(x).flatten(1)))


def small_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The factory evoticket calls: ``factory(input_shape, num_classes) -> nn.Module``."""
    return SmallCNN(input_shape, num_classes)


def save_arrays(path: Path) -> Path:
    """Your arrays as an ``.npz``: x_train, y_train, x_test, y_test (validation is carved from train).

    Here MNIST-1D (Greydanus 2020, arXiv:2011.14439), generated offline by evoticket, as ``(N, 1, 40)`` signals.
    """
    splits = evoticket.data.load_dataset("mnist1d")  # train, validation and test splits; rejoin train and validation
    x_train = torch.cat([splits.x_train, splits.x_val]).numpy().astype(np.float32)[:, None]  # (N, 1, 40)
    y_train = torch.cat([splits.y_train, splits.y_val]).numpy().astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=x_train,
        y_train=y_train,
        x_test=splits.x_test.numpy().astype(np.float32)[:, None],
        y_test=splits.y_test.numpy().astype(np.int64),
    )
    return path


def main(argv: list[str] | None = None) -> dict:
    """The campaign, the ticket as a module, and a DEAP search, on the arrays of the ``.npz`` file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--steps", type=int, default=40, help="fine-tuning steps per evaluation")
    parser.add_argument("--final-steps", type=int, default=400, help="steps of the final comparison's trainings")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--plots-dir", default="plots")
    args = parser.parse_args(argv)

    arrays = save_arrays(Path(args.runs_dir) / "own-model-data" / "mnist1d.npz")
    evoticket.models.register("small_cnn", small_cnn, replace=True)
    config = evoticket.CampaignConfig().with_overrides(
        {
            "model.name": "small_cnn",
            "data.name": "npz",
            "data.root": str(arrays),
            "ticket.density": 0.2,
            "ga.population": args.population,
            "ga.offspring": args.population,
            "ga.generations": args.generations,
            "finetune.steps": args.steps,
            "optimizer.batch_size": 64,
            "campaign.final_steps": args.final_steps,
            "campaign.final_eval_every": max(1, args.final_steps // 10),
            "campaign.final_seeds": 2,
            "campaign.plots": "png",
            "campaign.progress": False,
        }
    )

    # 1. a campaign
    result = evoticket.run_campaign(
        config, name="own-model", runs_dir=args.runs_dir, plots_dir=args.plots_dir, force=True
    )
    arch = evoticket.models.architecture_from_dict(result.summary["architecture"])
    print(f"pruned: {', '.join(arch.weight_names)}; BatchNorm (never pruned): {', '.join(n.name for n in arch.norms)}")

    # 2. the best ticket as your own module
    module = evoticket.load_ticket(result.run_dir / "best_ticket.pt")
    data = np.load(arrays)
    with torch.no_grad():
        untrained = module.eval()(torch.from_numpy(data["x_test"])).argmax(1)
    accuracy = float((untrained.numpy() == data["y_test"]).mean())
    kept = sum(int(b.sum()) for name, b in module.named_buffers() if name.endswith("weight_mask"))
    print(f"load_ticket: a {type(module).__name__} with {kept:,} weights kept; untrained test accuracy {accuracy:.3f}")

    # 3. your own DEAP search with evoticket's operators
    random.seed(0)
    toolbox = evoticket.make_toolbox(config.with_overrides({"finetune.mode": "lamarckian", "ga.halving_rungs": 1}))
    toolbox.register("mutate", functools.partial(mutMaskSwap, indpb=0.05, rng=toolbox.rng))
    toolbox.register("mate", functools.partial(cxMaskUniform, rng=toolbox.rng))
    recorder = evoticket.RunRecorder(toolbox, config, name="own-model-deap", runs_dir=args.runs_dir, force=True)
    population = toolbox.population(n=args.population)
    hof = tools.HallOfFame(1)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("max", max)
    population, logbook = algorithms.eaMuPlusLambda(
        population,
        toolbox,
        mu=args.population,
        lambda_=args.population,
        cxpb=0.3,
        mutpb=0.7,
        ngen=args.generations,
        stats=stats,
        halloffame=hof,
        verbose=False,
    )
    recorder.finish(hof[0])
    first, best = logbook[0]["max"], max(row["max"] for row in logbook)
    print(f"DEAP search: max validation accuracy {first:.3f} at generation 0, {best:.3f} at best")
    print(f"records: {result.run_dir} and {recorder.run_dir} (try: evoticket plot {recorder.run_dir})")
    return {
        "run_dir": result.run_dir,
        "deap_run_dir": recorder.run_dir,
        "summary": result.summary,
        "module": module,
        "untrained_test_acc": accuracy,
        "first_max": first,
        "best": best,
    }


if __name__ == "__main__":
    main()
