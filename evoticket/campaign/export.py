"""``evoticket export``: a run's ticket written compactly (a recipe) or with sparse weights.

* ``fmt="recipe"`` (``--compact``): the best ticket as a replayable recipe, :mod:`evoticket.operators.recipe`: its
  whole genome (theta0 at every position, masks), or with ``network_only`` only the masked network;
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
    network_only: bool = False,
    seed: int = 0,
    control: str = "ticket",
) -> ExportResult:
    """Export a run's ticket.

    Args:
        run_dir: the run directory (``runs/NAME``).
        fmt: ``"recipe"`` (the best ticket, ``best_ticket.pt``, as a recipe) or ``"sparse"`` (the trained
            ticket of the final comparison, ``trained_ticket.pt``, with sparse CSR weights).
        out: the output file; default ``RUN_DIR/best_ticket.recipe`` or ``RUN_DIR/trained_ticket.sparse.pt``.
        weights: recipe only: ``"float32"`` (exact) or ``"float16"`` (rounded) for the weights it must store.
        network_only: recipe only: store only what the masked network needs, not theta0 at the pruned positions
            (:func:`write_recipe`).
        seed: sparse only: which final-comparison seed, in [0, campaign.final_seeds).
        control: sparse only: ``ticket``, ``dense``, ``random`` or ``reinit``.

    Returns:
        An :class:`ExportResult`: the path written and what was measured (:func:`write_recipe`'s report, or the
        sparse file's ``bytes``).

    Raises:
        EvoticketError: for a missing run directory or ticket file, an unknown format, ``network_only`` with the
            sparse format, or an output file that already exists.
    """
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise EvoticketError(f"export format {fmt!r} is not known; valid: {', '.join(FORMATS)}")
    if network_only and fmt != "recipe":
        raise EvoticketError(f"--network-only applies to a recipe (--compact), not to --format {fmt}")
    if not run_dir.is_dir():
        raise EvoticketError(f"{run_dir}: no such run directory")
    if fmt == "recipe":
        out = Path(out) if out else run_dir / "best_ticket.recipe"
        _check_new(out)
        return ExportResult(out, write_recipe(run_dir, out, weights=weights, network_only=network_only))
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


def write_recipe(run_dir: Path, out: Path, *, weights: str = "float32", network_only: bool = False) -> dict[str, Any]:
    """Write a run's best ticket (``best_ticket.pt``) as a recipe and check its round trip.

    The recipe graph is the best individual's ancestry read from ``individuals.jsonl`` (the ``recipe`` of
    each record, :mod:`evoticket.operators.recipe`). It is replayed here and compared with the saved ticket
    bit for bit: what the replay rebuilds exactly (theta0, masks) is left to it; what it does not (a part
    made by an informed operator, Lamarckian write-back, another method's training, or a run whose operators
    were not seeded) is stored: bit-packed masks, the kept weights and unmasked parameters, and theta0 at the
    pruned positions of every layer where the replay does not rebuild them, all as ``weights``. The recipe is
    then the ticket's whole genome. With ``network_only`` the pruned positions are not stored: the recipe holds
    only the masked network (``theta0 * mask``), is marked ``"network_only": true`` and reads back with 0.0
    there (unless the replay rebuilds all of theta0 anyway: then nothing is left out and it is not marked).
    The written file is read back and compared again.

    Args:
        run_dir: the run directory.
        out: the recipe file to write (must not exist).
        weights: ``"float32"`` (exact) or ``"float16"`` (rounded) for stored weights.
        network_only: leave theta0 at the pruned positions out (a smaller file that is a network, not a genome).

    Returns:
        The report: ``recipe_bytes``, ``state_dict_float32_bytes``, ``state_dict_gzip_bytes``, ``best_ticket_bytes``
        (the ``best_ticket.pt`` file), ``ratio_float32`` and ``ratio_gzip`` (state dict bytes / recipe bytes),
        ``nodes`` (individuals in the graph), ``replayed`` and ``stored`` (which of theta0 and masks), ``weights``,
        ``network_only`` (the file's marker), ``pruned_not_stored`` (theta0 entries at pruned positions left out,
        0 unless network only) and ``theta0_entries`` (all of theta0), ``exact`` (masks and every theta0 entry,
        pruned positions included, bit for bit as in ``best_ticket.pt``), ``network_exact`` (masks, kept weights
        and unmasked parameters bit for bit: the masked network) and ``max_abs_error`` (largest difference over
        the theta0 entries the recipe holds: every one, or the kept ones and unmasked parameters when network
        only; 0.0 when they are bit for bit).

    Raises:
        EvoticketError: when ``best_ticket.pt`` is missing or unreadable, for a bad ``weights``, or when a float32
            recipe does not rebuild what it promises bit for bit (a bug: please report it).
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
        nodes, replayed = {}, None
    stored, marked = None, False
    if not (same_theta0 and same_masks):
        # masked layers whose theta0 at pruned positions the replay does not rebuild (all, without a replay)
        pruned = [name for name, mask in best.masks.items() if not _same_pruned(replayed, best, name, mask)]
        marked = network_only and not same_theta0 and bool(pruned)
        keep = False if marked else pruned
        stored = pack_stored(best, masks=not same_masks, weights=not same_theta0, pruned=keep, dtype=weights)
    meta = {
        "run": run_dir.resolve().name,
        "method": config.method,
        "uid": best.uid,
        "val_acc": float(best.fitness.values[0]) if best.fitness.valid else None,
        "density_total": best.total_density(),
    }
    payload = recipe_payload(arch, best.init_scheme, best.init_std, best.uid, nodes, stored, meta, network_only=marked)
    with atomic_open(out, "wb") as f:
        f.write(encode_recipe(payload))
    back, _, _ = read_recipe_file(out)
    exact = _equal(back.masks, best.masks) and _equal(back.theta0, best.theta0)
    network_exact = _equal(back.masks, best.masks) and _equal(_network(back), _network(best))
    mine, theirs = (_network(back), _network(best)) if marked else (back.theta0, best.theta0)  # what it holds
    error = max((float((mine[k] - theirs[k]).abs().max()) for k in theirs if theirs[k].numel()), default=0.0)
    promised = network_exact if marked else exact
    if weights == "float32" and not (promised and back.network_only == marked):
        raise EvoticketError(f"{out}: the recipe does not rebuild {source} as it promises (a bug: please report it)")
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
        "network_only": marked,
        "pruned_not_stored": sum(int((~m).sum()) for m in best.masks.values()) if marked else 0,
        "theta0_entries": sum(v.numel() for v in best.theta0.values()),
        "exact": exact,
        "network_exact": network_exact,
        "max_abs_error": error,
    }


def _same_pruned(replayed: Ticket | None, best: Ticket, name: str, mask: torch.Tensor) -> bool:
    """Whether the replay rebuilds theta0 at the pruned positions of layer ``name`` bit for bit."""
    if replayed is None:
        return False
    pruned = ~mask
    return _same_bits(replayed.theta0[name][pruned], best.theta0[name][pruned])


def _network(ticket: Ticket) -> dict[str, torch.Tensor]:
    """What the masked network is made of: the kept weights (flat, per masked layer) and every unmasked parameter."""
    return {k: v[ticket.masks[k]] if k in ticket.masks else v for k, v in ticket.theta0.items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Same keys and bit-identical tensors (dtype, shape and every bit: ``-0.0`` differs from ``0.0``)."""
    return a.keys() == b.keys() and all(_same_bits(a[k], b[k]) for k in a)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors have the same dtype, shape and bytes."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))
