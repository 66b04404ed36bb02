"""Tickets as DNA: a ticket written as the seeded operators that made it, and replayed bit for bit.

Such et al. 2017 (arXiv:1712.06567) store a network evolved by Gaussian mutations as its init seed
followed by one seed per mutation. A ticket made by seeded operators is written the same way, as a
*recipe*: the architecture, the init seed, and for each variation the operator, its seed and its
keyword arguments. With crossover a recipe is the ticket's ancestry graph, every shared ancestor
stored once.

How it is recorded: :class:`Seeded` wraps an operator (initialiser, mutation or crossover). Each call
draws a 62-bit seed from the run's operator generator, runs the operator on a fresh
``torch.Generator`` seeded by it, and sets ``ticket.recipe`` to a tree of plain dicts:

* ``{"uid": u}``: the genome of evaluated individual ``u`` (after its evaluation);
* ``{"op": "initTicket", "seed": s, "args": {...}}``: an initial ticket;
* ``{"op": NAME, "seed": s, "args": {...}, "of": [tree]}``: a mutation of ``tree``;
* ``{"op": NAME, "seed": s, "args": {...}, "of": [tree1, tree2], "child": i}``: child ``i`` (0 or 1) of a
  crossover of the two trees.

Every operator calls :func:`evoticket.genome.note_variation`, which sets ``recipe = None``: a
variation that is not seeded (an unwrapped operator, ``ga.seeded = false``) or that depends on more than
its seed (the informed operators read fine-tuned traits, :meth:`evoticket.operators.Operator.needed`)
leaves the ticket without a recipe. The evolution loop writes each new individual's tree into its
record (``recipe`` in ``individuals.jsonl``) and then resets it to ``{"uid": u}``.

What cannot be derived is stored (:func:`pack_stored`): bit-packed masks, the kept weights, every
unmasked parameter (biases) and theta0 at the pruned positions that the replay does not rebuild, as float32
(exact) or float16 (rounded). A recipe is the ticket's whole genome unless its document says
``"network_only": true``: then it stores only what the masked network ``theta0 * mask`` needs, theta0 at
the pruned positions reads as 0.0, and the ticket (:func:`read_recipe_file`) and module
(:func:`load_ticket`) it gives carry ``network_only = True``. A recipe written before the marker existed
that stores weights stored only the kept ones, and is read as network only. A file (:func:`encode_recipe`,
:func:`read_recipe_file`) is gzip-compressed JSON, binary parts in base64.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evoticket.core.errors import EvoticketError
from evoticket.genome import Ticket
from evoticket.genome.files import masked_module, read_ticket_module
from evoticket.models import Architecture, architecture_from_dict

RECIPE_FORMAT = "evoticket-recipe-v1"
"""Format tag of a recipe file."""

WEIGHT_DTYPES = {"float32": np.float32, "float16": np.float16}
"""How stored weights are written: float32 (exact) or float16 (half the bytes, rounded)."""

SEED_BITS = 62
"""Bits of each variation's seed (drawn uniformly from [0, 2**62))."""


class Seeded:
    """An operator whose every call runs on a fresh generator seeded by a recorded seed.

    Calling it draws ``seed`` from ``rng`` (the run's operator generator), calls ``func(*individuals,
    rng=torch.Generator().manual_seed(seed), **kwargs)`` and records the call in each returned
    individual's ``recipe`` (see the module docstring). Register it in a DEAP toolbox like the operator:

        toolbox.register("mutate", Seeded("mutMaskSwap", mutMaskSwap, {"indpb": 0.05}, rng))

    Args:
        name: the operator's registry name (``evoticket.operators.MUTATIONS`` etc.), written in recipes.
        func: the operator.
        kwargs: its keyword hyper-parameters (plain numbers and strings, written in recipes).
        rng: the generator seeds are drawn from.
        replayable: ``False`` for an operator whose result depends on more than its inputs and seed (the
            informed operators): the call is seeded but leaves ``recipe = None``.
    """

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        kwargs: Mapping[str, Any],
        rng: torch.Generator,
        *,
        replayable: bool = True,
    ) -> None:
        self.name = name
        self.func = func
        self.kwargs = dict(kwargs)
        self.rng = rng
        self.replayable = replayable

    def draw_seed(self) -> int:
        """The next seed, from the run's generator: an int in [0, 2**62)."""
        return int(torch.randint(0, 2**SEED_BITS, (), generator=self.rng))

    def __call__(self, *individuals: Ticket) -> tuple[Ticket, ...]:
        """Vary the individuals in place (DEAP's contract) and record the call in their recipes."""
        before = [_current(ind) for ind in individuals]
        seed = self.draw_seed()
        out = self.func(*individuals, rng=torch.Generator().manual_seed(seed), **self.kwargs)
        for i, ind in enumerate(individuals):
            if not self.replayable or any(tree is None for tree in before):
                ind.recipe = None
                continue
            tree = {"op": self.name, "seed": seed, "args": dict(self.kwargs), "of": before}
            if len(individuals) > 1:
                tree["child"] = i
            ind.recipe = tree
        return out


