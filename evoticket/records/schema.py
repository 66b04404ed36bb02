"""What the records hold: the columns of ``generations.csv`` and the fields of ``individuals.jsonl``.

``individuals.jsonl`` has one JSON object per evaluated individual (:data:`INDIVIDUAL_FIELDS`);
``generations.csv`` one row per generation (:data:`GENERATION_COLUMNS`). Records are append-only
and long-format, and lineage lives in them (uid and parents), not in deep copies of networks.
"""

from __future__ import annotations

SPENT_KEYS = ("train_steps", "train_flops", "eval_flops")
"""The compute meter's three counts (:mod:`evoticket.training.meter`), as every record, generation row and summary
names them: optimizer steps, training FLOPs, evaluation FLOPs."""

INDIVIDUAL_FIELDS = (
    "uid",
    "generation",
    "parents",
    "operators",
    "density",
    "density_total",
    "val_acc_before",
    "val_loss_before",
    "val_acc",
    "val_loss",
    "flags",
    "reevaluated",
    "rung",
    "train_steps",
    "train_flops",
    "eval_flops",
    "recipe",
)
"""Fields of each ``individuals.jsonl`` line: ``uid`` (int), ``generation``, ``parents`` (uids),
``operators`` (names, in order applied), ``density`` (weight name -> fraction kept) and
``density_total``, validation accuracy in [0, 1] and loss in nats before (step 0) and after
fine-tuning (``null`` where non-finite), ``flags`` (``"nonfinite"``; ``"cached"``: served by the
fitness cache), ``reevaluated`` (a surviving parent fine-tuned again), ``rung`` (the last
successive-halving rung it reached; 0 without halving), the compute of this evaluation: ``train_steps``
(optimizer steps), ``train_flops`` and ``eval_flops`` (FLOPs, :mod:`evoticket.training.meter`), and ``recipe``:
how seeded operators made it from evaluated ancestors (a tree, :mod:`evoticket.operators.recipe`), ``null`` for
a re-evaluated parent or an individual that cannot be replayed. An individual carrying hyperparameter genes
(``finetune.genes``) also has ``genes`` (name -> value: ``lr``, ``alpha``)."""


GENERATION_COLUMNS = (
    "generation",
    "nevals",
    "val_acc_max",
    "val_acc_avg",
    "val_acc_min",
    "val_acc_std",
    "val_acc_before_max",
    "val_acc_before_avg",
    "val_acc_before_min",
    "density_avg",
    "best_uid",
    "best_density",
    "seconds",
    "finetune_seconds",
    "train_steps",
    "train_flops",
    "eval_flops",
    "mask_jaccard",
    "theta0_spread",
    "hypervolume",
)
"""Columns of ``generations.csv``; accuracies in [0, 1], times in seconds, compute summed over the
generation's evaluations (optimizer steps and FLOPs, see :mod:`evoticket.training.meter`), the
population's diversity after the generation (:func:`population_diversity`), and, for a multi-objective run,
the hypervolume of its Pareto front in [0, 1] (:mod:`evoticket.evolution.objectives`; empty otherwise)."""

PARETO_COLUMNS = ("generation", "uid", "val_acc", "density_total", "flops")
"""Columns of ``pareto.csv`` (multi-objective runs): one row per member of each generation's Pareto front,
by increasing density: validation accuracy after fine-tuning in [0, 1], total density in (0, 1], forward FLOPs
per example."""


TIMING_COLUMNS = ("seconds", "finetune_seconds")
"""Columns that measure wall time and so differ between identical runs."""


def population_diversity(population: list) -> dict[str, float]:
    """How varied a population's tickets are: masks and initial weights.

    Args:
        population: tickets with ``masks`` (weight name -> bool tensor) and ``theta0``.

    Returns:
        ``mask_jaccard``: the mean over all pairs of individuals of the Jaccard distance
        ``1 - |A & B| / |A | B|`` between their kept-weight sets over every layer, in [0, 1] (0: one
        mask); ``theta0_spread``: the population's standard deviation of the prunable initial
        weights over their root mean square, >= 0 (0: every ticket shares theta0; about 1 for
        independent draws). Both 0.0 for fewer than two individuals. Exact integer counts and
        NumPy float64 (pairwise summation), so the same population always gives the same bits.
    """
    import numpy as np

    if len(population) < 2:
        return {"mask_jaccard": 0.0, "theta0_spread": 0.0}
    names = list(population[0].masks)
    masks = np.stack([np.concatenate([ind.masks[k].numpy().reshape(-1) for k in names]) for ind in population])
    kept = masks.sum(1, dtype=np.int64)  # (P,)
    distances = []
    for i in range(len(population) - 1):
        inter = (masks[i] & masks[i + 1 :]).sum(1, dtype=np.int64)  # (P - i - 1,)
        union = kept[i] + kept[i + 1 :] - inter
        distances.append(np.where(union > 0, 1.0 - inter / np.maximum(union, 1), 0.0))
    weights = np.stack(
        [np.concatenate([ind.theta0[k].numpy().reshape(-1).astype(np.float64) for k in names]) for ind in population]
    )
    rms = float(np.sqrt(np.mean(weights**2))) or 1.0
    return {
        "mask_jaccard": float(np.concatenate(distances).mean()),
        "theta0_spread": float(np.sqrt(weights.var(axis=0).mean())) / rms,
    }


def generation_row(
    generation: int,
    population: list,
    stats: dict,
    seconds: float,
    finetune_seconds: float,
    spent: dict[str, int] | None = None,
    hypervolume: float | None = None,
) -> dict:
    """One ``generations.csv`` row from a DEAP logbook row, the population and the generation's compute.

    Args:
        generation: the generation.
        population: the population after it (each with fitness and ``uid``).
        stats: the logbook row (``nevals`` and the ``fitness``, ``before``, ``density`` statistics).
        seconds: wall time of the generation (s); finetune_seconds: of which fine-tuning (s).
        spent: ``train_steps``, ``train_flops``, ``eval_flops`` summed over the generation.
        hypervolume: the Pareto front's hypervolume (multi-objective runs), else ``None`` (an empty cell).
    """
    spent = spent or {}
    best = max(population, key=lambda ind: ind.fitness.wvalues)
    return {
        "generation": generation,
        "nevals": stats["nevals"],
        "val_acc_max": stats["fitness"]["max"],
        "val_acc_avg": stats["fitness"]["avg"],
        "val_acc_min": stats["fitness"]["min"],
        "val_acc_std": stats["fitness"]["std"],
        "val_acc_before_max": stats["before"]["max"],
        "val_acc_before_avg": stats["before"]["avg"],
        "val_acc_before_min": stats["before"]["min"],
        "density_avg": stats["density"]["avg"],
        "best_uid": best.uid,
        "best_density": best.total_density(),
        "seconds": round(seconds, 4),
        "finetune_seconds": round(finetune_seconds, 4),
        **{k: int(spent.get(k, 0)) for k in ("train_steps", "train_flops", "eval_flops")},
        **{k: round(v, 6) for k, v in population_diversity(population).items()},
        "hypervolume": "" if hypervolume is None else round(float(hypervolume), 8),
    }
