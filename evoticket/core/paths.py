"""Every file a campaign writes, in one place (as OpenLTH's ``foundations/paths.py``).

A run named NAME writes ``runs/NAME/`` and ``plots/NAME/``:

    runs/NAME/config.toml        the fully resolved configuration
    runs/NAME/method.json        what the method's figures call things (units, titles), for the plots
    runs/NAME/generations.csv    one row of statistics per generation
    runs/NAME/individuals.jsonl  one JSON line per evaluated individual (lineage)
    runs/NAME/best_ticket.pt     the best ticket: theta0, masks, lineage, architecture, config
    runs/NAME/trained_ticket.pt  what the final comparison trained: every seed's ticket and controls
    runs/NAME/summary.json       the final lottery-ticket comparison and timings
    runs/NAME/checkpoints/       gen-NNNNNN.pt, the last two generations' checkpoints
    runs/NAME/trackers.json      with campaign.trackers: each tracker's run (ids, log folder) and last step logged
    runs/NAME/tensorboard/       with campaign.trackers: TensorBoard's event files (an experiment: one per cell)
    runs/NAME/mlflow.db          with campaign.trackers: MLflow's store (and mlartifacts/), unless tracking_uri
    runs/NAME/wandb/             with campaign.trackers: W&B's offline runs
    plots/NAME/fitness.png       validation accuracy per generation (and .pdf)
    plots/NAME/FIGURE.{png,pdf}  the other figures: lineage, lineage_fitness, operators, density, masks,
                                 diversity (see evoticket.plots)

A new run is assembled in ``runs/.NAME.partial/`` (configuration and first checkpoint) and renamed to
``runs/NAME/``, so a run directory always holds a checkpoint to resume from; ``run --force`` moves the
old run to ``runs/.NAME.replaced/`` until the new one is in place. ``runs/.NAME.lock`` is held
(``flock``) by the one process writing the run.
"""

from __future__ import annotations

from pathlib import Path


def config(run_dir: Path) -> Path:
    """The resolved configuration (TOML)."""
    return Path(run_dir) / "config.toml"


def method_report(run_dir: Path) -> Path:
    """What the run's method calls things in its figures (JSON: units, title, whether it holds a population)."""
    return Path(run_dir) / "method.json"


def generations_csv(run_dir: Path) -> Path:
    """Per-generation statistics (CSV, one row per generation)."""
    return Path(run_dir) / "generations.csv"


def individuals_jsonl(run_dir: Path) -> Path:
    """Per-individual records (JSON lines, one per evaluated individual)."""
    return Path(run_dir) / "individuals.jsonl"


def pareto_csv(run_dir: Path) -> Path:
    """Each generation's Pareto front of a multi-objective run (CSV, one row per front member)."""
    return Path(run_dir) / "pareto.csv"


def pareto_final_csv(run_dir: Path) -> Path:
    """A multi-objective run's final Pareto front trained fully (CSV, one row per front member)."""
    return Path(run_dir) / "pareto_final.csv"


def best_ticket(run_dir: Path) -> Path:
    """The best ticket found (``torch.save`` file)."""
    return Path(run_dir) / "best_ticket.pt"


def trained_ticket(run_dir: Path) -> Path:
    """The networks the final comparison trained (``torch.save`` file), per seed and control."""
    return Path(run_dir) / "trained_ticket.pt"


def summary(run_dir: Path) -> Path:
    """The campaign summary (JSON)."""
    return Path(run_dir) / "summary.json"


def trackers_json(run_dir: Path) -> Path:
    """What each experiment tracker of ``campaign.trackers`` logs to (run ids, folders) and its last step (JSON)."""
    return Path(run_dir) / "trackers.json"


def tensorboard_dir(root: Path) -> Path:
    """TensorBoard's event files under a run (or an experiment: one subfolder per cell)."""
    return Path(root) / "tensorboard"


def mlflow_db(root: Path) -> Path:
    """MLflow's default store of a run (or an experiment): a SQLite database."""
    return Path(root) / "mlflow.db"


def mlflow_artifacts(root: Path) -> Path:
    """Where MLflow's default store keeps artifacts (figures, ``config.toml``)."""
    return Path(root) / "mlartifacts"


def wandb_dir(root: Path) -> Path:
    """W&B's run folders under a run (or an experiment): ``offline-run-*`` (the folder wandb itself names)."""
    return Path(root) / "wandb"


def fitness_plot(plot_dir: Path) -> Path:
    """Validation accuracy per generation (PNG)."""
    return plot_file(plot_dir, "fitness", "png")


def plot_file(plot_dir: Path, name: str, ext: str) -> Path:
    """One figure of a run: ``plots/NAME/<name>.<ext>``, e.g. ``plot_file(d, "lineage", "pdf")``."""
    return Path(plot_dir) / f"{name}.{ext}"


def checkpoint_dir(run_dir: Path) -> Path:
    """Folder of the run's checkpoints."""
    return Path(run_dir) / "checkpoints"


def checkpoint(run_dir: Path, generation: int) -> Path:
    """The checkpoint after ``generation`` (-1: before the initial population)."""
    return checkpoint_dir(run_dir) / f"gen-{generation:06d}.pt"


def staging(run_dir: Path) -> Path:
    """Where a new run is assembled before it is renamed to ``run_dir`` (``runs/.NAME.partial``)."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.partial"


def replaced(run_dir: Path) -> Path:
    """Where ``run --force`` moves the old run until the new one is in place (``runs/.NAME.replaced``)."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.replaced"


def lock(run_dir: Path) -> Path:
    """The lock file of the one process writing ``run_dir`` (``runs/.NAME.lock``)."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"