class SeededInit(Seeded):
    """``initTicket`` with a recorded seed: ``SeededInit(container, arch, density, kwargs, rng)()`` makes a ticket.

    Args:
        container: the class to build (``creator.EvoTicket`` of :func:`evoticket.genome.ensure_creator`).
        arch: the architecture.
        density: total density in (0, 1] (``ticket.density``).
        kwargs: ``init`` (initialiser name) and ``layer_densities`` (weight name -> density) of ``initTicket``.
        rng: the generator seeds are drawn from.
    """

    def __init__(
        self, container: type, arch: Architecture, density: float, kwargs: Mapping[str, Any], rng: torch.Generator
    ) -> None:
        from evoticket.operators.init import initTicket

        super().__init__("initTicket", initTicket, {"density": float(density), **kwargs}, rng)
        self.container, self.arch = container, arch

    def __call__(self, density: float | None = None, layer_densities: Mapping[str, float] | None = None) -> Ticket:
        """A new ticket, at ``density`` / ``layer_densities`` when given (else the ones it was made with)."""
        kwargs = dict(self.kwargs)
        if density is not None:
            kwargs["density"] = float(density)
        if layer_densities is not None:
            kwargs["layer_densities"] = {k: float(v) for k, v in layer_densities.items()}
        seed = self.draw_seed()
        ticket = self.func(self.container, self.arch, rng=torch.Generator().manual_seed(seed), **kwargs)
        ticket.recipe = {"op": "initTicket", "seed": seed, "args": kwargs}
        return ticket


def _current(ind: Ticket) -> dict[str, Any] | None:
    """The tree of an individual's genome as it stands: its recipe, or ``{"uid": u}`` for an evaluated one."""
    recipe = getattr(ind, "recipe", None)
    if recipe is not None:
        return recipe
    return {"uid": ind.uid} if ind.uid is not None else None  # a varied individual has no uid until evaluated


# ------------------------------------------------------------------ graphs


def ancestry(root: int, trees: Mapping[int, dict[str, Any] | None]) -> dict[int, dict[str, Any]]:
    """The recipe graph of individual ``root``: uid -> its tree, for it and every ancestor it refers to.

    Args:
        root: the individual's uid.
        trees: uid -> the tree in its record (``None`` where it had none).

    Returns:
        uid -> tree, each shared ancestor once.

    Raises:
        KeyError: naming the first uid that has no replayable tree (the ticket cannot be derived).
    """
    nodes: dict[int, dict[str, Any]] = {}
    todo = [root]
    while todo:
        uid = todo.pop()
        if uid in nodes:
            continue
        tree = trees.get(uid)
        if tree is None:
            raise KeyError(uid)
        nodes[uid] = tree
        todo.extend(_refs(tree))
    return nodes


def _refs(tree: dict[str, Any]) -> list[int]:
    if "uid" in tree:
        return [int(tree["uid"])]
    return [u for sub in tree.get("of", ()) for u in _refs(sub)]


