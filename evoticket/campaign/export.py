"""``evoticket export``: a run's ticket written compactly (a recipe) or with sparse weights.

* ``fmt="recipe"`` (``--compact``): the best ticket as a replayable recipe, :mod:`evoticket.evolution.recipe`;
* ``fmt="sparse"``: the final comparison's trained ticket with torch sparse CSR weights,
  :mod:`evoticket.genome.sparse`.

Neither ever overwrites an existing file.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.core.io import atomic_open
from evoticket.genome import Ticket
from evoticket.genome.files import read_ticket_file
from evoticket.operators.recipe import (
    ancestry,
    encode_recipe,
    pack_stored,
    read_recipe_file,
    recipe_payload,
    replay,
)
from evoticket.records import read_individuals

FORMATS = ("recipe", "sparse")
"""What ``evoticket export`` writes: ``recipe`` (tickets as DNA) or ``sparse`` (inference)."""


@dataclass
class ExportResult:
    """What :func:`export_run` wrote.

    Attributes:
        path: the file written.
        report: what was measured: sizes in bytes and, for a recipe, what it replays and whether the round trip is
            exact (:func:`write_recipe`).
    """

    path: Path
    report: dict[str, Any] = field(default_factory=dict)


def export_run(
    run_dir: Path,
    *,
    fmt: str,
    out: Path | None = None,
    weights: str = "float32",
    seed: int = 0,
    control: str = "ticket",
) -> ExportResult:
    """Export a run's ticket.

    Args:
        run_dir: the run directory (``runs/NAME``).
        fmt: ``"recipe"`` (the best ticket, ``best_ticket.pt``, as a recipe) or ``"sparse"`` (the trained
            ticket of the final comparison, ``trained_ticket.pt``, with sparse CSR weights).
        out: the output file; default ``RUN_DIR/best_ticket.recipe`` or ``RUN_DIR/trained_ticket.sparse.pt``.
        weights: recipe only: ``"float32"`` (exact) or ``"float16"`` for the weights it must store.
        seed: sparse only: which final-comparison seed, in [0, campaign.final_seeds).
        control: sparse only: ``ticket``, ``dense``, ``random`` or ``reinit``.

    Returns:
        An :class:`ExportResult`: the path written and what was measured (:func:`write_recipe`'s report, or the
        sparse file's ``bytes``).

    Raises:
        EvoticketError: for a missing run directory or ticket file, an unknown format, or an output
            file that already exists.
    """
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise EvoticketError(f"export format {fmt!r} is not known; valid: {', '.join(FORMATS)}")
    if not run_dir.is_dir():
        raise EvoticketError(f"{run_dir}: no such run directory")
    if fmt == "recipe":
        out = Path(out) if out else run_dir / "best_ticket.recipe"
        _check_new(out)
        return ExportResult(out, write_recipe(run_dir, out, weights=weights))
    else:
        from evoticket.genome.sparse import write_sparse

        source = paths.trained_ticket(run_dir)
        if not source.is_file():
            raise EvoticketError(f"{source}: no such file (the final comparison writes it at the end of a run)")
        out = Path(out) if out else run_dir / "trained_ticket.sparse.pt"
        _check_new(out)
        write_sparse(source, out, seed=seed, control=control)
    return ExportResult(out, {"bytes": out.stat().st_size})


def _check_new(out: Path) -> None:
    if out.exists():
        raise EvoticketError(f"{out}: already exists; export never overwrites a file (give another --out)")
    if not out.parent.is_dir():
        raise EvoticketError(f"{out.parent}: no such directory for --out")


def state_dict_sizes(ticket: Ticket) -> dict[str, int]:
    """Bytes of the ticket's network as a float32 state dict (``torch.save`` of ``theta0 * mask`` for every
    parameter) and of the same file compressed (gzip level 9: the pruned zeros compress away)."""
    buffer = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in ticket.effective_weights().items()}, buffer)
    raw = buffer.getvalue()
    return {"state_dict_float32_bytes": len(raw), "state_dict_gzip_bytes": len(gzip.compress(raw, 9, mtime=0))}


def write_recipe(run_dir: Path, out: Path, *, weights: str = "float32") -> dict[str, Any]:
    """Write a run's best ticket (``best_ticket.pt``) as a recipe and check its round trip.

    The recipe graph is the best individual's ancestry read from ``individuals.jsonl`` (the ``recipe`` of
    each record, :mod:`evoticket.operators.recipe`). It is replayed here and compared with the saved ticket
    bit for bit: what the replay rebuilds exactly (theta0, masks) is left to it; what it does not (a part
    made by an informed operator, Lamarckian write-back, another method's training, or a run whose operators
    were not seeded) is stored: bit-packed masks and the kept weights as ``weights``. The written file is
    read back and compared again.

    Args:
        run_dir: the run directory.
        out: the recipe file to write (must not exist).
        weights: ``"float32"`` (exact) or ``"float16"`` for stored weights.

    Returns:
        The report: ``recipe_bytes``, ``state_dict_float32_bytes``, ``state_dict_gzip_bytes``, ``best_ticket_bytes``
        (the ``best_ticket.pt`` file), ``ratio_float32`` and ``ratio_gzip`` (state dict bytes / recipe bytes),
        ``nodes`` (individuals in the graph), ``replayed`` and ``stored`` (which of theta0 and masks), ``weights``,
        ``exact`` (theta0 and masks rebuilt bit for bit; with stored weights: the kept weights, biases and masks)
        and ``max_abs_error`` (of the kept weights, 0.0 when exact).

    Raises:
        EvoticketError: when ``best_ticket.pt`` is missing or unreadable, for a bad ``weights``, or when the round
            trip of a float32 recipe is not exact (a bug: please report it).
    """
    if weights not in ("float32", "float16"):
        raise EvoticketError(f"--weights: must be float32 or float16, got {weights!r}")
    source = paths.best_ticket(run_dir)
    best, arch, config = read_ticket_file(source)
    trees: dict[int, Any] = {}
    if paths.individuals_jsonl(run_dir).is_file():
        for record in read_individuals(run_dir):
            if not record.get("reevaluated") and record.get("uid") is not None:
                trees.setdefault(int(record["uid"]), record.get("recipe"))
    nodes: dict[int, Any] = {}
    replayed = None
    if best.uid is not None:
        try:
            nodes = ancestry(int(best.uid), trees)
            replayed = replay(nodes, int(best.uid), arch)
        except (KeyError, ValueError, TypeError):
            nodes, replayed = {}, None
    same_theta0 = replayed is not None and _equal(replayed.theta0, best.theta0)
    same_masks = replayed is not None and _equal(replayed.masks, best.masks)
    if not (same_theta0 or same_masks):
        nodes = {}
    stored = None
    if not (same_theta0 and same_masks):
        stored = pack_stored(best, masks=not same_masks, weights=not same_theta0, dtype=weights)
    meta = {
        "run": run_dir.resolve().name,
        "method": config.method,
        "uid": best.uid,
        "val_acc": float(best.fitness.values[0]) if best.fitness.valid else None,
        "density_total": best.total_density(),
    }
    payload = recipe_payload(arch, best.init_scheme, best.init_std, best.uid, nodes, stored, meta)
    with atomic_open(out, "wb") as f:
        f.write(encode_recipe(payload))
    back, _, _ = read_recipe_file(out)
    exact_masks = _equal(back.masks, best.masks)
    if same_theta0:
        exact_theta0, error = _equal(back.theta0, best.theta0), 0.0
    else:
        mine, theirs = back.effective_weights(), best.effective_weights()
        error = max(float((mine[k] - theirs[k]).abs().max()) for k in theirs)
        exact_theta0 = error == 0.0
    exact = exact_masks and exact_theta0
    if weights == "float32" and not exact:
        raise EvoticketError(f"{out}: the recipe does not rebuild {source} exactly (a bug: please report it)")
    sizes = state_dict_sizes(best)
    size = out.stat().st_size
    return {
        "recipe_bytes": size,
        **sizes,
        "best_ticket_bytes": source.stat().st_size,
        "ratio_float32": sizes["state_dict_float32_bytes"] / size,
        "ratio_gzip": sizes["state_dict_gzip_bytes"] / size,
        "nodes": len(nodes),
        "replayed": [k for k, same in (("theta0", same_theta0), ("masks", same_masks)) if same],
        "stored": [k for k, same in (("theta0", same_theta0), ("masks", same_masks)) if not same],
        "weights": weights,
        "exact": exact,
        "max_abs_error": error,
    }


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Same keys and bit-identical tensors (dtype, shape, values)."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