def replay(nodes: Mapping[int, dict[str, Any]], root: int, arch: Architecture) -> Ticket:
    """Rebuild individual ``root``'s genome from its recipe graph.

    Each tree is evaluated once (memoised by uid): an init draws ``initTicket`` with its seed, a mutation
    applies its operator to a clone of its input with a generator seeded by its seed, a crossover applies
    its operator to clones of its two inputs and keeps child ``child``.

    Args:
        nodes: uid -> tree (:func:`ancestry`).
        root: the uid to rebuild.
        arch: the architecture.

    Returns:
        A plain :class:`evoticket.genome.Ticket` with ``uid = root``: theta0 and masks exactly those the run
        made (on the CPU, for a Baldwinian run).

    Raises:
        KeyError: for a uid missing from ``nodes``, or an operator name no registry knows.
    """
    from evoticket.operators import CROSSOVERS, MUTATIONS
    from evoticket.operators.init import initTicket

    built: dict[int, Ticket] = {}

    def build(tree: dict[str, Any]) -> Ticket:
        if "uid" in tree:
            uid = int(tree["uid"])
            if uid not in built:
                built[uid] = build(nodes[uid])
            return built[uid]
        rng = torch.Generator().manual_seed(int(tree["seed"]))
        args = dict(tree["args"])
        if tree["op"] == "initTicket":
            return initTicket(Ticket, arch, args.pop("density"), rng=rng, **args)
        inputs = [build(sub).clone() for sub in tree["of"]]
        if len(inputs) == 2:
            children = CROSSOVERS[tree["op"]](*inputs, rng=rng, **args)
            return children[int(tree["child"])]
        return MUTATIONS[tree["op"]](inputs[0], rng=rng, **args)[0]

    ticket = build({"uid": root})
    out = Ticket(ticket.theta0, ticket.masks, ticket.init_scheme, ticket.init_std, uid=root)
    return out


# ------------------------------------------------------------------ stored parts


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _unb64(text: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def pack_stored(
    ticket: Ticket,
    *,
    masks: bool = True,
    weights: bool = True,
    pruned: bool | Iterable[str] = True,
    dtype: str = "float32",
) -> dict[str, Any]:
    """The parts of a ticket a recipe cannot derive, compactly.

    Args:
        ticket: the ticket.
        masks: store its masks, bit-packed (``numpy.packbits``, 1 bit per weight).
        weights: store its kept weights (theta0 at the mask's kept positions, in flat order) and every
            unmasked parameter (biases), as ``dtype``.
        pruned: with ``weights``, which masked layers also get theta0 at their pruned positions stored (in flat
            order, as ``dtype``): ``True`` every one, ``False`` none (a network-only recipe), or the weight
            names of those the replay does not rebuild.
        dtype: ``"float32"`` (exact) or ``"float16"`` (rounded).

    Returns:
        A JSON-ready dict: ``masks`` (weight name -> base64), ``weights`` (parameter name -> base64),
        ``pruned`` (weight name -> base64), ``dtype``, ``shapes`` (parameter name -> shape).

    Raises:
        ValueError: for a ``dtype`` other than those of :data:`WEIGHT_DTYPES`.
    """
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights: must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
    out: dict[str, Any] = {"dtype": dtype, "shapes": {k: list(v.shape) for k, v in ticket.theta0.items()}}
    if masks:
        out["masks"] = {k: _b64(np.packbits(m.reshape(-1).numpy())) for k, m in ticket.masks.items()}
    if weights:
        np_dtype = WEIGHT_DTYPES[dtype]
        layers = set(ticket.masks) if pruned is True else set() if pruned is False else set(pruned)
        values, rest = {}, {}
        for name, value in ticket.theta0.items():
            flat = value.reshape(-1)
            if name in ticket.masks:
                kept = ticket.masks[name].reshape(-1)
                if name in layers:
                    rest[name] = _b64(flat[~kept].numpy().astype(np_dtype))
                flat = flat[kept]
            values[name] = _b64(flat.numpy().astype(np_dtype))
        out["weights"] = values
        out["pruned"] = rest
    return out


def unpack_stored(
    stored: Mapping[str, Any], base: Ticket | None, *, network_only: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(theta0, masks)`` from :func:`pack_stored`'s dict, the parts it lacks taken from ``base``.

    Stored weights fill the kept positions; the pruned positions of a masked layer come from its stored
    ``pruned`` values, else from ``base`` (the replay, which the writer checked rebuilds them); in a
    network-only recipe they are 0.0. Float16 values are widened to float32.

    Args:
        stored: the ``stored`` dict of a recipe document.
        base: the replayed ticket, or ``None`` when the recipe has no graph.
        network_only: whether the document is a network-only recipe (theta0 at pruned positions not stored).

    Returns:
        ``(theta0, masks)``: parameter name -> float32 tensor, weight name -> bool tensor.

    Raises:
        ValueError: when a part is neither stored nor in ``base``.
    """
    shapes = {k: tuple(v) for k, v in stored["shapes"].items()}
    if "masks" in stored:
        masks = {
            k: torch.from_numpy(np.unpackbits(_unb64(v, np.uint8))[: int(np.prod(shapes[k]))].astype(bool)).view(
                shapes[k]
            )
            for k, v in stored["masks"].items()
        }
    elif base is not None:
        masks = dict(base.masks)
    else:
        raise ValueError("recipe: stores no masks and has no replay to take them from")
    if "weights" in stored:
        np_dtype = WEIGHT_DTYPES[stored["dtype"]]
        pruned = stored.get("pruned") or {}
        theta0 = {}
        for name, text in stored["weights"].items():
            values = torch.from_numpy(_unb64(text, np_dtype).astype(np.float32))
            if name not in masks:
                theta0[name] = values.view(shapes[name]).clone()
                continue
            kept = masks[name].reshape(-1)
            full = torch.zeros(kept.numel())
            full[kept] = values
            if name in pruned:
                full[~kept] = torch.from_numpy(_unb64(pruned[name], np_dtype).astype(np.float32))
            elif not network_only:  # network only: left at 0.0
                if base is None:
                    raise ValueError(f"recipe: stores no theta0 at the pruned positions of {name} and has no replay")
                full[~kept] = base.theta0[name].reshape(-1)[~kept]
            theta0[name] = full.view(shapes[name])
    elif base is not None:
        theta0 = dict(base.theta0)
    else:
        raise ValueError("recipe: stores no weights and has no replay to take them from")
    return theta0, masks


def is_network_only(payload: Mapping[str, Any]) -> bool:
    """Whether a recipe document holds only the masked network, not theta0 at the pruned positions.

    Its ``network_only`` marker when it has one; a recipe written before the marker existed is network only
    when it stores weights (it stored only the kept ones).
    """
    if "network_only" in payload:
        return bool(payload["network_only"])
    stored = payload.get("stored") or {}
    return "weights" in stored


# ------------------------------------------------------------------ files


def recipe_payload(
    arch: Architecture,
    init_scheme: str,
    init_std: Mapping[str, float],
    root: int | None,
    nodes: Mapping[int, dict[str, Any]],
    stored: Mapping[str, Any] | None,
    meta: Mapping[str, Any] | None = None,
    *,
    network_only: bool = False,
) -> dict[str, Any]:
    """The JSON document of a recipe: format, architecture, root uid, graph (uid -> tree), stored parts, metadata,
    and ``network_only`` (``True`` when theta0 at the pruned positions is not stored, :func:`is_network_only`)."""
    return {
        "format": RECIPE_FORMAT,
        "architecture": arch.to_dict(),
        "init_scheme": init_scheme,
        "init_std": dict(init_std),
        "root": root,
        "nodes": {str(k): v for k, v in sorted(nodes.items())},
        "stored": dict(stored) if stored else None,
        "meta": dict(meta or {}),
        "network_only": bool(network_only),
    }


def encode_recipe(payload: Mapping[str, Any]) -> bytes:
    """A recipe document as bytes: compact JSON, gzip level 9, no timestamp (same content, same bytes)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return gzip.compress(text, compresslevel=9, mtime=0)


def is_recipe(data: bytes) -> bool:
    """Whether bytes are a recipe file (gzip magic number)."""
    return data[:2] == b"\x1f\x8b"


def decode_recipe(data: bytes) -> dict[str, Any]:
    """The JSON document of a recipe file's bytes.

    Raises:
        ValueError: when the bytes are not a gzip-compressed evoticket recipe.
    """
    try:
        payload = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"not a recipe file ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != RECIPE_FORMAT:
        raise ValueError(f"not an {RECIPE_FORMAT} file")
    return payload


def ticket_from_recipe(payload: Mapping[str, Any]) -> tuple[Ticket, Architecture]:
    """Rebuild a ticket from a recipe document: replay its graph, then apply its stored parts.

    Returns:
        ``(ticket, architecture)``; the ticket is a plain :class:`evoticket.genome.Ticket` with the root's uid and
        an attribute ``network_only`` (bool, :func:`is_network_only`): when ``True`` its theta0 at the pruned
        positions is 0.0, not the ticket's, and it is a network, not a genome to evolve or to draw controls from.

    Raises:
        ValueError: when the document is inconsistent (no graph and nothing stored, an unknown operator).
    """
    arch = architecture_from_dict(payload["architecture"])
    nodes = {int(k): v for k, v in (payload.get("nodes") or {}).items()}
    root = payload.get("root")
    network_only = is_network_only(payload)
    base = None
    if nodes:
        try:
            base = replay(nodes, int(root), arch)
        except KeyError as e:
            raise ValueError(f"recipe: its graph refers to {e}, which it does not hold") from None
    stored = payload.get("stored")
    if stored:
        theta0, masks = unpack_stored(stored, base, network_only=network_only)
    elif base is not None:
        theta0, masks = base.theta0, base.masks
    else:
        raise ValueError("recipe: holds neither a graph nor stored parts")
    init_std = payload.get("init_std") or (base.init_std if base is not None else {})
    ticket = Ticket(theta0, masks, payload["init_scheme"], init_std, uid=root)
    ticket.network_only = network_only
    return ticket, arch


def read_recipe_file(path: str | Path) -> tuple[Ticket, Architecture, dict[str, Any]]:
    """Read a recipe file and rebuild its ticket.

    Returns:
        ``(ticket, architecture, payload)``; ``ticket.network_only`` says whether it is only the masked network
        (:func:`ticket_from_recipe`).

    Raises:
        EvoticketError: if the file is missing or not a valid recipe (one line naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise EvoticketError(f"{path}: no such recipe file (evoticket export RUN_DIR --compact writes one)")
    try:
        payload = decode_recipe(path.read_bytes())
        ticket, arch = ticket_from_recipe(payload)
    except (ValueError, KeyError, TypeError) as e:
        raise EvoticketError(f"{path}: {e}") from None
    return ticket, arch, payload


def load_ticket(path: str | Path, *, seed: int = 0, control: str = "ticket") -> nn.Module:
    """Load a ticket in any of its forms as a plain ``torch.nn.Module``: ``evoticket.load_ticket``.

    ``best_ticket.pt`` gives the ticket at its initial weights theta0; ``trained_ticket.pt`` the network the
    final comparison trained from it (``seed`` and ``control`` choose which), with the weights of its
    early-stopping step; a recipe file (``evoticket export RUN_DIR --compact``) is replayed and gives the ticket
    at theta0, as ``best_ticket.pt`` does. The masks are applied the way ``torch.nn.utils.prune`` does: each
    pruned layer has a ``weight_orig`` parameter, a ``weight_mask`` buffer and
    ``weight = weight_orig * weight_mask``, so training the module keeps pruned weights at zero.

    Every module it returns has a plain attribute ``network_only`` (bool). It is ``True`` only for a recipe
    that holds just the masked network (written with ``--network-only``, or by evoticket before the marker
    existed): ``weight_orig`` at the pruned positions is then 0.0, not the ticket's theta0, so the module
    gives the ticket's outputs and trains like it, but is no genome (rewinding, a ``random`` control or
    further evolution would need those values).

    Args:
        path: a recipe, ``best_ticket.pt`` or ``trained_ticket.pt`` file.
        seed: which final-comparison seed (``trained_ticket.pt`` only), in [0, campaign.final_seeds).
        control: ``ticket``, ``dense``, ``random`` or ``reinit`` (``trained_ticket.pt`` only).

    Returns:
        The module, on the CPU, in training mode, with ``network_only`` set.

    Raises:
        EvoticketError: if the file is missing or is not an evoticket ticket or recipe, or the seed or control
            does not exist in it.
    """
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(2)
        if is_recipe(head):
            ticket, arch, _ = read_recipe_file(path)
            return masked_module(arch, ticket.theta0, ticket.masks, network_only=ticket.network_only)
    return read_ticket_module(path, seed=seed, control=control)
